"""The NIfTI volume and the DICOM series of one reconstruction put every voxel at the same
place in the patient: DICOM's LPS coordinates (from ImagePositionPatient,
ImageOrientationPatient and PixelSpacing, read with pydicom) and NIfTI's RAS ones (from the
affine, read with nibabel) differ only in the sign of x and y, and the voxel found there holds
the same value. Every series of the synthetic ``tiny`` set (slices stored from base to apex,
i.e. at decreasing positions, single-slice long-axis views, mapping series)."""

import nibabel
import numpy as np
import pydicom
import pytest

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def _series_pairs(tiny_outputs):
    for folder in sorted({path.parent for path in (tiny_outputs / "dicom").rglob("IM_*.dcm")}):
        relative = folder.relative_to(tiny_outputs / "dicom")
        yield folder, tiny_outputs / "nifti" / relative.with_name(f"{relative.name}.nii.gz")


def _patient_lps(instance: pydicom.Dataset, row: int, column: int) -> np.ndarray:
    """The LPS position (mm) of pixel (row, column) of ``instance``."""
    origin = np.array(instance.ImagePositionPatient, dtype=float)
    orientation = np.array(instance.ImageOrientationPatient, dtype=float)
    along_row, along_column = orientation[:3], orientation[3:]  # column index, row index
    row_spacing, column_spacing = (float(value) for value in instance.PixelSpacing)
    return origin + column * column_spacing * along_row + row * row_spacing * along_column


def _pixels(instance: pydicom.Dataset) -> list[tuple[int, int]]:
    """The four corners, the centre and an off-centre pixel: a mirror moves each of them."""
    last_row, last_column = instance.Rows - 1, instance.Columns - 1
    return [
        (0, 0), (0, last_column), (last_row, 0), (last_row, last_column),
        (last_row // 2, last_column // 2), (last_row // 3, (2 * last_column) // 3),
    ]  # fmt: skip


def test_every_series_has_its_nifti_volume(tiny_outputs):
    pairs = list(_series_pairs(tiny_outputs))
    assert len(pairs) == 17
    assert all(nifti.is_file() for _, nifti in pairs)


def test_the_same_patient_position_holds_the_same_voxel_in_dicom_and_nifti(tiny_outputs):
    checked = 0
    for folder, nifti_path in _series_pairs(tiny_outputs):
        image = nibabel.load(nifti_path)
        volume = np.asarray(image.dataobj)  # (columns i, rows j, slices k, frames t)
        to_voxel = np.linalg.inv(image.affine)
        for path in sorted(folder.glob("*.dcm")):
            instance = pydicom.dcmread(path)
            slope = float(instance.RealWorldValueMappingSequence[0].RealWorldValueSlope)
            frame = int(instance.TemporalPositionIdentifier) - 1
            for row, column in _pixels(instance):
                ras = LPS_TO_RAS * _patient_lps(instance, row, column)
                voxel = to_voxel @ np.append(ras, 1.0)
                index = np.rint(voxel[:3]).astype(int)
                np.testing.assert_allclose(voxel[:3], index, atol=1e-3, err_msg=str(path))
                assert ((index >= 0) & (index < volume.shape[:3])).all(), (path, row, column)
                dicom_value = instance.pixel_array[row, column] * slope
                nifti_value = volume[index[0], index[1], index[2], frame]
                assert nifti_value == pytest.approx(dicom_value, abs=slope / 2 + 1e-6), path
                checked += 1
    assert checked > 500


def test_the_nifti_affine_is_the_scanners_in_both_sform_and_qform(tiny_outputs):
    _, nifti_path = next(_series_pairs(tiny_outputs))
    header = nibabel.load(nifti_path).header
    assert int(header["sform_code"]) == int(header["qform_code"]) == 1
    np.testing.assert_allclose(header.get_qform(), header.get_sform(), atol=1e-4)
