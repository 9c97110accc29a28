"""Reconstructions as NIfTI-1 volumes for research tools (nibabel).

One ``.nii.gz`` per reconstructed file: a 4D float32 image (columns i, rows j, slices k,
frames t) of the magnitudes, with voxel sizes from the scan's geometry (column and row
spacing, slice thickness; the frame interval from the cine trigger times where known).

The affine (sform and qform, code "scanner") puts every voxel where the DICOM series of the
same reconstruction (:mod:`cardiomm.recon.dicom`) puts it. DICOM's patient coordinates are
LPS (+x left, +y posterior), NIfTI's RAS (+x right, +y anterior): the DICOM series has
columns along +x and rows along +y in LPS, so here they run along -x and -y:

    RAS(i, j, k) = (-i * column spacing, -j * row spacing, position of slice k)

As with DICOM, the k-space files hold no orientation: the axes are the image's own, so
distances and volumes are right and the patient orientation is unknown. Slices are placed
at the first slice's position and the step to the second (a NIfTI affine holds one step).
A volume with NaN or Inf values is refused: no file is written for it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np

from cardiomm.data.geometry import ScanGeometry

# DICOM LPS -> NIfTI RAS: x and y change sign.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_SCANNER_CODE = 1  # NIfTI's NIFTI_XFORM_SCANNER_ANAT: the scanner's patient coordinates


def nifti_affine(geometry: ScanGeometry, slices: int) -> np.ndarray:
    """The 4 x 4 voxel (column, row, slice) -> RAS mm affine of a series with ``slices``."""
    row_mm, column_mm = geometry.pixel_spacing_mm
    first = geometry.slice_position(0)
    step = geometry.slice_position(1) - first if slices > 1 else geometry.slice_thickness_mm
    # The DICOM series' axes in LPS: columns +x, rows +y, slices along the normal +z.
    lps = np.array([[column_mm, 0.0, 0.0], [0.0, row_mm, 0.0], [0.0, 0.0, step]]).T
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ lps
    affine[:3, 3] = LPS_TO_RAS @ np.array([0.0, 0.0, first])
    return affine


def write_nifti(path: str | Path, volume: np.ndarray, geometry: ScanGeometry) -> Path:
    """Write float (frames, slices, rows, columns) ``volume`` as ``path`` (folders made).

    Returns:
        The file written.

    Raises:
        ValueError: ``volume`` is not 4D or holds NaN or Inf.
    """
    if volume.ndim != 4:
        raise ValueError(f"a NIfTI series is (frames, slices, rows, columns), not {volume.shape}")
    magnitude = np.abs(volume)
    if not np.isfinite(magnitude).all():
        raise ValueError(
            f"{path}: the volume holds {np.count_nonzero(~np.isfinite(magnitude))} NaN or Inf "
            "values; no NIfTI file is written for it"
        )
    affine = nifti_affine(geometry, volume.shape[1])
    # (frames, slices, rows, columns) -> (columns, rows, slices, frames): NIfTI's i, j, k, t.
    data = np.ascontiguousarray(np.transpose(magnitude, (3, 2, 1, 0)), dtype=np.float32)
    image = nibabel.Nifti1Image(data, affine)
    image.set_sform(affine, code=_SCANNER_CODE)
    image.set_qform(affine, code=_SCANNER_CODE)
    image.header.set_xyzt_units(xyz="mm", t="msec")
    image.header["pixdim"][4] = _frame_interval(geometry)
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
