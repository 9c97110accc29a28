"""The classical baselines of an exam: tuned on validation files, named as reports name them.

An evaluation or study asks for classical methods by name (:data:`BASELINES`): the three
methods of :mod:`.methods` and ``best-classical``, the method tuning found best on the
validation files at that mask setting (so every comparison and verdict can name the
strongest classical method without looking at the exam). :func:`validation_slices` turns a
dataset of validation files into the slices :func:`~.tuning.tune_setting` scores;
:func:`reconstructors_for` builds the named reconstructors at one mask setting, from what
tuning chose there or, untuned, from each method's defaults.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from cardiomm.classical.cache import ResultCache
from cardiomm.classical.calibration import EspiritSettings
from cardiomm.classical.methods import METHODS
from cardiomm.classical.reconstructor import ClassicalReconstructor
from cardiomm.classical.tuning import SettingChoice, TuningGrid, ValidationSlice
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.errors import DataFileError

BEST_CLASSICAL = "best-classical"
BASELINES: tuple[str, ...] = (*METHODS, BEST_CLASSICAL)


def is_classical(name: str) -> bool:
    """Whether ``name`` is a classical baseline of this module."""
    return name in BASELINES


def validation_slices(dataset: SliceDataset, limit: int = 0) -> list[ValidationSlice]:
    """The slices of ``dataset``'s selected images, each with every frame and the selected
    frames to score, in index order; at most ``limit`` slices (0: all) spread evenly over
    the dataset so every file and site has a say. Unreadable files are skipped (the dataset
    reports them)."""
    slices: dict[tuple[int, int], list[int]] = defaultdict(list)
    for item, image in enumerate(dataset.index.images):
        slices[(image.file_number, image.slice_index)].append(item)
    groups = list(slices.values())
    if limit and len(groups) > limit:
        step = len(groups) / limit
        groups = [groups[int(position * step)] for position in range(limit)]
    chosen = []
    for items in groups:
        try:
            cine = dataset.load_cine(items[0])
        except DataFileError:
            continue
        frames = tuple(dataset.index.images[item].frame for item in items)
        chosen.append(
            ValidationSlice(
                cine.masked_kspace, cine.masks, cine.targets, frames, dataset.remove_oversampling
            )
        )
    return chosen


def reconstructors_for(
    names: Sequence[str],
    choice: SettingChoice | None,
    grid: TuningGrid | None = None,
    cache: ResultCache | None = None,
) -> list[ClassicalReconstructor]:
    """The named classical reconstructors at one mask setting.

    Args:
        names: from :data:`BASELINES`.
        choice: what tuning chose at this setting (None: each method's default lambda and
            the default ESPIRiT settings; ``best-classical`` then needs a choice).
        grid: the tuning grid (its solver iterations are the exam's too).
        cache: the result store.

    Raises:
        ValueError: an unknown name, or ``best-classical`` without a tuning choice.
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(
            f"unknown classical baseline(s) {', '.join(unknown)}; choose from "
            f"{', '.join(BASELINES)}"
        )
    grid = grid or TuningGrid()
    built = []
    for name in names:
        if name == BEST_CLASSICAL:
            if choice is None:
                raise ValueError(
                    f"{BEST_CLASSICAL} is the method tuning chose on validation files; "
                    "turn tuning on (classical.tune=true) or name a method"
                )
            method_name = choice.best_method
        else:
            method_name = name
        if choice is None:
            method = grid.method(method_name)
            espirit = EspiritSettings()
        else:
            method = grid.method(method_name, choice.regularization[method_name])
            espirit = choice.espirit
        built.append(ClassicalReconstructor(method, espirit, cache, name=name))
    return built
