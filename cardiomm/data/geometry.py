"""Where a scan's pixels are: pixel spacing, slice thickness and position, frame times.

CMRxRecon's .mat files hold k-space only; the geometry comes from a JSON sidecar beside the
file (``<stem>.json``, which the synthetic generator writes: ``pixel_spacing_mm``,
``slice_thickness_mm``, ``slice_heights_mm`` and the sequence's trigger and inversion times,
repetition and echo times).
A file without a sidecar has no known geometry (None), and what needs one (DICOM output)
says so for that file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from cardiomm.data.errors import DataFileError
from cardiomm.data.synthetic.writer import sidecar_paths


@dataclasses.dataclass(frozen=True)
class ScanGeometry:
    """The geometry of one series.

    Attributes:
        pixel_spacing_mm: (row, column) = (phase encode ky, readout kx) spacing of the stored
            k-space grid's image; a readout crop keeps it.
        slice_thickness_mm: the slices' thickness.
        slice_positions_mm: each slice's position along the slice normal (None: the slices
            are spaced by their thickness from 0).
        trigger_times_ms: each frame's time after the R wave (cine), or None.
        inversion_times_ms: each frame's inversion time (T1 mapping), or None.
        repetition_time_ms: the sequence's repetition time (TR), or None (not recorded).
        echo_time_ms: its echo time (TE), or None (not recorded).
    """

    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    slice_positions_mm: tuple[float, ...] | None = None
    trigger_times_ms: tuple[float, ...] | None = None
    inversion_times_ms: tuple[float, ...] | None = None
    repetition_time_ms: float | None = None
    echo_time_ms: float | None = None

    def slice_position(self, index: int) -> float:
        if self.slice_positions_mm is not None and index < len(self.slice_positions_mm):
            return self.slice_positions_mm[index]
        return index * self.slice_thickness_mm


def read_geometry(kspace_path: str | Path) -> ScanGeometry | None:
    """The geometry in the sidecar of ``kspace_path`` (None when it has no sidecar).

    Raises:
        DataFileError: a sidecar that is not JSON or whose geometry fields are not positive,
            finite numbers; the message names the sidecar and the field.
    """
    sidecar = sidecar_paths(kspace_path)[0]
    if not sidecar.is_file():
        return None
    try:
        fields = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFileError(sidecar, f"sidecar is not readable JSON: {error}") from error
    if not isinstance(fields, dict) or "pixel_spacing_mm" not in fields:
        return None  # a sidecar of something else: no geometry in it
    sequence = fields.get("sequence") if isinstance(fields.get("sequence"), dict) else {}
    spacing = _numbers(fields["pixel_spacing_mm"], sidecar, "pixel_spacing_mm", positive=True)
    if len(spacing) != 2:
        raise DataFileError(sidecar, f"pixel_spacing_mm has {len(spacing)} values, not 2")
    thickness = _numbers([fields.get("slice_thickness_mm")], sidecar, "slice_thickness_mm", True)
    return ScanGeometry(
        pixel_spacing_mm=(spacing[0], spacing[1]),
        slice_thickness_mm=thickness[0],
        slice_positions_mm=_optional(fields.get("slice_heights_mm"), sidecar, "slice_heights_mm"),
        trigger_times_ms=_optional(sequence.get("trigger_times_ms"), sidecar, "trigger_times_ms"),
        inversion_times_ms=_optional(
            sequence.get("inversion_times_ms"), sidecar, "inversion_times_ms"
        ),
        repetition_time_ms=_optional_time(sequence.get("tr_ms"), sidecar, "tr_ms"),
        echo_time_ms=_optional_time(sequence.get("te_ms"), sidecar, "te_ms"),
    )


def _optional_time(value: Any, sidecar: Path, name: str) -> float | None:
    """One positive, finite time in ms, or None when the sidecar does not record it."""
    if value is None:
        return None
    return _numbers([value], sidecar, name, positive=True)[0]


def _optional(value: Any, sidecar: Path, name: str) -> tuple[float, ...] | None:
    if value is None or value == []:
        return None
    return _numbers(value, sidecar, name, positive=False)


def _numbers(value: Any, sidecar: Path, name: str, positive: bool) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item)
        for item in value
    ):
        raise DataFileError(sidecar, f"{name} is not a list of finite numbers")
    if positive and not all(item > 0 for item in value):
        raise DataFileError(sidecar, f"{name} must be positive")
    return tuple(float(item) for item in value)
