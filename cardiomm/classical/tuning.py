"""Choosing the classical methods' settings on validation data, never on the exam.

Per mask setting, on the validation slices only:

1. ESPIRiT: every setting of the ESPIRiT grid calibrates every slice; CG-SENSE (the method
   that depends most on its maps) at the middle of its lambda grid scores each, and the best
   ESPIRiT setting serves all three methods at this mask setting;
2. lambda: each method runs over its log-spaced grid; when the best value sits on an edge of
   the grid the grid is extended by one step past it (up to ``extensions`` times), so a
   choice is never an artefact of where the grid stopped;
3. the best classical method at this mask setting is the one with the highest validation
   PSNR.

Scores are the exam's: PSNR and SSIM of the challenge's centre crop, per image, averaged per
slice, then over slices. Every reconstruction goes through the result store, so a second
tuning (another study on the same files) costs nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from cardiomm.classical.cache import ResultCache
from cardiomm.classical.calibration import EspiritSettings
from cardiomm.classical.methods import METHODS, ClassicalMethod, method_from_name
from cardiomm.classical.reconstructor import CineJob, ClassicalReconstructor, run_jobs
from cardiomm.metrics import evaluate_image, ranking_crop

DEFAULT_LAMBDAS: dict[str, tuple[float, ...]] = {
    "cg-sense": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "l1-wavelet": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "kt-sparse": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
}
DEFAULT_ESPIRIT_GRID: tuple[EspiritSettings, ...] = (
    EspiritSettings(threshold=0.01, crop=0.95),
    EspiritSettings(threshold=0.02, crop=0.95),
    EspiritSettings(threshold=0.05, crop=0.95),
    EspiritSettings(threshold=0.02, crop=0.0),
)


@dataclasses.dataclass(frozen=True)
class ValidationSlice:
    """One validation slice at one mask setting.

    Attributes:
        masked_kspace: complex (frames, coils, ky, kx).
        masks: (frames, ky, kx).
        targets: float32 (frames, ky, kx), the fully sampled RSS images.
        frames: the frames scored (the ranking's).
        oversampling_removed: whether the readout oversampling was cropped (the ranked crop
            depends on it).
    """

    masked_kspace: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    frames: tuple[int, ...]
    oversampling_removed: bool = True


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One scored point of the grid."""

    setting: str
    method: str
    espirit: EspiritSettings
    regularization: float
    psnr: float
    ssim: float
    slices: int


@dataclasses.dataclass(frozen=True)
class SettingChoice:
    """What tuning chose for one mask setting.

    Attributes:
        setting: e.g. ``ktRadial24``.
        espirit: the ESPIRiT settings all methods use there.
        regularization: method -> chosen lambda.
        best_method: the method with the highest validation PSNR.
        points: every grid point scored.
    """

    setting: str
    espirit: EspiritSettings
    regularization: dict[str, float]
    best_method: str
    points: tuple[GridPoint, ...]

    def validation_psnr(self, method: str) -> float:
        """The chosen lambda's validation PSNR of ``method``."""
        point = self.chosen_point(method)
        if point is None:
            raise ValueError(f"no scored grid point of {method} at its chosen settings")
        return point.psnr

    def chosen_point(self, method: str) -> GridPoint | None:
        """The scored grid point of ``method`` at the chosen ESPIRiT settings and lambda (the
        best one should the grid hold it twice), or None when the record holds none."""
        chosen = [
            point
            for point in self.points
            if point.method == method
            and point.espirit == self.espirit
            and math.isclose(point.regularization, self.regularization[method])
        ]
        return max(chosen, key=lambda point: point.psnr) if chosen else None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (the study's tuning record)."""
        return {
            "setting": self.setting,
            "espirit": dataclasses.asdict(self.espirit),
            "regularization": dict(self.regularization),
            "best_method": self.best_method,
            "points": [
                {**dataclasses.asdict(point), "espirit": dataclasses.asdict(point.espirit)}
                for point in self.points
            ],
        }

    @classmethod
    def from_dict(cls, values: dict) -> SettingChoice:
        points = tuple(
            GridPoint(**{**point, "espirit": EspiritSettings(**point["espirit"])})
            for point in values["points"]
        )
        return cls(
            setting=str(values["setting"]),
            espirit=EspiritSettings(**values["espirit"]),
            regularization={key: float(value) for key, value in values["regularization"].items()},
            best_method=str(values["best_method"]),
            points=points,
        )


@dataclasses.dataclass(frozen=True)
class TuningGrid:
    """What is searched.

    Attributes:
        methods: the methods tuned.
        lambdas: method -> its initial log-spaced lambda grid (increasing).
        espirit: the ESPIRiT settings tried.
        extensions: how many times a grid may grow past an edge that holds its best value.
        max_iter: method -> solver iterations (the same in tuning and in the exam).
    """

    methods: tuple[str, ...] = tuple(METHODS)
    lambdas: dict[str, tuple[float, ...]] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_LAMBDAS)
    )
    espirit: tuple[EspiritSettings, ...] = DEFAULT_ESPIRIT_GRID
    extensions: int = 2
    max_iter: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown classical method(s) {unknown}; choose from {list(METHODS)}")
        for method in self.methods:
            values = self.lambdas.get(method, ())
            if len(values) < 2 or any(b <= a for a, b in itertools.pairwise(values)):
                raise ValueError(
                    f"the lambda grid of {method} must hold at least two increasing values, "
                    f"got {list(values)}"
                )
            if min(values) <= 0:
                raise ValueError(f"lambdas of {method} must be > 0, got {list(values)}")
        if not self.espirit:
            raise ValueError("the ESPIRiT grid needs at least one setting")

    def method(self, name: str, regularization: float | None = None) -> ClassicalMethod:
        """Method ``name`` with this grid's solver iterations and ``regularization`` (None:
        the method's default lambda)."""
        settings: dict[str, float] = {}
        if regularization is not None:
            settings["regularization"] = regularization
        if name in self.max_iter:
            settings["max_iter"] = int(self.max_iter[name])
        return method_from_name(name, **settings)


def tune_setting(
    setting: str,
    slices: Sequence[ValidationSlice],
    grid: TuningGrid | None = None,
    cache: ResultCache | None = None,
    workers: int = 1,
    show_progress: bool = False,
) -> SettingChoice:
    """Choose ESPIRiT, every method's lambda and the best method at one mask setting.

    Raises:
        ValueError: no validation slices.
    """
    if not slices:
        raise ValueError(f"no validation slices to tune the classical methods at {setting}")
    grid = grid or TuningGrid()
    scorer = _GridScorer(setting, slices, grid, cache, workers, show_progress)
    reference_method = "cg-sense" if "cg-sense" in grid.methods else grid.methods[0]
    middle = _middle(grid.lambdas[reference_method])
    calibration = scorer.score([(reference_method, espirit, middle) for espirit in grid.espirit])
    espirit = max(calibration, key=lambda point: point.psnr).espirit
    chosen: dict[str, float] = {}
    best_scores: dict[str, float] = {}
    for name in grid.methods:
        chosen[name], best_scores[name] = _tune_lambda(scorer, name, espirit)
    best_method = max(best_scores, key=lambda name: best_scores[name])
    return SettingChoice(setting, espirit, chosen, best_method, tuple(scorer.points))


@dataclasses.dataclass
class _GridScorer:
    """Scores (method, ESPIRiT, lambda) candidates on the validation slices of one mask
    setting, keeping every point in the order it was scored."""

    setting: str
    slices: Sequence[ValidationSlice]
    grid: TuningGrid
    cache: ResultCache | None
    workers: int
    show_progress: bool
    points: list[GridPoint] = dataclasses.field(default_factory=list)

    def score(self, candidates: list[tuple[str, EspiritSettings, float]]) -> list[GridPoint]:
        """One point per candidate, in the candidates' order (all reconstructed as one batch)."""
        slices = self.slices
        jobs = [
            CineJob(
                ClassicalReconstructor(self.grid.method(name, value), espirit, self.cache),
                item.masked_kspace,
                item.masks,
                item.frames,
            )
            for name, espirit, value in candidates
            for item in slices
        ]
        results = run_jobs(jobs, self.workers, self.show_progress)
        scored = []
        for index, (name, espirit, value) in enumerate(candidates):
            mine = results[index * len(slices) : (index + 1) * len(slices)]
            psnr, ssim = _mean_scores(slices, [result.images for result in mine])
            scored.append(GridPoint(self.setting, name, espirit, value, psnr, ssim, len(slices)))
        self.points.extend(scored)
        return scored


def _tune_lambda(scorer: _GridScorer, name: str, espirit: EspiritSettings) -> tuple[float, float]:
    """Method ``name``'s best lambda with ``espirit`` and its validation PSNR: its grid, reusing
    points already scored, extended one step past an edge that wins (up to ``extensions``)."""
    grid = scorer.grid
    values = list(grid.lambdas[name])
    known = {
        point.regularization: point
        for point in scorer.points
        if point.method == name and point.espirit == espirit
    }
    for _ in range(grid.extensions + 1):
        todo = [value for value in values if value not in known]
        for point in scorer.score([(name, espirit, value) for value in todo]):
            known[point.regularization] = point
        best = max(values, key=lambda value: known[value].psnr)
        ratio = values[1] / values[0]
        if best == values[0]:
            values.insert(0, values[0] / ratio)
        elif best == values[-1]:
            values.append(values[-1] * ratio)
        else:
            break
    best = max((value for value in values if value in known), key=lambda v: known[v].psnr)
    return best, known[best].psnr


def _middle(values: Sequence[float]) -> float:
    return float(values[len(values) // 2])


def _mean_scores(
    slices: Sequence[ValidationSlice], images: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Mean over slices of each slice's mean centre-crop PSNR and SSIM over its frames."""
    psnrs, ssims = [], []
    for item, reconstructed in zip(slices, images, strict=True):
        scores = [
            evaluate_image(
                ranking_crop(item.targets[frame], item.oversampling_removed),
                ranking_crop(reconstructed[position], item.oversampling_removed),
            )
            for position, frame in enumerate(item.frames)
        ]
        psnrs.append(np.mean([score.psnr for score in scores]))
        ssims.append(np.mean([score.ssim for score in scores]))
    return float(np.mean(psnrs)), float(np.mean(ssims))
