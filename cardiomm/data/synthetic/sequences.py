"""Sequence parameters of each synthetic series: timing, flip angles, inversion and T2-prep
times, chosen per field strength the way clinical cardiac protocols choose them."""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.contrast import inversion_null_time
from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.motion import end_systole_ms, frame_times_ms
from cardiomm.data.synthetic.subjects import Subject
from cardiomm.data.synthetic.tissues import TissueTable, interpolate_in_field

KINDS = ("cine", "t1map", "t2map", "lge", "t1w", "t2w", "blackblood")

# bSSFP cine: TR (ms) and flip angle (deg) at 0.55, 1.5, 3 and 5 T; SAR lowers the flip at
# high field, gradient performance and low SAR allow long-TR, high-flip cines at 0.55 T.
_CINE_TR_MS = (4.6, 3.1, 2.9, 2.8)
_CINE_FLIP_DEG = (80.0, 60.0, 45.0, 35.0)
# MOLLI-style T1 mapping: inversions this far apart, first at _FIRST_TI_MS.
_FIRST_TI_MS = 100.0
_TI_STEP_MS = 80.0
# Images after each inversion of the clinical MOLLI schemes: 5(3)3, 4(1)3(1)2, 5(1)3(1)3.
_MOLLI_SCHEMES = {8: (5, 3), 9: (4, 3, 2), 11: (5, 3, 3)}
# Default T2-preparation durations (ms) of 3-frame T2 maps.
_T2_PREP_MS = (0.0, 35.0, 55.0)


@dataclasses.dataclass(frozen=True)
class Sequence:
    """How one series was acquired.

    Attributes:
        kind: one of :data:`KINDS`.
        tr_ms, te_ms, flip_deg: readout timing and (nominal) flip angle.
        trigger_times_ms: cine frame delays after the R wave, (frames,).
        inversion_times_ms: T1-map frames' inversion times, or the LGE inversion time.
        t2_prep_ms: T2-map frames' T2-preparation durations.
        recovery_ms: magnetisation recovery before each preparation / repetition time of TSE.
        fat_inversion_ms: STIR inversion time nulling fat (T2w).
        blood_signal: fraction of blood signal left by a black-blood preparation (1 = none).
    """

    kind: str
    tr_ms: float
    te_ms: float
    flip_deg: float
    trigger_times_ms: tuple[float, ...] = ()
    inversion_times_ms: tuple[float, ...] = ()
    t2_prep_ms: tuple[float, ...] = ()
    recovery_ms: float = 0.0
    fat_inversion_ms: float = 0.0
    blood_signal: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def molli_inversion_times(num_frames: int, rr_ms: float) -> tuple[float, ...]:
    """Sorted inversion times of a MOLLI-like scheme with ``num_frames`` images.

    Up to three inversions, 80 ms apart, each followed by one image per heartbeat; 9 frames
    give the 4(1)3(1)2 scheme, 8 frames 5(3)3.
    """
    if num_frames < 1:
        raise ValueError("a T1 map needs at least one frame")
    counts = _MOLLI_SCHEMES.get(num_frames)
    if counts is None:
        inversions = 3 if num_frames >= 7 else 2 if num_frames >= 4 else 1
        counts = tuple(
            num_frames // inversions + (1 if i < num_frames % inversions else 0)
            for i in range(inversions)
        )
    times = [
        _FIRST_TI_MS + inversion * _TI_STEP_MS + beat * rr_ms
        for inversion, count in enumerate(counts)
        for beat in range(count)
    ]
    return tuple(float(t) for t in sorted(times))


def t2_prep_times(num_frames: int) -> tuple[float, ...]:
    """T2-preparation durations (ms) of a T2 map with ``num_frames`` images (0 first)."""
    if num_frames == 3:
        return _T2_PREP_MS
    return tuple(float(t) for t in np.linspace(0.0, 60.0, num_frames))


def sequence_for(
    kind: str,
    tissues: TissueTable,
    subject: Subject,
    num_frames: int,
    rng: np.random.Generator,
    cine_flip_factor: float = 1.0,
) -> Sequence:
    """Parameters of a ``kind`` series for this subject.

    ``tissues`` are the subject's tissues as the series sees them (post-contrast for LGE):
    LGE nulls their myocardial T1, missing the null by a few percent as a TI scout does, and
    STIR nulls their fat. ``cine_flip_factor`` is the vendor's cine flip angle relative to the
    field strength's default (:mod:`.vendors`).
    """
    field_strength = tissues.field_strength
    rr = subject.rr_ms
    if kind == "cine":
        return _cine_sequence(field_strength, rr, num_frames, cine_flip_factor)
    if kind == "t1map":
        return Sequence(
            kind,
            tr_ms=2.7,
            te_ms=1.1,
            flip_deg=35.0,
            inversion_times_ms=molli_inversion_times(num_frames, rr),
        )
    if kind == "t2map":
        return Sequence(
            kind,
            tr_ms=2.7,
            te_ms=1.1,
            flip_deg=70.0 if field_strength < 2 else 40.0,
            t2_prep_ms=t2_prep_times(num_frames),
            recovery_ms=3 * rr,
        )
    if kind == "lge":
        return _lge_sequence(tissues, rr, rng)
    if kind == "t1w":
        return Sequence(
            kind, tr_ms=rr, te_ms=10.0, flip_deg=90.0, recovery_ms=rr, blood_signal=0.25
        )
    if kind == "t2w":
        return _stir_sequence(tissues, rr)
    if kind == "blackblood":
        return Sequence(
            kind, tr_ms=2 * rr, te_ms=30.0, flip_deg=90.0, recovery_ms=2 * rr, blood_signal=0.03
        )
    raise ValueError(f"unknown series kind {kind!r}; choose one of {', '.join(KINDS)}")


def _cine_sequence(
    field_strength: float, rr: float, num_frames: int, cine_flip_factor: float
) -> Sequence:
    """A bSSFP cine: the field's TR and flip angle (times the vendor's factor), frames spread
    over the RR interval."""
    tr = interpolate_in_field(_CINE_TR_MS, field_strength)
    return Sequence(
        "cine",
        tr_ms=tr,
        te_ms=tr / 2,
        flip_deg=interpolate_in_field(_CINE_FLIP_DEG, field_strength) * cine_flip_factor,
        trigger_times_ms=tuple(float(t) for t in frame_times_ms(num_frames, rr)),
    )


def _lge_sequence(tissues: TissueTable, rr: float, rng: np.random.Generator) -> Sequence:
    """An inversion-recovery LGE every other beat, its TI a few percent off the myocardial
    null of ``tissues`` (post-contrast), as a TI scout leaves it."""
    period = 2 * rr
    null = inversion_null_time(float(tissues.t1_ms[Label.LV_MYOCARDIUM]), period)
    return Sequence(
        "lge",
        tr_ms=4.0,
        te_ms=2.0,
        flip_deg=25.0,
        inversion_times_ms=(null * rng.uniform(0.97, 1.08),),
        recovery_ms=period,
    )


def _stir_sequence(tissues: TissueTable, rr: float) -> Sequence:
    """A T2-weighted STIR every other beat: the inversion nulls the fat of ``tissues``."""
    fat_t1 = float(tissues.t1_ms[Label.SUBCUTANEOUS_FAT])
    return Sequence(
        "t2w",
        tr_ms=2 * rr,
        te_ms=65.0,
        flip_deg=90.0,
        recovery_ms=2 * rr,
        fat_inversion_ms=inversion_null_time(fat_t1, 2 * rr),
        blood_signal=0.05,
    )


def cine_end_systole_frame(subject: Subject, num_frames: int) -> int:
    """Index of the end-systolic cine frame."""
    return round(end_systole_ms(subject, num_frames) / (subject.rr_ms / num_frames))
