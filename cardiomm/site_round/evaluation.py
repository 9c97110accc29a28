"""Scoring a model at a site: the global model on its validation split, or any model on a set
of its files with the per-group breakdown of the cross-site matrix and of evaluation-only
sites."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cardiomm.data.builders import evaluation_dataset
from cardiomm.data.dataset import SliceDataset
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.site_round.data import SiteDataError, SiteSplits, skipped_files, why_empty
from cardiomm.train.evaluate import EvaluationResult, evaluate_reconstructor

# How a round gets its network: (config, coil_batching=...) -> (network, text encoder).
# A warm site worker passes a cache (client/model_cache.py); the default builds afresh.
NetworkBuilder = Callable[..., tuple[torch.nn.Module, Any]]
# The groups of the per-group breakdown.
GROUP_BY = ("modality", "cardiac_view", "mask")


@dataclasses.dataclass(frozen=True)
class Scores:
    """A model's official scores on a site's images.

    Attributes:
        examples: what was scored (slices of the validation split, or images scored).
        mean: mean ``psnr`` / ``ssim`` / ``nmse``.
        groups: per (modality, cardiac view, mask) group, its row of
            :meth:`EvaluationResult.summary` (``images`` and the three metrics); empty for a
            validation split.
        seconds: the whole scoring's wall time (data included).
        build_seconds: the network's and text encoder's build time.
        skipped: the files skipped, ``{"path", "reason"}`` each.
    """

    examples: int
    mean: dict[str, float]
    groups: list[dict[str, Any]]
    seconds: float
    build_seconds: float
    skipped: list[dict[str, str]]


def validation_scores(
    dataset: SliceDataset | None,
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder,
    started: float,
) -> Scores | None:
    """The scores of the model ``global_state`` on a validation split (None when there is
    nothing to score); ``started``: when the scoring began (``time.perf_counter``)."""
    if dataset is None or len(dataset) == 0:
        return None
    result, build_seconds = _official_scores(dataset, global_state, config, build)
    mean = _mean(result)
    seconds = time.perf_counter() - started
    return Scores(len(dataset), mean, [], seconds, build_seconds, [])


def file_scores(
    site: SiteSplits,
    files: tuple[Path, ...],
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder,
) -> Scores | None:
    """The scores of the model ``global_state`` on ``files``, overall and per group (None
    when no file is given). The masks are the configured evaluation masks (fixed and
    seeded, the same at every run), the images the challenge's ranking selection, the
    metrics the official ones, averaged per file and then over files, as
    ``cardiomm evaluate`` does.

    Raises:
        SiteDataError: no usable image in ``files``.
    """
    started = time.perf_counter()
    if not files:  # e.g. a small site without test patients: nothing to score, no failure
        return None
    dataset = evaluation_dataset(list(files), config)
    if len(dataset) == 0:
        raise SiteDataError(f"site {site.site_id}: nothing to score on; {why_empty(dataset)}")
    result, build_seconds = _official_scores(dataset, global_state, config, build)
    mean = _mean(result)
    groups = result.summary(group_by=GROUP_BY)
    seconds = time.perf_counter() - started
    return Scores(len(result.records), mean, groups, seconds, build_seconds, skipped_files(dataset))


def _official_scores(
    dataset: SliceDataset,
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder,
) -> tuple[EvaluationResult, float]:
    """(the official per-image scores of the model ``global_state`` on ``dataset``, the
    seconds its network and text encoder took to build)."""
    began = time.perf_counter()
    network, encoder = build(config)
    network.load_state_dict(global_state, strict=True)
    build_seconds = time.perf_counter() - began
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network.to(device)
    result = evaluate_reconstructor(
        NetworkReconstructor(network, encoder), dataset, device=device, show_progress=False
    )
    return result, build_seconds


def _mean(result: EvaluationResult) -> dict[str, float]:
    mean = result.mean()
    return {name: float(mean[name]) for name in ("psnr", "ssim", "nmse")}
