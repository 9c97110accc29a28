"""A segmented breath-hold cine: one segment of ky lines per heartbeat, and what moves between
heartbeats.

A clinical bSSFP cine is not acquired frame by frame: every heartbeat of the breath-hold
acquires one segment of ky lines for *every* frame (linear ordering: the first beat the
bottom lines, the last beat the top ones), so each frame's k-space is stitched together from
8-12 heartbeats. What changes between heartbeats therefore makes the segments of one frame
disagree (ghosting along the phase encode), the same way in every frame:

- the breath-hold drifts: the chest creeps a little during the hold (0.5-3 mm over the
  hold, mostly along one direction);
- beat-to-beat jitter: the heart and chest sit a little differently at each trigger
  (about 0.3 mm), and the signal varies by a percent or two (RR variability changes how
  far magnetisation recovered).

Both are modelled as a rigid in-plane shift and a gain per heartbeat applied to that beat's
lines of the coil k-space. Each slice is its own breath-hold. Not modelled: through-plane
breathing (slice positions stay put), contraction that differs from beat to beat, and
arrhythmia.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_BEATS = (8, 13)  # heartbeats per breath-hold, drawn in [8, 12]
_DRIFT_MM = (0.5, 3.0)
_JITTER_MM = 0.3
_GAIN_SPREAD = 0.015


@dataclasses.dataclass(frozen=True)
class BreathHold:
    """What each heartbeat of one slice's breath-hold contributes.

    Attributes:
        shifts_mm: (beats, 2) in-plane (dy, dx) displacement of the chest at each beat.
        gains: (beats,) signal gain of each beat.
    """

    shifts_mm: np.ndarray
    gains: np.ndarray

    @property
    def beats(self) -> int:
        return int(self.gains.shape[0])

    def beat_of_lines(self, num_ky: int) -> np.ndarray:
        """int (ky,): the heartbeat that acquires each line (linear ordering)."""
        return np.minimum(np.arange(num_ky) * self.beats // num_ky, self.beats - 1)

    def modulation(self, num_ky: int, num_kx: int, dy_mm: float, dx_mm: float) -> np.ndarray:
        """complex64 (ky, kx) factor of centred k-space: each line's beat gain times the phase
        ramp of that beat's shift (a shift by d multiplies k-space by exp(-2 pi i k . d)).

        Args:
            num_ky, num_kx: the stored matrix (readout oversampling included).
            dy_mm, dx_mm: its pixel spacing.
        """
        ky = (np.arange(num_ky) - num_ky // 2) / (num_ky * dy_mm)
        kx = (np.arange(num_kx) - num_kx // 2) / (num_kx * dx_mm)
        beat = self.beat_of_lines(num_ky)
        dy = self.shifts_mm[beat, 0][:, None]
        dx = self.shifts_mm[beat, 1][:, None]
        phase = -2 * np.pi * (ky[:, None] * dy + kx[None, :] * dx)
        return (self.gains[beat][:, None] * np.exp(1j * phase)).astype(np.complex64)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary (sidecars)."""
        extent = np.linalg.norm(self.shifts_mm - self.shifts_mm.mean(axis=0), axis=1)
        return {
            "beats": self.beats,
            "largest_displacement_mm": float(extent.max()),
            "gain_range": [float(self.gains.min()), float(self.gains.max())],
        }


def sample_breath_hold(rng: np.random.Generator) -> BreathHold:
    """One slice's breath-hold: a drift over the hold plus per-beat jitter and gain."""
    beats = int(rng.integers(*_BEATS))
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    drift = rng.uniform(*_DRIFT_MM)
    progress = np.linspace(-0.5, 0.5, beats)[:, None]
    shifts = drift * progress * direction + rng.normal(0.0, _JITTER_MM, (beats, 2))
    gains = 1.0 + rng.normal(0.0, _GAIN_SPREAD, beats)
    return BreathHold(shifts_mm=shifts, gains=gains)


def still_breath_hold() -> BreathHold:
    """A breath-hold in which nothing moves (single-shot and frameless series)."""
    return BreathHold(shifts_mm=np.zeros((1, 2)), gains=np.ones(1))
