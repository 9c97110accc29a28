"""Global evaluation on the server, in simulation: the held-out centres and the test split.

Only a simulation's server can read the data (a real coordinator holds none); it scores the
global model after each round with the same fixed, seeded masks and official metrics as
``cardiomm evaluate``, so the federated curve and the final report agree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import split_sites_and_files
from cardiomm.data.builders import evaluation_dataset
from cardiomm.data.dataset import SliceDataset
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.model.vendor_personalised import VendorPartsReconstructor
from cardiomm.train import evaluate_reconstructor
from cardiomm.train.runtime import select_device
from cardiomm.train.schema import configured_device
from server.model import GlobalModel
from server.settings import FederationSettings

logger = logging.getLogger(__name__)


class GlobalEvaluator:
    """Scores the global model on the configured splits (datasets are built once).

    Args:
        config: the composed config (``data``, ``masks``, ``seed``).
        settings: ``evaluation_splits`` (``held-out`` and / or ``train|val|test``) and
            ``evaluation_max_items`` (images per split; 0: all).
    """

    def __init__(self, config: DictConfig, settings: FederationSettings) -> None:
        self.settings = settings
        self.device = select_device(configured_device(config))
        manifest = load_partition(
            config.data,
            int(config.seed),
            show_progress=False,
            bad_file_report=settings.output_dir / "bad_files.jsonl",
        )
        self.datasets: dict[str, SliceDataset] = {}
        for split in settings.evaluation_splits:
            try:
                files = split_sites_and_files(manifest, split, [])
            except ValueError as error:
                # e.g. no centre held out: that split is simply not part of this study.
                logger.warning("global evaluation skips split %s: %s", split, error)
                continue
            self.datasets[split] = evaluation_dataset(
                files, config, bad_file_report=settings.output_dir / "bad_files.jsonl"
            )

    def evaluate(
        self,
        model: GlobalModel,
        vendor_parts: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ) -> dict[str, float]:
        """``<split>/psnr|ssim|nmse|images`` of the model's current weights.

        Args:
            model: the global model.
            vendor_parts: per vendor, its personalised parameters; each scan is then
                reconstructed with its vendor's (the model's own for an unseen vendor).
        """
        reconstructor: Any = NetworkReconstructor(
            model.network, model.encoder, name=self.settings.method
        )
        if vendor_parts:
            reconstructor = VendorPartsReconstructor(reconstructor, vendor_parts)
        model.network.to(self.device)
        scores: dict[str, Any] = {}
        try:
            for split, dataset in self.datasets.items():
                result = evaluate_reconstructor(
                    reconstructor,
                    dataset,
                    self.device,
                    self.settings.evaluation_max_items,
                    show_progress=False,
                )
                mean = result.mean()
                scores.update(
                    {f"{split}/{name}": float(mean[name]) for name in ("psnr", "ssim", "nmse")}
                )
                scores[f"{split}/images"] = float(len(result.records))
        finally:
            if vendor_parts:
                # Leave the model holding the shared weights and the fallback, as it came.
                reconstructor.restore_fallback()
            model.network.to("cpu")
        return scores
