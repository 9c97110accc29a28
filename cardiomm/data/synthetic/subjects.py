"""Synthetic subjects: body habitus, heart size and function, disease, contrast kinetics.

One :class:`Subject` describes one patient; every series of that patient (cine, mapping, LGE,
weighted) is rendered from it, so the heart is the same object in every view.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DISEASES = ("healthy", "dilated", "hypertrophic", "infarct")
# Share of each disease in a sampled cohort (an all-comers clinical CMR list, roughly).
_DISEASE_WEIGHTS = (0.4, 0.2, 0.2, 0.2)

# Infarct territories: centre angle of the scar from the septum (degrees, towards the
# anterior wall positive) and the apex-to-base level range (0 base, 1 apex) it covers.
SCAR_TERRITORIES = {
    "LAD": (60.0, (0.35, 1.0)),
    "RCA": (-110.0, (0.0, 0.65)),
    "LCx": (170.0, (0.15, 0.8)),
}


@dataclasses.dataclass(frozen=True)
class Scar:
    """A myocardial infarct.

    Attributes:
        territory: coronary territory, ``LAD``, ``RCA`` or ``LCx``.
        centre_deg: sector centre, degrees from the septum direction.
        extent_deg: sector width in degrees.
        transmurality: fraction of the wall, from the endocardium, that is scar (1 = transmural).
        levels: (first, last) apex-to-base level covered, 0 base and 1 apex.
    """

    territory: str
    centre_deg: float
    extent_deg: float
    transmurality: float
    levels: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Body:
    """Torso and arms, in mm; (x right = patient left, y down = posterior) in every view.

    Attributes:
        width, depth: outer torso size.
        exponent_anterior, exponent_posterior: superellipse exponents (flatter back).
        fat_mm: subcutaneous fat (anterior, lateral, posterior).
        muscle_mm: chest-wall / paraspinal muscle (anterior, lateral, posterior).
        offset_mm: torso centre in the image.
        rotation_deg: in-plane rotation of the torso.
        arms_down: the arms lie beside the torso (in the oversampled readout field of view).
        arm_radius: mm.
        vertebra_radius, aorta_radius: mm.
        liver_scale: relative liver size.
    """

    width: float
    depth: float
    exponent_anterior: float
    exponent_posterior: float
    fat_mm: tuple[float, float, float]
    muscle_mm: tuple[float, float, float]
    offset_mm: tuple[float, float]
    rotation_deg: float
    arms_down: bool
    arm_radius: float
    vertebra_radius: float
    aorta_radius: float
    liver_scale: float


@dataclasses.dataclass(frozen=True)
class Subject:
    """One synthetic patient.

    Heart geometry: the LV cavity is half a prolate ellipsoid from the base plane to the apex
    (equatorial radius from ``lv_edv_model_ml`` and ``lv_length_mm``); the apex stays put and
    the base descends by ``long_axis_shortening`` of the length at end-systole.

    Attributes:
        seed: seeds the subject's fine detail (vessels, textures, B0 / B1 fields).
        disease: one of :data:`DISEASES`.
        heart_rate_bpm: beats per minute; the cine covers one RR interval.
        systole_fraction: end-systole time / RR.
        ejection_fraction: LV ejection fraction, exact for the cine SAX stack.
        rv_ejection_fraction: RV ejection fraction (approximate, the RV is drawn, not solved).
        lv_edv_model_ml: end-diastolic volume of the continuous ellipsoid model.
        lv_length_mm: cavity length, base plane to apex, at end-diastole.
        lv_eccentricity: in-plane cavity axis ratio (sqrt of the major / minor ratio).
        wall_mm: (lateral, septal, apical) LV wall thickness at end-diastole.
        rv_wall_mm: RV free-wall thickness.
        rv_depth_mm: RV cavity depth beyond the septum at end-diastole.
        long_axis_shortening: fractional base descent at end-systole.
        epicardial_fat_mm: mean epicardial fat thickness.
        heart_offset_mm: heart centre relative to its standard place in the chest.
        heart_rotation_deg: in-plane rotation of the heart.
        stack_drift_mm: LV centre shift from base to apex in the SAX stack (tilted long axis).
        scar: the infarct, if any.
        myocardial_t1_factor, myocardial_ecv_factor: diffuse disease of the myocardium.
        tissue_t1_jitter: per-subject multiplicative T1 variation of all tissues.
        plasma_gadolinium_mm: plasma gadolinium concentration at the LGE acquisition.
        body: torso and arms.
    """

    seed: int
    disease: str
    heart_rate_bpm: float
    systole_fraction: float
    ejection_fraction: float
    rv_ejection_fraction: float
    lv_edv_model_ml: float
    lv_length_mm: float
    lv_eccentricity: float
    wall_mm: tuple[float, float, float]
    rv_wall_mm: float
    rv_depth_mm: float
    long_axis_shortening: float
    epicardial_fat_mm: float
    heart_offset_mm: tuple[float, float]
    heart_rotation_deg: float
    stack_drift_mm: tuple[float, float]
    scar: Scar | None
    myocardial_t1_factor: float
    myocardial_ecv_factor: float
    tissue_t1_jitter: float
    plasma_gadolinium_mm: float
    body: Body

    @property
    def rr_ms(self) -> float:
        return 60_000.0 / self.heart_rate_bpm

    @property
    def lv_radius_mm(self) -> float:
        """End-diastolic equatorial cavity radius of the continuous model."""
        return float(np.sqrt(1.5 * self.lv_edv_model_ml * 1000.0 / (np.pi * self.lv_length_mm)))

    def summary(self) -> dict[str, object]:
        """JSON-ready description (sidecars)."""
        values = dataclasses.asdict(self)
        values["rr_ms"] = self.rr_ms
        values["lv_radius_mm"] = self.lv_radius_mm
        return values


def sample_subject(rng: np.random.Generator, disease: str | None = None) -> Subject:
    """Draw one patient; ``disease`` forces a disease, else it is drawn from a clinical mix."""
    if disease is None:
        disease = str(rng.choice(DISEASES, p=_DISEASE_WEIGHTS))
    if disease not in DISEASES:
        raise ValueError(f"unknown disease {disease!r}; choose one of {', '.join(DISEASES)}")
    size = float(np.clip(rng.normal(1.0, 0.06), 0.86, 1.16))
    u = rng.uniform
    heart = _sample_disease_heart(rng, disease)
    scar = _sample_scar(rng) if disease == "infarct" else None
    rv_ef = float(np.clip(heart.ef + u(-0.06, 0.04), 0.2, 0.7))
    lateral, septal = heart.wall_mm
    return Subject(
        seed=int(rng.integers(2**31)),
        disease=disease,
        heart_rate_bpm=heart.heart_rate_bpm,
        systole_fraction=float(
            np.clip(0.30 + 0.0025 * (heart.heart_rate_bpm - 60) + u(-0.02, 0.02), 0.27, 0.45)
        ),
        ejection_fraction=heart.ef,
        rv_ejection_fraction=rv_ef,
        lv_edv_model_ml=heart.edv_ml * size**3,
        lv_length_mm=heart.length_mm * size,
        lv_eccentricity=u(1.0, 1.08),
        wall_mm=(lateral, septal, 0.8 * lateral),
        rv_wall_mm=u(3.0, 4.5),
        rv_depth_mm=u(14.0, 22.0) * size,
        long_axis_shortening=heart.long_axis_shortening,
        epicardial_fat_mm=u(1.5, 6.0),
        heart_offset_mm=(u(-12, 12), u(-10, 10)),
        heart_rotation_deg=u(-18, 18),
        stack_drift_mm=(u(-10, 4), u(-4, 10)),
        scar=scar,
        myocardial_t1_factor=heart.t1_factor,
        myocardial_ecv_factor=heart.ecv_factor,
        tissue_t1_jitter=u(0.97, 1.03),
        plasma_gadolinium_mm=u(0.6, 0.9),
        body=_sample_body(rng, size),
    )


@dataclasses.dataclass(frozen=True)
class _DiseaseHeart:
    """What a disease sets of the heart, drawn from the ranges clinicians report for it.

    Attributes:
        ef: LV ejection fraction.
        edv_ml: end-diastolic volume of a standard-size patient.
        length_mm: LV cavity length of a standard-size patient.
        wall_mm: (lateral, septal) wall thickness.
        long_axis_shortening: fraction the LV shortens in systole.
        heart_rate_bpm: heart rate.
        t1_factor, ecv_factor: diffuse myocardial disease (1: none).
    """

    ef: float
    edv_ml: float
    length_mm: float
    wall_mm: tuple[float, float]
    long_axis_shortening: float
    heart_rate_bpm: float
    t1_factor: float
    ecv_factor: float


def _sample_disease_heart(rng: np.random.Generator, disease: str) -> _DiseaseHeart:
    """Draw the heart a ``disease`` (one of :data:`DISEASES`) sets, in a fixed draw order."""
    u = rng.uniform
    if disease == "healthy":
        ef, edv, length = u(0.56, 0.70), u(115, 170), u(82, 94)
        lateral = u(7.5, 9.5)
        septal = lateral + u(0.0, 1.0)
        shortening, heart_rate = u(0.12, 0.16), u(55, 85)
        t1_factor, ecv_factor = 1.0, 1.0
    elif disease == "dilated":
        ef, edv, length = u(0.18, 0.38), u(230, 320), u(98, 110)
        lateral = u(6.0, 7.5)
        septal = lateral + u(-0.5, 0.5)
        shortening, heart_rate = u(0.04, 0.07), u(70, 100)
        t1_factor, ecv_factor = u(1.04, 1.08), u(1.15, 1.3)
    elif disease == "hypertrophic":
        ef, edv, length = u(0.64, 0.78), u(85, 125), u(76, 88)
        lateral = u(10.0, 13.0)
        septal = u(17.0, 26.0)
        shortening, heart_rate = u(0.07, 0.11), u(55, 80)
        t1_factor, ecv_factor = u(1.03, 1.07), u(1.1, 1.25)
    else:
        ef, edv, length = u(0.30, 0.48), u(160, 230), u(90, 102)
        lateral = u(7.5, 9.5)
        septal = lateral + u(0.0, 1.0)
        shortening, heart_rate = u(0.07, 0.11), u(60, 90)
        t1_factor, ecv_factor = 1.0, 1.0
    return _DiseaseHeart(
        ef, edv, length, (lateral, septal), shortening, heart_rate, t1_factor, ecv_factor
    )


def _sample_scar(rng: np.random.Generator) -> Scar:
    territory = str(rng.choice(sorted(SCAR_TERRITORIES)))
    centre, levels = SCAR_TERRITORIES[territory]
    return Scar(
        territory=territory,
        centre_deg=centre + rng.uniform(-15, 15),
        extent_deg=rng.uniform(50, 110),
        transmurality=rng.uniform(0.35, 1.0),
        levels=levels,
    )


def _sample_body(rng: np.random.Generator, size: float) -> Body:
    u = rng.uniform
    adiposity = u(0.0, 1.0)
    width = (290 + 60 * adiposity) * size
    return Body(
        width=width,
        depth=width * u(0.62, 0.72),
        exponent_anterior=u(2.1, 2.5),
        exponent_posterior=u(2.6, 3.4),
        fat_mm=(5 + 20 * adiposity, 8 + 28 * adiposity, 6 + 18 * adiposity),
        muscle_mm=(u(12, 20), u(8, 12), u(22, 32)),
        offset_mm=(u(-10, 10), u(-8, 8)),
        rotation_deg=u(-5, 5),
        arms_down=bool(rng.random() < 0.6),
        arm_radius=u(38, 50) * size,
        vertebra_radius=u(16, 20) * size,
        aorta_radius=u(10, 13) * size,
        liver_scale=u(0.85, 1.15),
    )
