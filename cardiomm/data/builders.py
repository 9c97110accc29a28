"""The slice datasets a run builds from its Hydra config: evaluation data with the configured
fixed, seeded masks, and training data with masks drawn from the configured sampler. The
site (client/), the server's global evaluation and the research harness all build them here;
for a frame-window model (``model.temporal: window``) every item carries its frame's window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import EvaluationMasks, MaskSetting, TrainingMasks
from cardiomm.masks import MaskSampler
from cardiomm.masks.sampler import reference_matrix_from_config


def frame_window_radius_of(config: Any) -> int:
    """The frame window the configured model sees around each frame: ``model.window_radius``
    for ``model.temporal: window``, 0 (one frame per item) otherwise or without a model
    section."""
    model = getattr(config, "model", None)
    if model is None or getattr(model, "temporal", "none") == "none":
        return 0
    radius = getattr(model, "window_radius", None)
    if radius is None:
        raise ValueError("model.temporal is window but model.window_radius is not set")
    return int(radius)


def evaluation_settings(masks: Any) -> list[MaskSetting]:
    """The configured evaluation masks, e.g. Uniform 8, ktGaussian 16, ktRadial 24."""
    return [MaskSetting(item.pattern, int(item.acceleration)) for item in masks.evaluation]


def evaluation_masks_of(config: Any) -> EvaluationMasks:
    """The configured evaluation masks: the settings of ``masks.evaluation``, one per image,
    fixed and seeded with the run's ``seed``."""
    return EvaluationMasks(
        tuple(evaluation_settings(config.masks)),
        acs_width=int(config.masks.acs_width),
        seed=int(config.seed),
        reference_matrix=reference_matrix_from_config(config.masks),
    )


def evaluation_dataset(
    files: list[Path],
    config: Any,
    selection: str = "ranking",
    show_progress: bool = False,
    **options: Any,
) -> SliceDataset:
    """An eval-mode dataset of ``files``: the configured masks (fixed, seeded), the ranking
    selection unless ``all`` is asked for, the data config's readout handling."""
    return SliceDataset(
        files,
        evaluation_masks_of(config),
        remove_oversampling=bool(config.data.remove_oversampling),
        selection=selection,
        show_progress=show_progress,
        frame_window_radius=frame_window_radius_of(config),
        **options,
    )


def training_dataset(
    files: list[Path], config: Any, seed: int, show_progress: bool = False, **options: Any
) -> SliceDataset:
    """A train-mode dataset of ``files``: masks drawn from the configured sampler with
    ``seed``, the data config's readout handling."""
    return SliceDataset(
        files,
        TrainingMasks(MaskSampler.from_config(config.masks, seed=seed), seed),
        remove_oversampling=bool(config.data.remove_oversampling),
        show_progress=show_progress,
        frame_window_radius=frame_window_radius_of(config),
        **options,
    )
