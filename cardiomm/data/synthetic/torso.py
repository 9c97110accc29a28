"""The chest around the heart: subcutaneous fat, chest-wall muscle, lungs, liver, spine,
descending aorta, pulmonary vessels and (when down) the arms.

The torso is a superellipse (flatter at the back) with fat and muscle layers whose thickness
differs anteriorly, laterally and posteriorly. Everything is painted into a label map in
place, later layers over earlier ones; the heart is painted afterwards (see :mod:`heart`).
"""

from __future__ import annotations

import numpy as np

from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.shapes import inside_disc, inside_ellipse, to_local
from cardiomm.data.synthetic.subjects import Body

# Liver centre and semi-axes as fractions of the torso (width, depth), per view: below the
# heart on the patient's right (image left) in short-axis and four-chamber views, under the
# inferior wall in the two-chamber view.
_LIVER_PLACEMENT = {
    "sax": ((-0.22, 0.12), (0.30, 0.28)),
    "4ch": ((-0.20, 0.26), (0.30, 0.22)),
    "3ch": ((-0.14, 0.28), (0.32, 0.22)),
    "2ch": ((-0.02, 0.33), (0.36, 0.20)),
}
_PULMONARY_VESSELS = 14


def paint_torso(
    labels: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    body: Body,
    view: str,
    level: float,
    detail_rng: np.random.Generator,
) -> None:
    """Paint the chest into ``labels`` (ny, nx) in place.

    Args:
        labels: uint8 (ny, nx), background where nothing is painted yet.
        y, x: mm coordinates, (ny, 1) and (1, nx).
        body: the subject's torso.
        view: ``sax``, ``2ch``, ``3ch`` or ``4ch`` (places the liver).
        level: short-axis level from base (0) to apex (1); the liver grows towards the apex.
        detail_rng: draws this slice's pulmonary vessels.
    """
    xb, yb = to_local(x, y, body.offset_mm, np.deg2rad(body.rotation_deg))
    if body.arms_down:
        _paint_arms(labels, xb, yb, body)
    fat_a, fat_l, fat_p = body.fat_mm
    muscle_a, muscle_l, muscle_p = body.muscle_mm
    labels[_superellipse(xb, yb, body, 0.0, 0.0, 0.0)] = Label.SUBCUTANEOUS_FAT
    labels[_superellipse(xb, yb, body, fat_l, fat_a, fat_p)] = Label.SKELETAL_MUSCLE
    cavity = _superellipse(xb, yb, body, fat_l + muscle_l, fat_a + muscle_a, fat_p + muscle_p)
    labels[cavity] = Label.LUNG
    _paint_liver(labels, xb, yb, body, view, level)
    _paint_pulmonary_vessels(labels, xb, yb, body, detail_rng)
    _paint_spine_and_aorta(labels, xb, yb, body)


def _superellipse(
    xb: np.ndarray, yb: np.ndarray, body: Body, lateral: float, anterior: float, posterior: float
) -> np.ndarray:
    front = yb < 0
    half_width = body.width / 2 - lateral
    half_depth = np.where(front, body.depth / 2 - anterior, body.depth / 2 - posterior)
    exponent = np.where(front, body.exponent_anterior, body.exponent_posterior)
    return (np.abs(xb) / half_width) ** exponent + (np.abs(yb) / half_depth) ** exponent <= 1.0


def _paint_arms(labels: np.ndarray, xb: np.ndarray, yb: np.ndarray, body: Body) -> None:
    radius = body.arm_radius
    for side in (-1.0, 1.0):
        centre = (side * (body.width / 2 + 10 + radius), -0.05 * body.depth)
        labels[inside_ellipse(xb, yb, centre, (0.9 * radius, radius))] = Label.SUBCUTANEOUS_FAT
        labels[inside_ellipse(xb, yb, centre, (0.9 * radius - 7, radius - 7))] = (
            Label.SKELETAL_MUSCLE
        )
        humerus = (centre[0] + side * 0.1 * radius, centre[1])
        labels[inside_disc(xb, yb, humerus, 0.25 * radius)] = Label.BONE_MARROW


def _paint_liver(
    labels: np.ndarray, xb: np.ndarray, yb: np.ndarray, body: Body, view: str, level: float
) -> None:
    (fx, fy), (sx, sy) = _LIVER_PLACEMENT[view]
    growth = body.liver_scale * ((0.3 + 0.7 * level) if view == "sax" else 1.0)
    centre = (fx * body.width, fy * body.depth + (1 - growth) * 0.15 * body.depth)
    liver = inside_ellipse(xb, yb, centre, (sx * body.width * growth, sy * body.depth * growth))
    labels[liver & (labels == Label.LUNG)] = Label.LIVER


def _paint_pulmonary_vessels(
    labels: np.ndarray, xb: np.ndarray, yb: np.ndarray, body: Body, rng: np.random.Generator
) -> None:
    # Vessels appear as bright dots in the lung; drawn per slice, so each slice differs.
    centres_x = rng.uniform(-0.4, 0.4, _PULMONARY_VESSELS) * body.width
    centres_y = rng.uniform(-0.3, 0.3, _PULMONARY_VESSELS) * body.depth
    radii = rng.uniform(1.5, 4.5, _PULMONARY_VESSELS)
    lung = labels == Label.LUNG
    for cx, cy, radius in zip(centres_x, centres_y, radii, strict=True):
        labels[inside_disc(xb, yb, (cx, cy), radius) & lung] = Label.VESSEL_BLOOD


def _paint_spine_and_aorta(labels: np.ndarray, xb: np.ndarray, yb: np.ndarray, body: Body) -> None:
    radius = body.vertebra_radius
    back = body.depth / 2 - body.fat_mm[2] - body.muscle_mm[2]
    vertebra = (0.0, back - 0.2 * radius)
    paraspinal = inside_ellipse(
        xb, yb, (0.0, vertebra[1] + 0.9 * radius), (2.3 * radius, 1.5 * radius)
    )
    labels[paraspinal & (labels != Label.SUBCUTANEOUS_FAT)] = Label.SKELETAL_MUSCLE
    labels[inside_disc(xb, yb, vertebra, radius)] = Label.BONE_MARROW
    aorta_radius = body.aorta_radius
    aorta = (0.75 * (radius + aorta_radius), vertebra[1] - radius - 0.3 * aorta_radius)
    labels[inside_disc(xb, yb, aorta, aorta_radius)] = Label.VESSEL_BLOOD
