"""A classical method with its calibration, normalisation, timing and stored results.

:class:`ClassicalReconstructor` turns one slice's undersampled frames into magnitude images:
ESPIRiT maps from the time-averaged k-space (:mod:`.calibration`), the data divided by the
99th percentile of the time-averaged zero-filled RSS image (so one lambda serves every
vendor's units and every gain), the method's solve (:mod:`.methods`), the scale put back.
The magnitude of an image made with RSS-normalised maps is what the reference's
root-sum-of-squares measures, so no further rescaling is needed.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from scipy import fft

from cardiomm.classical.cache import ResultCache, content_digest, result_key
from cardiomm.classical.calibration import EspiritSettings, espirit_maps, time_averaged_kspace
from cardiomm.classical.methods import ClassicalMethod

NORMALISATION_PERCENTILE = 99.0
# ESPIRiT maps kept in memory: the methods and lambdas of a tuning grid share a slice's maps.
_MAPS_KEPT = 16


@dataclasses.dataclass(frozen=True)
class CineReconstruction:
    """Magnitude images of the wanted frames and what they cost.

    Attributes:
        images: float32 (frames wanted, ky, kx).
        calibration_seconds: ESPIRiT's time for this slice (measured when its maps were made).
        solve_seconds: the method's time.
        frames_solved: frames the solve reconstructed (all of a slice for k-t methods).
        cached: the result came from the store (the seconds are those measured then).
    """

    images: np.ndarray
    calibration_seconds: float
    solve_seconds: float
    frames_solved: int
    cached: bool = False


@dataclasses.dataclass(frozen=True)
class SliceCost:
    """What one slice's reconstruction cost: seconds (calibration and solve), frames solved,
    and whether the result came from the store (its seconds those measured then)."""

    seconds: float
    frames_solved: int
    cached: bool


class ClassicalReconstructor:
    """One classical method, ready to reconstruct cine slices.

    Args:
        method: the method and its lambda (:mod:`.methods`).
        espirit: ESPIRiT's settings.
        cache: where results are stored and found (None: always compute).
        name: how reports call it (default: the method's name).
    """

    def __init__(
        self,
        method: ClassicalMethod,
        espirit: EspiritSettings | None = None,
        cache: ResultCache | None = None,
        name: str | None = None,
    ) -> None:
        self.method = method
        self.espirit = espirit or EspiritSettings()
        self.cache = cache
        self.name = name or method.name
        self._maps: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        # Every slice this reconstructor returned, for the report's seconds per image.
        self.costs: list[SliceCost] = []

    def seconds_per_image(self) -> float:
        """Calibration and solve seconds per frame reconstructed, over every slice so far
        (NaN before the first); a stored result counts the seconds measured when it was
        made, so the figure does not depend on what the store held."""
        frames = sum(cost.frames_solved for cost in self.costs)
        if not frames:
            return float("nan")
        return sum(cost.seconds for cost in self.costs) / frames

    def describe(self) -> dict[str, object]:
        """What defines this reconstructor's output (its cache key and the report's grid)."""
        import sigpy

        return {
            "method": self.method.name,
            "settings": dataclasses.asdict(self.method),
            "espirit": dataclasses.asdict(self.espirit),
            "sigpy": sigpy.__version__,
        }

    def reconstruct_cine(
        self, masked_kspace: np.ndarray, masks: np.ndarray, frames: Sequence[int]
    ) -> CineReconstruction:
        """Reconstruct frames ``frames`` of one slice.

        Args:
            masked_kspace: complex (frames, coils, ky, kx), centred, zeros where not sampled.
            masks: (frames, ky, kx), 1 / True where sampled.
            frames: the frames wanted (all of the slice's frames inform k-t methods and the
                calibration either way).

        Returns:
            the magnitude images and timings.

        Raises:
            CalibrationError: the data hold no usable calibration region.
        """
        frames = [int(frame) for frame in frames]
        masks = np.asarray(masks, dtype=np.float32)
        masked_kspace = np.asarray(masked_kspace, dtype=np.complex64) * masks[:, None]
        if not frames or min(frames) < 0 or max(frames) >= masked_kspace.shape[0]:
            raise ValueError(
                f"frames {frames} are not frames of a {masked_kspace.shape[0]}-frame slice"
            )
        digest = content_digest(masked_kspace, masks)
        key = result_key(digest, {**self.describe(), "frames": frames})
        if self.cache is not None:
            stored = self.cache.load(key)
            if stored is not None and stored.get("images", np.empty(0)).shape[:1] == (len(frames),):
                return self._counted(
                    CineReconstruction(
                        stored["images"].astype(np.float32),
                        float(stored["calibration_seconds"]),
                        float(stored["solve_seconds"]),
                        int(stored["frames_solved"]),
                        cached=True,
                    )
                )
        maps, calibration_seconds = self._calibrate(digest, masked_kspace, masks)
        scale = normalisation_scale(masked_kspace, masks)
        began = time.perf_counter()
        images = self.method.solve(masked_kspace / scale, masks, maps, frames)
        solve_seconds = time.perf_counter() - began
        magnitude = (np.abs(images) * scale).astype(np.float32)
        solved = masked_kspace.shape[0] if self.method.temporal else len(frames)
        result = CineReconstruction(magnitude, calibration_seconds, solve_seconds, solved)
        if self.cache is not None and np.isfinite(magnitude).all():
            self.cache.store(
                key,
                {
                    "images": magnitude,
                    "calibration_seconds": np.float64(calibration_seconds),
                    "solve_seconds": np.float64(solve_seconds),
                    "frames_solved": np.int64(solved),
                },
            )
        return self._counted(result)

    def _counted(self, result: CineReconstruction) -> CineReconstruction:
        seconds = result.calibration_seconds + result.solve_seconds
        self.costs.append(SliceCost(seconds, result.frames_solved, result.cached))
        return result

    def _calibrate(
        self, digest: str, masked_kspace: np.ndarray, masks: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """ESPIRiT maps of the slice and the seconds they took when they were made (a slice's
        cost includes its calibration whether or not the maps were reused)."""
        import sigpy

        key = result_key(
            digest, {"espirit": dataclasses.asdict(self.espirit), "sigpy": sigpy.__version__}
        )
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        stored = self.cache.load(key) if self.cache is not None else None
        if stored is not None and "maps" in stored:
            maps, seconds = stored["maps"], float(stored.get("seconds", np.float64(0.0)))
        else:
            began = time.perf_counter()
            maps = espirit_maps(masked_kspace, masks, self.espirit)
            seconds = time.perf_counter() - began
            if self.cache is not None:
                self.cache.store(key, {"maps": maps, "seconds": np.float64(seconds)})
        self._maps[key] = (maps, seconds)
        while len(self._maps) > _MAPS_KEPT:
            self._maps.popitem(last=False)
        return maps, seconds

    def share_maps_with(self, other: ClassicalReconstructor) -> None:
        """Use the same in-memory maps as ``other`` (reconstructors of one tuning grid)."""
        self._maps = other._maps


@dataclasses.dataclass(frozen=True)
class CineJob:
    """One slice for one reconstructor (a unit of parallel work).

    Attributes:
        reconstructor: who reconstructs.
        masked_kspace: complex (frames, coils, ky, kx).
        masks: (frames, ky, kx).
        frames: frames wanted.
    """

    reconstructor: ClassicalReconstructor
    masked_kspace: np.ndarray
    masks: np.ndarray
    frames: tuple[int, ...]


def run_jobs(
    jobs: Sequence[CineJob], workers: int = 1, show_progress: bool = False
) -> list[CineReconstruction]:
    """Reconstruct every job, in ``workers`` processes (results in job order).

    With a cache the results are stored as they come, so a later sequential pass (the
    study's scoring) finds them; the work is the same whatever the worker count.
    """
    from cardiomm.progress import progress_bar

    if workers <= 1 or len(jobs) <= 1:
        return [
            job.reconstructor.reconstruct_cine(job.masked_kspace, job.masks, job.frames)
            for job in progress_bar(list(jobs), "classical reconstructions", show_progress)
        ]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_job, job) for job in jobs]
        return [
            future.result()
            for future in progress_bar(futures, "classical reconstructions", show_progress)
        ]


def _run_job(job: CineJob) -> CineReconstruction:
    return job.reconstructor.reconstruct_cine(job.masked_kspace, job.masks, job.frames)


def normalisation_scale(masked_kspace: np.ndarray, masks: np.ndarray) -> float:
    """The 99th percentile of the time-averaged zero-filled RSS image (1 for an empty one)."""
    average = time_averaged_kspace(masked_kspace, masks)
    coil_images = fft.fftshift(
        fft.ifft2(fft.ifftshift(average, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(axis=0))
    scale = float(np.percentile(rss, NORMALISATION_PERCENTILE))
    return scale if np.isfinite(scale) and scale > 0 else 1.0
