"""The heart in short-axis and long-axis views, painted into a label map.

Short axis (one slice at height ``h`` above the LV cavity apex): the LV cavity is an ellipse
(from :class:`~cardiomm.data.synthetic.motion.LVModel`); the myocardium around it keeps, along
every direction, the end-diastolic ``rho_out^2 - rho_in^2``, so the wall thickens as the
cavity shrinks; hypertrophy thickens the septum most. The RV is an ellipse beside the septum
with the LV cut out of it (a crescent), a thin free wall, and epicardial fat over both,
thickest in the interventricular grooves. Slices above the base (the base descends in
systole) show the left atrium and the aortic root instead of the LV.

Long axis (2, 3 and 4 chamber): the LV is the same half ellipsoid cut through its axis (a
bullet), the atria are ellipses beyond the base plane, the RV a shorter half ellipse beside
the septum (4ch), and the 3ch view adds the aortic outflow. The apex stays put; the base moves.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.motion import LVModel, area_factors
from cardiomm.data.synthetic.shapes import ellipse_radius, inside_disc, to_local, wrap_angle
from cardiomm.data.synthetic.subjects import Scar, Subject

# RV geometry relative to the LV's outer septal radius K: centre at _RV_OFFSET * K towards
# the RV, half-width _RV_SPREAD * K + 4 mm across; RV length / LV length.
_RV_OFFSET = 0.3
_RV_SPREAD = 0.9
_RV_LENGTH = 0.85

# Standard heart place in the chest (fractions of torso width, depth) and the direction
# (image degrees, y down) of the septum (SAX) or of the apex-to-base axis (LAX).
_POSES = {
    "sax": ((0.08, -0.10), 200.0),
    "4ch": ((0.06, -0.03), 130.0),
    "3ch": ((0.08, -0.02), 145.0),
    "2ch": ((0.09, -0.01), 160.0),
}

# Which side of the long axis (+1 septal / anterior, -1 the other) shows each infarct
# territory in each long-axis view; a territory missing from a view is not seen there.
_SCAR_SIDES = {
    "4ch": {"LAD": 1, "RCA": 1, "LCx": -1},
    "3ch": {"LAD": 1, "LCx": -1},
    "2ch": {"LAD": 1, "RCA": -1},
}


@dataclasses.dataclass(frozen=True)
class HeartPose:
    """Where the heart sits in one view.

    Attributes:
        centre_mm: (x, y) of the LV centre (SAX, mid level) or of the LV long-axis midpoint.
        angle_rad: septum direction (SAX) or apex-to-base direction (LAX).
    """

    centre_mm: tuple[float, float]
    angle_rad: float


def heart_pose(subject: Subject, view: str) -> HeartPose:
    """The subject's heart placement in ``view`` (``sax``, ``2ch``, ``3ch``, ``4ch``)."""
    (fx, fy), angle_deg = _POSES[view]
    body = subject.body
    centre = (
        body.offset_mm[0] + fx * body.width + subject.heart_offset_mm[0],
        body.offset_mm[1] + fy * body.depth + subject.heart_offset_mm[1],
    )
    return HeartPose(centre, np.deg2rad(angle_deg + subject.heart_rotation_deg))


def sax_window_mm(subject: Subject) -> float:
    """Half-size of a square that holds the whole heart in a SAX slice."""
    return 2.2 * (subject.lv_radius_mm + subject.wall_mm[1]) + subject.rv_depth_mm + 25.0


def lax_window_mm(subject: Subject) -> float:
    """Half-size of a square that holds the whole heart and atria in a LAX view."""
    return 0.5 * subject.lv_length_mm + 2.2 * subject.lv_radius_mm + 60.0


def sax_centre(
    subject: Subject, pose: HeartPose, level: float, phase: float
) -> tuple[float, float]:
    """LV centre in a SAX slice: the tilted long axis drifts it across the stack, and the
    heart swings a little towards the apex in systole."""
    drift = subject.stack_drift_mm
    return (
        pose.centre_mm[0] + drift[0] * (level - 0.5) + 2.0 * phase,
        pose.centre_mm[1] + drift[1] * (level - 0.5) - 1.5 * phase,
    )


def paint_sax_heart(
    labels: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    subject: Subject,
    lv: LVModel,
    height_mm: float,
    phase: float,
    pose: HeartPose,
) -> None:
    """Paint one short-axis slice of the heart into ``labels`` (ny, nx) in place.

    Args:
        labels: uint8 (ny, nx) with the torso already painted.
        y, x: mm coordinates (ny, 1) and (1, nx) of ``labels``' pixels.
        subject: the patient.
        lv: the patient's calibrated LV model.
        height_mm: slice height above the LV cavity apex.
        phase: contraction phase, 0 end-diastole, 1 end-systole.
        pose: the heart's SAX placement.
    """
    level = 1.0 - height_mm / lv.length_mm
    centre = sax_centre(subject, pose, level, phase)
    septum = pose.angle_rad
    cavity_angle = septum + np.pi / 2
    dx, dy = x - centre[0], y - centre[1]
    radius = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    lv_present = height_mm < lv.length(phase)

    rho_in, rho_out = _lv_radii(subject, lv, height_mm, phase, theta, septum, cavity_angle)
    _, septal_out = _lv_radii(
        subject, lv, height_mm, phase if lv_present else 0.0, np.array(septum), septum, cavity_angle
    )
    outer_septal = float(septal_out)
    fat = subject.epicardial_fat_mm * _fat_pattern(theta - septum, subject.seed)

    rv = _rv_ellipse(subject, lv, height_mm, phase, centre, septum, outer_septal)
    if rv is not None:
        rv_centre, (rv_along, rv_across) = rv
        along, across = to_local(x, y, rv_centre, septum)
        grow_wall = subject.rv_wall_mm
        grow_fat = grow_wall + 0.8 * subject.epicardial_fat_mm
        labels[_in_ellipse(along, across, rv_along + grow_fat, rv_across + grow_fat)] = (
            Label.EPICARDIAL_FAT
        )
    if lv_present:
        labels[radius <= rho_out + fat] = Label.EPICARDIAL_FAT
    if rv is not None:
        labels[_in_ellipse(along, across, rv_along + grow_wall, rv_across + grow_wall)] = (
            Label.RV_MYOCARDIUM
        )
        labels[_in_ellipse(along, across, rv_along, rv_across)] = Label.RV_BLOOD
    if not lv_present:
        _paint_atrial_level(labels, x, y, subject, centre, septum)
        return
    myocardium = radius <= rho_out
    labels[myocardium] = Label.LV_MYOCARDIUM
    labels[radius <= rho_in] = Label.LV_BLOOD
    _paint_sax_scar(labels, subject.scar, level, theta - septum, radius, rho_in, rho_out)


def _paint_sax_scar(
    labels: np.ndarray,
    scar: Scar | None,
    level: float,
    angle_from_septum: np.ndarray,
    radius: np.ndarray,
    rho_in: np.ndarray,
    rho_out: np.ndarray,
) -> None:
    """Paint the scar's part of one SAX slice's LV myocardium (``radius <= rho_out``) in place.

    ``level``: the slice's level (0 base, 1 apex); the other arrays are (ny, nx) per pixel."""
    if scar is None or not scar.levels[0] <= level <= scar.levels[1]:
        return
    myocardium = radius <= rho_out
    offset = wrap_angle(angle_from_septum - np.deg2rad(scar.centre_deg))
    depth = (radius - rho_in) / np.maximum(rho_out - rho_in, 1e-6)
    in_scar = (
        myocardium
        & (radius > rho_in)
        & (np.abs(offset) <= np.deg2rad(scar.extent_deg) / 2)
        & (depth <= scar.transmurality)
    )
    labels[in_scar] = Label.SCAR


def _lv_radii(
    subject: Subject,
    lv: LVModel,
    height_mm: float,
    phase: float,
    theta: np.ndarray,
    septum: float,
    cavity_angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Cavity and epicardial polar radius (mm) along each direction ``theta``."""
    lateral, septal, apical = subject.wall_mm
    wall = lateral + (septal - lateral) * ((1 + np.cos(theta - septum)) / 2) ** 2
    ed_radius = lv.radius(0.0)
    equator = ellipse_radius(
        theta - cavity_angle, ed_radius * lv.eccentricity, ed_radius / lv.eccentricity
    )
    distance = lv.length_mm - height_mm
    outer_factor = max(0.0, 1 - (distance / (lv.length_mm + apical)) ** 2)
    inner_factor = float(area_factors(np.array([height_mm]), lv.length_mm)[0])
    wall_area = ((equator + wall) ** 2) * outer_factor - equator**2 * inner_factor
    major, minor = lv.cavity_axes(np.array([height_mm]), phase)
    rho_in = ellipse_radius(theta - cavity_angle, float(major[0]), float(minor[0]))
    return rho_in, np.sqrt(rho_in**2 + wall_area)


def _rv_ellipse(
    subject: Subject,
    lv: LVModel,
    height_mm: float,
    phase: float,
    centre: tuple[float, float],
    septum: float,
    outer_septal: float,
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """RV cavity ellipse (centre, (semi-axis towards the RV, semi-axis across)) or None."""
    distance = lv.length_mm - height_mm
    rv_length = _RV_LENGTH * lv.length_mm
    size = 1.0 if distance <= 0 else max(0.0, 1 - (distance / rv_length) ** 2)
    depth = subject.rv_depth_mm * np.sqrt((1 - subject.rv_ejection_fraction * phase) * size)
    if depth < 2.0:
        return None
    offset = _RV_OFFSET * outer_septal
    rv_centre = (centre[0] + offset * np.cos(septum), centre[1] + offset * np.sin(septum))
    across = (_RV_SPREAD * outer_septal + 4.0) * size**0.25
    return rv_centre, (outer_septal - offset + depth, across)


def _paint_atrial_level(
    labels: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    subject: Subject,
    centre: tuple[float, float],
    septum: float,
) -> None:
    # Above the base: left atrium behind, aortic root between it and the RV outflow.
    radius = 0.85 * subject.lv_radius_mm
    back = septum + np.pi * 0.75
    la_centre = (centre[0] + 0.3 * radius * np.cos(back), centre[1] + 0.3 * radius * np.sin(back))
    labels[inside_disc(x, y, la_centre, radius)] = Label.LA_BLOOD
    root = (
        centre[0] + 0.9 * radius * np.cos(septum - 0.6),
        centre[1] + 0.9 * radius * np.sin(septum - 0.6),
    )
    labels[inside_disc(x, y, root, 13.0)] = Label.VESSEL_BLOOD


def _in_ellipse(along: np.ndarray, across: np.ndarray, a: float, b: float) -> np.ndarray:
    return (along / a) ** 2 + (across / b) ** 2 <= 1.0


def _fat_pattern(relative_theta: np.ndarray, seed: int) -> np.ndarray:
    """Epicardial fat thickness / mean along each direction: thickest in the grooves (90
    degrees either side of the septum), with a per-subject irregularity."""
    twist = (seed % 628) / 100.0
    pattern = 0.4 - 0.45 * np.cos(2 * relative_theta) + 0.3 * np.cos(3 * relative_theta + twist)
    return 1.6 * np.clip(pattern, 0.0, 1.0)


def paint_lax_heart(
    labels: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    subject: Subject,
    lv: LVModel,
    phase: float,
    pose: HeartPose,
    view: str,
) -> None:
    """Paint a long-axis view (``2ch``, ``3ch`` or ``4ch``) of the heart in place.

    Args:
        labels: uint8 (ny, nx) with the torso already painted.
        y, x: mm coordinates (ny, 1) and (1, nx).
        subject, lv: the patient and its calibrated LV model.
        phase: contraction phase, 0 end-diastole, 1 end-systole.
        pose: the heart's placement in this view (angle: apex-to-base direction).
        view: ``2ch``, ``3ch`` or ``4ch``.
    """
    axis = pose.angle_rad
    apex = (
        pose.centre_mm[0] - 0.5 * lv.length_mm * np.cos(axis),
        pose.centre_mm[1] - 0.5 * lv.length_mm * np.sin(axis),
    )
    s, v = to_local(x, y, apex, axis)  # s: from the cavity apex towards the base; v: +septal
    width_factor = {"4ch": lv.eccentricity, "2ch": 1 / lv.eccentricity, "3ch": 1.0}[view]
    length = lv.length(phase)
    half_width = lv.radius(phase) * width_factor
    half_width_ed = lv.radius(0.0) * width_factor
    lateral, septal, apical = subject.wall_mm
    if view == "2ch":
        septal = lateral  # anterior and inferior walls, no septum in this view
    wall = lateral + (septal - lateral) / (1 + np.exp(-v / 4.0))
    outer_width = np.sqrt(half_width**2 + (half_width_ed + wall) ** 2 - half_width_ed**2)
    below_base = s <= length
    fat = subject.epicardial_fat_mm

    rv = _lax_rv(subject, lv, phase, view, half_width_ed + septal)
    epicardium = below_base & (
        ((s - length) / (length + apical + fat)) ** 2 + (v / (outer_width + fat)) ** 2 <= 1
    )
    labels[epicardium] = Label.EPICARDIAL_FAT
    _paint_lax_grooves(labels, s, v, length, (half_width_ed + lateral, half_width_ed + septal), fat)
    _paint_atria(labels, s, v, subject, lv, phase, view, length, half_width_ed)
    if rv is not None:
        _paint_lax_rv(labels, s, v, rv, subject.rv_wall_mm, fat)
    if view == "3ch":
        _paint_outflow(labels, s, v, length, half_width_ed)
    outer_q = ((s - length) / (length + apical)) ** 2 + (v / outer_width) ** 2
    inner_q = ((s - length) / length) ** 2 + (v / half_width) ** 2
    myocardium = below_base & (outer_q <= 1)
    cavity = below_base & (inner_q <= 1)
    labels[myocardium] = Label.LV_MYOCARDIUM
    labels[cavity] = Label.LV_BLOOD
    _paint_lax_scar(
        labels, subject.scar, view, s, v, length, inner_q, outer_q, myocardium & ~cavity
    )


def _paint_lax_scar(
    labels: np.ndarray,
    scar: Scar | None,
    view: str,
    s: np.ndarray,
    v: np.ndarray,
    length: float,
    inner_q: np.ndarray,
    outer_q: np.ndarray,
    wall: np.ndarray,
) -> None:
    """Paint the scar's part of a long-axis view's LV wall (``wall``, bool) in place.

    ``s``, ``v``: the view's local coordinates (from the apex, +septal); ``inner_q``,
    ``outer_q``: each pixel's normalised squared radius of the cavity and the epicardium."""
    side = None if scar is None else _SCAR_SIDES[view].get(scar.territory)
    if scar is None or side is None:
        return
    level = 1 - s / length
    # Transmural depth from the two normalised radii: 0 at the endocardium, 1 outside.
    q_in, q_out = np.sqrt(inner_q), np.sqrt(outer_q)
    depth = (q_in - 1) / np.maximum(q_in - q_out, 1e-6)
    on_side = (np.sign(v) == side) | ((level > 0.85) & (scar.territory == "LAD"))
    # A scar reaching the apex continues into the apical cap (level > 1).
    last = np.inf if scar.levels[1] >= 0.95 else scar.levels[1]
    in_range = (level >= scar.levels[0]) & (level <= last)
    labels[wall & on_side & in_range & (depth <= scar.transmurality)] = Label.SCAR


def lax_cavity_area_mm2(lv: LVModel, phase: float, view: str) -> float:
    """Analytic LV cavity area (mm^2) of a long-axis view: half an ellipse."""
    width_factor = {"4ch": lv.eccentricity, "2ch": 1 / lv.eccentricity, "3ch": 1.0}[view]
    return float(0.5 * np.pi * lv.length(phase) * lv.radius(phase) * width_factor)


def _lax_rv(
    subject: Subject, lv: LVModel, phase: float, view: str, outer_septal_ed: float
) -> tuple[tuple[float, float], tuple[float, float], float] | None:
    """RV cavity of a LAX view: ((s, v) centre, (half length, half width), base s) or None."""
    if view == "2ch":
        return None
    squeeze = np.sqrt(1 - subject.rv_ejection_fraction * phase)
    half = (subject.rv_depth_mm + 8.0) * squeeze
    length = lv.length(phase)
    if view == "4ch":
        base = length - 5.0
        rv_length = _RV_LENGTH * lv.length_mm * (1 - 0.5 * subject.long_axis_shortening * phase)
        return (base, outer_septal_ed + 0.3 * half), (rv_length, half), base
    base = length - 0.1 * lv.length_mm
    return (base, outer_septal_ed + 0.2 * half), (0.45 * lv.length_mm, 0.8 * half), base


def _paint_lax_grooves(
    labels: np.ndarray,
    s: np.ndarray,
    v: np.ndarray,
    length: float,
    side_widths: tuple[float, float],
    fat: float,
) -> None:
    """Paint the epicardial fat of the atrioventricular grooves in place: a disc at the base
    plane (``s = length``) beyond each side of the LV wall (outer half widths ``side_widths``)."""
    for side_width in side_widths:
        for side in (-1.0, 1.0):
            groove = (length, side * side_width + side * 2.0)
            labels[inside_disc(s, v, groove, 4.0 + 1.5 * fat)] = Label.EPICARDIAL_FAT


def _paint_lax_rv(
    labels: np.ndarray,
    s: np.ndarray,
    v: np.ndarray,
    rv: tuple[tuple[float, float], tuple[float, float], float],
    rv_wall: float,
    fat: float,
) -> None:
    """Paint a LAX view's RV (``rv`` from :func:`_lax_rv`) in place: its epicardial fat, free
    wall ``rv_wall`` mm and blood pool, in that order."""
    (rv_s, rv_v), (rv_len, rv_half), base = rv
    labels[
        _half_ellipse(s, v, rv_s, rv_v, rv_len + rv_wall + fat, rv_half + rv_wall + fat, base)
    ] = Label.EPICARDIAL_FAT
    labels[_half_ellipse(s, v, rv_s, rv_v, rv_len + rv_wall, rv_half + rv_wall, base)] = (
        Label.RV_MYOCARDIUM
    )
    labels[_half_ellipse(s, v, rv_s, rv_v, rv_len, rv_half, base)] = Label.RV_BLOOD


def _half_ellipse(
    s: np.ndarray,
    v: np.ndarray,
    centre_s: float,
    centre_v: float,
    half_length: float,
    half_width: float,
    base: float,
) -> np.ndarray:
    return (s <= base) & (
        ((s - centre_s) / half_length) ** 2 + ((v - centre_v) / half_width) ** 2 <= 1
    )


def _paint_atria(
    labels: np.ndarray,
    s: np.ndarray,
    v: np.ndarray,
    subject: Subject,
    lv: LVModel,
    phase: float,
    view: str,
    length: float,
    half_width_ed: float,
) -> None:
    # The atria fill while the ventricles empty (their volume peaks at end-systole).
    swell = np.sqrt(1 + 0.4 * phase)
    la_across = 0.95 * half_width_ed * swell
    la_along = 0.85 * half_width_ed * swell + 4.0
    la_shift = {"4ch": -0.2, "3ch": -0.35, "2ch": 0.0}[view] * half_width_ed
    if view == "4ch":
        septal = subject.wall_mm[1]
        ra_across = 0.85 * la_across
        ra_centre = (length - 5.0 + 0.9 * la_along, half_width_ed + septal + 0.8 * ra_across)
        labels[_ellipse(s, v, ra_centre, (la_along, ra_across))] = Label.RA_BLOOD
    la_centre = (length + 0.92 * la_along, la_shift)
    labels[_ellipse(s, v, la_centre, (la_along, la_across))] = Label.LA_BLOOD


def _paint_outflow(
    labels: np.ndarray, s: np.ndarray, v: np.ndarray, length: float, half_width_ed: float
) -> None:
    # Aortic root leaving the base on the septal side, tilted away from the atrium.
    start = (length - 2.0, 0.45 * half_width_ed)
    tilt = np.deg2rad(35.0)
    along = (s - start[0]) * np.cos(tilt) + (v - start[1]) * np.sin(tilt)
    across = -(s - start[0]) * np.sin(tilt) + (v - start[1]) * np.cos(tilt)
    # A tube (capsule: within 12 mm of a 55 mm centre line) with the bulge of the sinuses.
    root = (along - np.clip(along, 0.0, 55.0)) ** 2 + across**2 <= 12.0**2
    sinus = (along - 12.0) ** 2 + across**2 <= 15.0**2
    labels[root | sinus] = Label.VESSEL_BLOOD


def _ellipse(
    s: np.ndarray, v: np.ndarray, centre: tuple[float, float], axes: tuple[float, float]
) -> np.ndarray:
    return ((s - centre[0]) / axes[0]) ** 2 + ((v - centre[1]) / axes[1]) ** 2 <= 1
