"""Tissue relaxation times and proton density at 0.55 T, 1.5 T, 3 T and 5 T.

Values are rounded from the cardiac MR literature (native MOLLI / SASHA myocardial and blood T1,
T2-prepared bSSFP T2, low-field reports at 0.55 T and early 5 T cardiac studies): T1 grows with
field strength, T2 shrinks slowly. Between the tabulated fields a value is interpolated linearly
in log(field); outside, the nearest tabulated value is used.

Post-contrast T1 (LGE) follows the fast-exchange model
``1/T1_post = 1/T1_native + r1 * C_plasma * V_e``: V_e is the volume the gadolinium reaches
(plasma fraction 1 - Hct = 0.55 for blood, the extracellular volume ECV for tissue).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.labels import NUM_LABELS, Label

TABULATED_FIELDS_T = (0.55, 1.5, 3.0, 5.0)

# Gadobutrol r1 in plasma, 1/(mM s); it falls slowly with field.
_RELAXIVITY = (6.1, 5.2, 5.0, 4.7)

# Fat resonates about 3.4 ppm below water.
FAT_SHIFT_PPM = -3.4
GYROMAGNETIC_MHZ_PER_T = 42.577


@dataclasses.dataclass(frozen=True)
class Tissue:
    """Relaxation and density of one tissue.

    Attributes:
        t1_ms: T1 at each of ``TABULATED_FIELDS_T``.
        t2_ms: T2 at each of ``TABULATED_FIELDS_T``.
        proton_density: relative to pure water.
        ecv: volume fraction reached by extracellular gadolinium.
        is_fat: resonates at the fat frequency.
    """

    t1_ms: tuple[float, float, float, float]
    t2_ms: tuple[float, float, float, float]
    proton_density: float
    ecv: float
    is_fat: bool = False


_BLOOD = Tissue((1120, 1580, 1930, 2150), (290, 260, 220, 170), 0.90, 0.55)
_FAT = Tissue((190, 290, 370, 420), (180, 165, 130, 110), 0.85, 0.12, is_fat=True)

TISSUES: dict[Label, Tissue] = {
    Label.BACKGROUND: Tissue((1, 1, 1, 1), (1, 1, 1, 1), 0.0, 0.0),
    Label.RV_BLOOD: _BLOOD,
    Label.LV_MYOCARDIUM: Tissue((700, 1000, 1200, 1420), (58, 50, 45, 40), 0.75, 0.26),
    Label.LV_BLOOD: _BLOOD,
    Label.SCAR: Tissue((810, 1150, 1380, 1630), (64, 55, 50, 44), 0.80, 0.65),
    Label.RV_MYOCARDIUM: Tissue((700, 1000, 1200, 1420), (58, 50, 45, 40), 0.75, 0.28),
    Label.LA_BLOOD: _BLOOD,
    Label.RA_BLOOD: _BLOOD,
    Label.VESSEL_BLOOD: _BLOOD,
    Label.EPICARDIAL_FAT: _FAT,
    Label.SUBCUTANEOUS_FAT: _FAT,
    Label.LIVER: Tissue((370, 580, 810, 950), (54, 46, 34, 28), 0.70, 0.28),
    Label.LUNG: Tissue((830, 1200, 1300, 1400), (45, 40, 35, 30), 0.10, 0.30),
    Label.SKELETAL_MUSCLE: Tissue((650, 1010, 1410, 1650), (44, 40, 32, 28), 0.70, 0.12),
    Label.BONE_MARROW: Tissue((420, 550, 600, 650), (55, 50, 45, 40), 0.60, 0.15, is_fat=True),
}


@dataclasses.dataclass(frozen=True)
class TissueTable:
    """Per-label look-up arrays at one field strength; index them with a label map.

    Attributes:
        field_strength: tesla.
        t1_ms, t2_ms, proton_density, ecv: float arrays (NUM_LABELS,).
        chemical_shift_hz: (NUM_LABELS,), the fat offset for fat labels, 0 elsewhere.
    """

    field_strength: float
    t1_ms: np.ndarray
    t2_ms: np.ndarray
    proton_density: np.ndarray
    ecv: np.ndarray
    chemical_shift_hz: np.ndarray

    def scaled(
        self, label: Label, t1: float = 1.0, t2: float = 1.0, ecv: float = 1.0
    ) -> TissueTable:
        """A copy with one label's T1, T2 and ECV multiplied (subject and disease variation)."""
        t1_ms, t2_ms, ecv_values = self.t1_ms.copy(), self.t2_ms.copy(), self.ecv.copy()
        t1_ms[label] *= t1
        t2_ms[label] *= t2
        ecv_values[label] = min(ecv_values[label] * ecv, 0.95)
        return dataclasses.replace(self, t1_ms=t1_ms, t2_ms=t2_ms, ecv=ecv_values)

    def post_contrast(self, plasma_concentration_mm: float) -> TissueTable:
        """The same tissues some minutes after a gadolinium bolus (T1 shortened by ECV)."""
        relaxivity = interpolate_in_field(_RELAXIVITY, self.field_strength)
        rate_per_ms = 1.0 / self.t1_ms + relaxivity * plasma_concentration_mm * self.ecv / 1000.0
        return dataclasses.replace(self, t1_ms=1.0 / rate_per_ms)


def interpolate_in_field(values: tuple[float, ...], field_strength: float) -> float:
    """A tabulated quantity at ``field_strength`` (linear in log field, clamped at the ends)."""
    return float(np.interp(np.log(field_strength), np.log(TABULATED_FIELDS_T), values))


def tissue_table(field_strength: float) -> TissueTable:
    """Look-up arrays of every label's native T1, T2, proton density and ECV at a field."""
    if field_strength <= 0:
        raise ValueError(f"field strength must be positive, got {field_strength}")
    t1 = np.zeros(NUM_LABELS)
    t2 = np.zeros(NUM_LABELS)
    density = np.zeros(NUM_LABELS)
    ecv = np.zeros(NUM_LABELS)
    shift = np.zeros(NUM_LABELS)
    fat_hz = FAT_SHIFT_PPM * GYROMAGNETIC_MHZ_PER_T * field_strength
    for label, tissue in TISSUES.items():
        t1[label] = interpolate_in_field(tissue.t1_ms, field_strength)
        t2[label] = interpolate_in_field(tissue.t2_ms, field_strength)
        density[label] = tissue.proton_density
        ecv[label] = tissue.ecv
        shift[label] = fat_hz if tissue.is_fat else 0.0
    return TissueTable(field_strength, t1, t2, density, ecv, shift)
