"""Signal equations: tissue label maps -> complex images for each series kind.

Every function takes parameter maps that broadcast against each other (frames, ny, nx) and
returns the transverse magnetisation in units of the proton density.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cardiomm.data.synthetic.labels import BLOOD_LABELS, Label

if TYPE_CHECKING:
    from cardiomm.data.synthetic.sequences import Sequence
    from cardiomm.data.synthetic.tissues import TissueTable

# Adiabatic inversion pulses invert a little less than fully.
INVERSION_EFFICIENCY = 0.96
# Through-plane flow brings unsaturated blood into a cine slice every beat: bright-blood bSSFP
# blood is brighter than its steady state. Without a flow profile every frame gets this gain.
CINE_INFLOW_GAIN = 1.3
# With one (cine_inflow_gain), the gain follows how fast blood moves in each frame: the
# ventricles fill and empty (both directions count), the atria and great vessels carry
# their peak flow in systole; a smooth pattern moving through the frames adds the uneven
# inflow of a real blood pool.
_INFLOW_BASE = 1.1
_VENTRICULAR_INFLOW = 0.35
_SYSTOLIC_INFLOW = 0.5
_INFLOW_PATTERN = 0.12
_VENTRICLES = (Label.LV_BLOOD, Label.RV_BLOOD)


def bssfp(
    density: np.ndarray,
    t1_ms: np.ndarray,
    t2_ms: np.ndarray,
    flip_rad: np.ndarray,
    tr_ms: float,
    off_resonance_hz: np.ndarray,
) -> np.ndarray:
    """Balanced SSFP steady state at TE = TR / 2, complex.

    The full off-resonance profile (Hargreaves 2001; Xiang and Hoff 2014) with 180-degree RF
    phase cycling: on resonance it is ``M0 sin(a) / ((T1/T2 + 1) - cos(a) (T1/T2 - 1))``; the
    signal drops to a dark band where the off-resonance phase per TR reaches a multiple of 2 pi.
    """
    e1 = np.exp(-tr_ms / t1_ms)
    e2 = np.exp(-tr_ms / t2_ms)
    theta = np.pi + 2 * np.pi * off_resonance_hz * tr_ms / 1000.0
    cos_a = np.cos(flip_rad)
    c = e2 * (e1 - 1) * (1 + cos_a)
    d = (1 - e1 * cos_a) - (e1 - cos_a) * e2**2
    magnitude = density * (1 - e1) * np.sin(flip_rad) * np.sqrt(e2) / (c * np.cos(theta) + d)
    half_turn = np.exp(0.5j * theta)
    # e^{i theta/2} (1 - E2 e^{-i theta}) with a single complex exponential.
    return magnitude * (half_turn - e2 * half_turn.conj())


def inversion_recovery(
    t1_ms: np.ndarray, inversion_ms: np.ndarray, period_ms: float | None = None
) -> np.ndarray:
    """Longitudinal magnetisation (signed, in M0) at ``inversion_ms`` after an inversion.

    With ``period_ms`` the inversion repeats every period (steady state, LGE); without it the
    magnetisation was fully relaxed, giving ``1 - (1 + eff) exp(-TI / T1)``.
    """
    before = 1.0
    if period_ms is not None:
        recovery = np.exp(-period_ms / t1_ms)
        before = (1 - recovery) / (1 + INVERSION_EFFICIENCY * recovery)
    return 1 - (1 + INVERSION_EFFICIENCY * before) * np.exp(-inversion_ms / t1_ms)


def inversion_null_time(t1_ms: float, period_ms: float) -> float:
    """Inversion time at which tissue of ``t1_ms`` crosses zero, one inversion per period
    (the TI an LGE scout picks for myocardium, or STIR for fat)."""
    recovery = np.exp(-period_ms / t1_ms)
    before = (1 - recovery) / (1 + INVERSION_EFFICIENCY * recovery)
    return float(t1_ms * np.log(1 + INVERSION_EFFICIENCY * before))


def spin_echo(t1_ms: np.ndarray, t2_ms: np.ndarray, tr_ms: float, te_ms: float) -> np.ndarray:
    """Saturation-recovery spin echo (turbo spin echo contrast), in M0."""
    return (1 - np.exp(-tr_ms / t1_ms)) * np.exp(-te_ms / t2_ms)


def tse_transmit_factor(b1: np.ndarray) -> np.ndarray:
    """Spin-echo signal loss where the flip angle misses 90/180 degrees (B1+ shading)."""
    return np.abs(np.sin(0.5 * np.pi * b1)) ** 3


def cine_inflow_gain(
    labels: np.ndarray, phases: np.ndarray, pattern: np.ndarray | None = None
) -> np.ndarray:
    """Blood signal gain of each cine frame from the flow at that point of the cycle.

    Args:
        labels: uint8 (frames, ny, nx) tissue labels.
        phases: (frames,) contraction phase of each frame (0 end-diastole, 1 end-systole),
            frames spread over one RR interval.
        pattern: optional (frames, ny, nx) smooth pattern of about unit amplitude (uneven
            inflow within the blood pools).

    Returns:
        float32 (frames, ny, nx): 1 outside blood, 1.1-1.6 in blood.
    """
    phases = np.asarray(phases, dtype=float)
    # Central difference around the cycle: how fast the contraction phase changes.
    rate = 0.5 * (np.roll(phases, -1) - np.roll(phases, 1)) if len(phases) > 2 else phases * 0
    largest = float(np.abs(rate).max())
    scale = 1.0 / largest if largest > 0 else 0.0
    ventricular = _INFLOW_BASE + _VENTRICULAR_INFLOW * np.abs(rate) * scale
    systolic = _INFLOW_BASE + _SYSTOLIC_INFLOW * np.clip(rate, 0.0, None) * scale
    blood = np.isin(labels, BLOOD_LABELS)
    ventricles = np.isin(labels, _VENTRICLES)
    gain = np.where(
        ventricles, ventricular[:, None, None], np.where(blood, systolic[:, None, None], 1.0)
    )
    if pattern is not None:
        gain = np.where(blood, gain * (1.0 + _INFLOW_PATTERN * pattern), gain)
    return gain.astype(np.float32)


def render_signal(
    labels: np.ndarray,
    sequence: Sequence,
    tissues: TissueTable,
    b1: np.ndarray,
    off_resonance_hz: np.ndarray,
    texture: np.ndarray,
    blood_gain: np.ndarray | None = None,
) -> np.ndarray:
    """Complex image of every frame of a series.

    Args:
        labels: uint8 (frames, ny, nx) tissue labels.
        sequence: the series' parameters; its frame list matches ``labels``' frames.
        tissues: look-up tables of the tissues as this series sees them.
        b1: relative transmit field (ny, nx).
        off_resonance_hz: B0 off-resonance (ny, nx).
        texture: multiplicative proton-density texture (ny, nx).
        blood_gain: cine only: (frames, ny, nx) inflow gain (:func:`cine_inflow_gain`);
            None: :data:`CINE_INFLOW_GAIN` in every frame.

    Returns:
        complex128 (frames, ny, nx).
    """
    density = tissues.proton_density[labels] * texture
    t1 = tissues.t1_ms[labels]
    t2 = tissues.t2_ms[labels]
    if sequence.blood_signal < 1.0:
        blood = np.isin(labels, BLOOD_LABELS)
        density = np.where(blood, density * sequence.blood_signal, density)
    flip = np.deg2rad(sequence.flip_deg) * b1
    kind = sequence.kind
    if kind == "cine":
        # Fat precesses 3.4 ppm off water, so it sits elsewhere on the bSSFP profile.
        frequency = off_resonance_hz + tissues.chemical_shift_hz[labels]
        inflow = (
            np.where(np.isin(labels, BLOOD_LABELS), CINE_INFLOW_GAIN, 1.0)
            if blood_gain is None
            else blood_gain
        )
        return bssfp(density * inflow, t1, t2, flip, sequence.tr_ms, frequency)
    return _prepared_signal(sequence, density, t1, t2, flip, b1).astype(np.complex128)


def _prepared_signal(
    sequence: Sequence,
    density: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    flip: np.ndarray,
    b1: np.ndarray,
) -> np.ndarray:
    """Real signal of a non-cine series (mapping, LGE, weighted): (frames, ny, nx) or (1, ny,
    nx) per the sequence's frame list, from per-pixel density, T1 / T2 (ms), flip (rad) and
    relative transmit field."""
    kind = sequence.kind
    readout = density * np.sin(flip)
    if kind == "t1map":
        times = np.asarray(sequence.inversion_times_ms)[:, None, None]
        return readout * inversion_recovery(t1, times) * np.exp(-sequence.te_ms / t2)
    if kind == "t2map":
        prep = np.asarray(sequence.t2_prep_ms)[:, None, None]
        recovered = 1 - np.exp(-sequence.recovery_ms / t1)
        return readout * recovered * np.exp(-prep / t2)
    if kind == "lge":
        inversion = sequence.inversion_times_ms[0]
        return readout * inversion_recovery(t1, inversion, sequence.recovery_ms)
    if kind == "t2w":
        # STIR turbo spin echo: fat nulled; short-T1 tissue keeps its negative sign.
        prepared = inversion_recovery(t1, sequence.fat_inversion_ms, sequence.recovery_ms)
        return density * tse_transmit_factor(b1) * prepared * np.exp(-sequence.te_ms / t2)
    return density * tse_transmit_factor(b1) * spin_echo(t1, t2, sequence.tr_ms, sequence.te_ms)
