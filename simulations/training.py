"""Centralised or single-site training from the Hydra config (``cardiomm train``).

Centralised training pools the train split of every internal site (the upper reference of
the federated study); naming sites (``data.sites``) trains on those only (local-only).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import internal_sites, site_files
from cardiomm.data.builders import evaluation_dataset, training_dataset
from cardiomm.data.dataset import SliceDataset
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.factory import encoder_settings, network_from_config
from cardiomm.model.network import CardioMMNet
from cardiomm.text import TextEncoder
from cardiomm.train import TrainConfig, TrainingRun, train_model
from cardiomm.train.loop import TrainingStepError
from cardiomm.train.plots import save_training_curves

logger = logging.getLogger(__name__)

INTERRUPTED_CHECKPOINT = "interrupted.pt"


class TrainingFailedError(RuntimeError):
    """Training stopped on a step that failed; the message names the step, the images it
    was on, and the checkpoint holding the last good weights."""


def selected_sites(manifest: dict, names: list[str]) -> list[dict]:
    """The internal sites named (all of them when ``names`` is empty)."""
    sites = internal_sites(manifest)
    if not names:
        return sites
    by_name = {site["site"]: site for site in sites}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise ValueError(
            f"site(s) {', '.join(unknown)} are not internal sites; internal: {', '.join(by_name)}"
        )
    return [by_name[name] for name in names]


def split_files(manifest: dict, sites: list[dict], split: str) -> list[Path]:
    return [path for site in sites for path in site_files(manifest, site, split)]


def run_training(config: Any, show_progress: bool = True) -> dict[str, Any]:
    """Train one model as the config says and write its checkpoint, metrics and curves.

    Returns:
        a summary: output paths, sites, sizes and the training metrics.
    """
    output_dir = Path(config.output_dir)
    manifest = load_partition(
        config.data, config.seed, show_progress, bad_file_report=output_dir / "bad_files.jsonl"
    )
    sites = selected_sites(manifest, list(config.data.sites))
    train_data, validation_data = _datasets(config, manifest, sites, output_dir, show_progress)
    network, encoder = network_from_config(config, seed=int(config.seed))
    train_config = TrainConfig.from_mapping(OmegaConf.to_container(config.train, resolve=True))
    every = int(config.get("checkpoint_every", 0) or 0)
    if every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {every}")
    saver = _ModelSaver(config, output_dir, network, encoder, sites, train_config, manifest["root"])

    def on_step(step: int, loss: float) -> None:
        # The last step's model is final.pt.
        last = step == train_config.max_steps
        if every and step % every == 0 and not last:
            saver.save(step_checkpoint_name(step), {"step": step})

    try:
        # Step checkpoints only when asked: data-parallel training calls no callbacks.
        callback = on_step if every else None
        run = TrainingRun(network, encoder, train_data, train_config, validation_data)
        result = train_model(
            dataclasses.replace(run, show_progress=show_progress, on_step=callback)
        )
    except (TrainingStepError, FloatingPointError) as error:
        # A failed step never reached the weights (and non-finite updates are skipped):
        # what the network holds now is the last good model, kept rather than lost.
        kept = saver.save(INTERRUPTED_CHECKPOINT, {"error": str(error)})
        raise TrainingFailedError(f"{error}; the last good weights are in {kept}") from error
    checkpoint = saver.save("final.pt", {"step": result.steps, "metrics": result.metrics()})
    summary = {
        "method": config.method,
        "checkpoint": str(checkpoint),
        "sites": _names(sites),
        "train_images": len(train_data),
        "validation_images": len(validation_data) if validation_data is not None else 0,
        "skipped_files": [
            {"path": str(bad.path), "reason": bad.reason} for bad in train_data.bad_files
        ],
        "metrics": result.metrics(),
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))
    save_training_curves(
        result, output_dir / "training_curves.png", f"{config.method}: {_names(sites)}"
    )
    return summary


def _datasets(
    config: Any, manifest: dict, sites: list[dict], output_dir: Path, show_progress: bool
) -> tuple[SliceDataset, SliceDataset | None]:
    """The sites' training data and their validation data (None, with a warning, when they
    have no validation patients); bad files are reported into ``output_dir``."""
    train_files = split_files(manifest, sites, "train")
    validation_files = split_files(manifest, sites, "val")
    data_options = {
        "index_cache": config.data.index_cache,
        "bad_file_report": output_dir / "bad_files.jsonl",
        "show_progress": show_progress,
    }
    train_data = training_dataset(train_files, config, int(config.seed), **data_options)
    validation_data = None
    if validation_files:
        validation_data = evaluation_dataset(validation_files, config, "all", **data_options)
    else:
        logger.warning("no validation patients in %s; training without validation", _names(sites))
    return train_data, validation_data


@dataclasses.dataclass(frozen=True)
class _ModelSaver:
    """Writes checkpoints of ``network`` into ``output_dir/checkpoints`` with what a model
    carries about its run: method, sites, training settings, data root, input preparation."""

    config: Any
    output_dir: Path
    network: CardioMMNet
    encoder: TextEncoder | None
    sites: list[dict]
    train_config: TrainConfig
    data_root: str

    def save(self, name: str, extra: dict[str, Any]) -> Path:
        """The checkpoint ``name`` with ``extra`` among its fields."""
        config, encoder = self.config, self.encoder
        return save_checkpoint(
            self.output_dir / "checkpoints" / name,
            self.network,
            encoder_settings(config.text) if encoder is not None else None,
            encoder.dim if encoder is not None else 0,
            extra={
                "method": config.method,
                "sites": _names(self.sites),
                "train": self.train_config.to_dict(),
                "data_root": self.data_root,
                # How inputs must be prepared for this model (cardiomm reconstruct follows it).
                "remove_oversampling": bool(config.data.remove_oversampling),
                **extra,
            },
        )


def step_checkpoint_name(step: int) -> str:
    """``step-000120.pt``: the checkpoint kept after ``step`` optimiser steps."""
    return f"step-{step:06d}.pt"


def _names(sites: list[dict]) -> str:
    return ", ".join(site["site"] for site in sites)
