"""Reconstructions as NIfTI-1 volumes for research tools (nibabel).

One ``.nii.gz`` per reconstructed file: a 4D float32 image (columns x, rows y, slices z,
frames t) of the magnitudes, with voxel sizes from the scan's geometry (column and row
spacing, slice thickness; the frame interval from the cine trigger times where known) and
an affine that places slice ``k`` at its position along z. As with DICOM, the files hold no
orientation: the axes are the image's own, so distances and volumes are right and the
patient orientation is unknown.
"""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np

from cardiomm.data.geometry import ScanGeometry


def write_nifti(path: str | Path, volume: np.ndarray, geometry: ScanGeometry) -> Path:
    """Write float (frames, slices, rows, columns) ``volume`` as ``path`` (folders made).

    Returns:
        The file written.
    """
    if volume.ndim != 4:
        raise ValueError(f"a NIfTI series is (frames, slices, rows, columns), not {volume.shape}")
    row_mm, column_mm = geometry.pixel_spacing_mm
    first = geometry.slice_position(0)
    step = (
        geometry.slice_position(1) - first if volume.shape[1] > 1 else geometry.slice_thickness_mm
    )
    affine = np.diag([column_mm, row_mm, step, 1.0])
    affine[2, 3] = first
    # (frames, slices, rows, columns) -> (columns, rows, slices, frames): NIfTI's x, y, z, t.
    data = np.ascontiguousarray(np.transpose(np.abs(volume), (3, 2, 1, 0)), dtype=np.float32)
    image = nibabel.Nifti1Image(data, affine)
    image.header.set_xyzt_units(xyz="mm", t="msec")
    frame_ms = _frame_interval(geometry)
    image.header["pixdim"][4] = frame_ms
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, path)
    return path


def read_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(float (frames, slices, rows, columns) volume, 4 x 4 affine) of a :func:`write_nifti`
    file."""
    image = nibabel.load(path)
    return np.transpose(np.asarray(image.dataobj), (3, 2, 1, 0)), image.affine


def _frame_interval(geometry: ScanGeometry) -> float:
    times = geometry.trigger_times_ms
    if times is None or len(times) < 2:
        return 0.0  # not a time series with known frame times
    return float(times[1] - times[0])
