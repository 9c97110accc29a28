"""Label maps of a whole series: the torso of each slice with the heart of each frame.

The torso does not move within a series (breath-hold), so it is painted once per slice and
only a window around the heart is repainted per cardiac phase.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.heart import (
    heart_pose,
    lax_window_mm,
    paint_lax_heart,
    paint_sax_heart,
    sax_window_mm,
)
from cardiomm.data.synthetic.motion import LVModel, mapping_heights, sax_stack
from cardiomm.data.synthetic.shapes import ImageGrid
from cardiomm.data.synthetic.subjects import Subject
from cardiomm.data.synthetic.torso import paint_torso

_VIEW_CODES = {"sax": 0, "2ch": 1, "3ch": 2, "4ch": 3}


@dataclasses.dataclass(frozen=True)
class SliceGeometry:
    """Where the slices of a series lie.

    Attributes:
        view: ``sax``, ``2ch``, ``3ch`` or ``4ch``.
        heights_mm: SAX heights above the LV cavity apex (base first); NaN for long-axis views.
        levels: base-to-apex level of each slice (0 base, 1 apex; 0.5 for long-axis views).
        z_mm: through-plane position of each slice relative to the coil array centre.
        thickness_mm: slice thickness.
    """

    view: str
    heights_mm: np.ndarray
    levels: np.ndarray
    z_mm: np.ndarray
    thickness_mm: float


def slice_geometry(
    subject: Subject, lv: LVModel, view: str, kind: str, num_slices: int
) -> SliceGeometry:
    """Slice positions: cine and LGE stacks cover base to apex, maps and weighted series sit at
    basal / mid / apical levels, long-axis views are single slices through the LV axis."""
    if view != "sax":
        return SliceGeometry(view, np.full(1, np.nan), np.full(1, 0.5), np.zeros(1), 8.0)
    if kind in ("cine", "lge"):
        if num_slices == len(lv.stack_heights_mm):
            heights, thickness = lv.stack_heights_mm, lv.slice_thickness_mm
        else:
            heights, thickness = sax_stack(subject, num_slices)
    else:
        heights, thickness = mapping_heights(subject, num_slices), 8.0
    levels = 1.0 - heights / lv.length_mm
    return SliceGeometry(view, heights, levels, heights - 0.5 * lv.length_mm, thickness)


def render_labels(
    subject: Subject,
    lv: LVModel,
    geometry: SliceGeometry,
    grid: ImageGrid,
    phases: np.ndarray,
) -> np.ndarray:
    """Tissue labels of every frame and slice: uint8 (frames, slices, ny, nx).

    Args:
        subject: the patient.
        lv: its calibrated LV model.
        geometry: slice positions.
        grid: the pixel grid to paint on.
        phases: (frames,) contraction phase of each frame (0 end-diastole, 1 end-systole).
    """
    return np.stack(
        [
            render_slice(subject, lv, geometry, index, grid, phases)
            for index in range(len(geometry.levels))
        ],
        axis=1,
    )


def render_slice(
    subject: Subject,
    lv: LVModel,
    geometry: SliceGeometry,
    slice_index: int,
    grid: ImageGrid,
    phases: np.ndarray,
) -> np.ndarray:
    """Tissue labels of every frame of one slice: uint8 (frames, ny, nx)."""
    y, x = grid.coordinates()
    view = geometry.view
    pose = heart_pose(subject, view)
    if view == "sax":
        half = sax_window_mm(subject) + float(np.abs(subject.stack_drift_mm).max())
    else:
        half = lax_window_mm(subject)
    rows, columns = grid.window(pose.centre_mm, half)
    window_y, window_x = y[rows], x[:, columns]
    height = float(geometry.heights_mm[slice_index])
    torso = np.zeros((grid.ny, grid.nx), dtype=np.uint8)
    detail = np.random.default_rng([subject.seed, _VIEW_CODES[view], slice_index])
    paint_torso(torso, y, x, subject.body, view, float(geometry.levels[slice_index]), detail)
    unique_phases, frame_of = np.unique(np.asarray(phases, dtype=float), return_inverse=True)
    labels = np.empty((len(phases), grid.ny, grid.nx), dtype=np.uint8)
    for unique_index, phase in enumerate(unique_phases):
        frame = torso.copy()
        window = frame[rows, columns]
        if view == "sax":
            paint_sax_heart(window, window_y, window_x, subject, lv, height, float(phase), pose)
        else:
            paint_lax_heart(window, window_y, window_x, subject, lv, float(phase), pose, view)
        labels[frame_of == unique_index] = frame
    return labels
