"""Cardiac timing and LV size through the cycle, with an exactly known ejection fraction.

The LV cavity is half a prolate ellipsoid whose equatorial plane is the mitral (base) plane.
Seen in a short-axis slice at height ``h`` above the cavity apex it is an ellipse of area
``pi R^2 f(h, L)`` with ``f = 1 - ((L - h) / L)^2`` for ``0 < h < L`` (else 0); ``R`` is the
equatorial radius and ``L`` the cavity length.

Volumes follow the short-axis stack convention: the sum over the cine SAX slices of cavity area
times slice thickness. The apex is fixed and the base descends (long-axis shortening), so for a
contraction phase ``phi`` (0 end-diastole, 1 end-systole) the length is
``L(phi) = L_ED (1 - s phi)`` and ``R(phi)`` is solved so that the stack volume is
``EDV (1 - EF phi)``. The stack EF is therefore the subject's EF exactly; what a label map
adds is only the pixel discretisation of each cavity area.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.subjects import Subject

# Diastole: rapid filling brings back this share of the stroke volume, then diastasis, then the
# atrial kick the rest (fractions of the diastolic interval).
_EARLY_FILLING_SHARE = 0.8
_EARLY_FILLING_END = 0.45
_ATRIAL_KICK_START = 0.75


def frame_times_ms(num_frames: int, rr_ms: float) -> np.ndarray:
    """Trigger delays of ``num_frames`` cine frames spread over one RR interval: (frames,)."""
    return np.arange(num_frames) * (rr_ms / num_frames)


def end_systole_ms(subject: Subject, num_frames: int | None = None) -> float:
    """End-systolic time; with ``num_frames`` it is moved onto the nearest cine frame, so the
    frames contain end-systole exactly (the frame-wise EF is the stated EF)."""
    nominal = subject.systole_fraction * subject.rr_ms
    if num_frames is None or num_frames < 2:
        return nominal
    step = subject.rr_ms / num_frames
    index = int(np.clip(np.round(nominal / step), 1, num_frames - 1))
    return index * step


def contraction(times_ms: np.ndarray, rr_ms: float, end_systole: float) -> np.ndarray:
    """Contraction phase ``phi`` in [0, 1] at each time (0 end-diastole, 1 end-systole).

    Systole is a half cosine; diastole is rapid filling, diastasis and the atrial kick.
    """
    t = np.mod(np.asarray(times_ms, dtype=float), rr_ms)
    phase = np.empty_like(t)
    systole = t <= end_systole
    phase[systole] = 0.5 * (1 - np.cos(np.pi * t[systole] / end_systole))
    diastole_length = rr_ms - end_systole
    since = (t[~systole] - end_systole) / diastole_length
    early = _ramp(since / _EARLY_FILLING_END)
    late = _ramp((since - _ATRIAL_KICK_START) / (1 - _ATRIAL_KICK_START))
    phase[~systole] = 1 - _EARLY_FILLING_SHARE * early - (1 - _EARLY_FILLING_SHARE) * late
    return phase


def diastolic_phase(subject: Subject) -> float:
    """Contraction phase of single-phase scans (mapping, LGE, weighted): mid-diastole."""
    return float(
        contraction(np.array([0.75 * subject.rr_ms]), subject.rr_ms, end_systole_ms(subject))[0]
    )


def _ramp(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 - np.cos(np.pi * np.clip(x, 0.0, 1.0)))


@dataclasses.dataclass(frozen=True)
class LVModel:
    """The LV cavity of one subject, calibrated on its cine SAX stack.

    Attributes:
        stack_heights_mm: (slices,) cine SAX slice heights above the cavity apex, base first.
        slice_thickness_mm: cine SAX slice thickness (= spacing, no gap).
        length_mm: end-diastolic cavity length.
        shortening: long-axis shortening at end-systole.
        edv_ml: end-diastolic stack volume.
        ejection_fraction: stack EF.
        eccentricity: in-plane cavity axis ratio factor.
    """

    stack_heights_mm: np.ndarray
    slice_thickness_mm: float
    length_mm: float
    shortening: float
    edv_ml: float
    ejection_fraction: float
    eccentricity: float

    def length(self, phase: float) -> float:
        return self.length_mm * (1 - self.shortening * phase)

    def radius(self, phase: float) -> float:
        """Equatorial cavity radius (mm) that gives the stack volume ``EDV (1 - EF phase)``."""
        coverage = (
            self.slice_thickness_mm * area_factors(self.stack_heights_mm, self.length(phase)).sum()
        )
        volume_mm3 = self.edv_ml * 1000.0 * (1 - self.ejection_fraction * phase)
        return float(np.sqrt(volume_mm3 / (np.pi * coverage)))

    def volume_ml(self, phase: float) -> float:
        """Stack volume (mL) at a contraction phase, from the analytic slice areas."""
        areas = self.cavity_areas_mm2(self.stack_heights_mm, phase)
        return float(areas.sum() * self.slice_thickness_mm / 1000.0)

    def cavity_axes(self, heights_mm: np.ndarray, phase: float) -> tuple[np.ndarray, np.ndarray]:
        """Cavity ellipse semi-axes (major, minor) in mm at each slice height: two (slices,)."""
        scale = self.radius(phase) * np.sqrt(area_factors(heights_mm, self.length(phase)))
        return scale * self.eccentricity, scale / self.eccentricity

    def cavity_areas_mm2(self, heights_mm: np.ndarray, phase: float) -> np.ndarray:
        major, minor = self.cavity_axes(np.asarray(heights_mm, dtype=float), phase)
        return np.pi * major * minor


def area_factors(heights_mm: np.ndarray, length_mm: float) -> np.ndarray:
    """``f(h, L)``: cavity area of each slice relative to the equatorial area, (slices,)."""
    heights = np.asarray(heights_mm, dtype=float)
    inside = (heights > 0) & (heights < length_mm)
    return np.where(inside, 1 - ((length_mm - heights) / length_mm) ** 2, 0.0)


def sax_stack(subject: Subject, num_slices: int) -> tuple[np.ndarray, float]:
    """Cine SAX slice heights above the cavity apex (base first) and the slice thickness.

    The stack covers the cavity plus half the apical wall; its first slice sits a quarter of a
    slice below the end-diastolic base, so it shows the LV at end-diastole and the atrium once
    the base has descended in systole, as real basal slices do.
    """
    if num_slices < 1:
        raise ValueError(f"a SAX stack needs at least one slice, got {num_slices}")
    length = subject.lv_length_mm
    thickness = (length + 0.5 * subject.wall_mm[2]) / num_slices
    heights = length - 0.25 * thickness - thickness * np.arange(num_slices)
    return np.maximum(heights, 0.1 * thickness), float(thickness)


def lv_model(subject: Subject, num_sax_slices: int) -> LVModel:
    """The subject's LV calibrated on its cine SAX stack of ``num_sax_slices`` slices."""
    heights, thickness = sax_stack(subject, num_sax_slices)
    radius = subject.lv_radius_mm
    edv_ml = np.pi * radius**2 * thickness * area_factors(heights, subject.lv_length_mm).sum()
    return LVModel(
        stack_heights_mm=heights,
        slice_thickness_mm=thickness,
        length_mm=subject.lv_length_mm,
        shortening=subject.long_axis_shortening,
        edv_ml=float(edv_ml / 1000.0),
        ejection_fraction=subject.ejection_fraction,
        eccentricity=subject.lv_eccentricity,
    )


def mapping_heights(subject: Subject, num_slices: int) -> np.ndarray:
    """Basal-to-apical heights of a short mapping / weighted stack (AHA base, mid, apex levels)."""
    levels = np.linspace(0.25, 0.75, num_slices) if num_slices > 1 else np.array([0.5])
    return subject.lv_length_mm * (1 - levels)
