"""Reconstructions as DICOM MR series and NIfTI volumes, read back with pydicom and nibabel:
the reconstruction's values, the scan's geometry and stable UIDs."""

import csv
import json

import h5py
import numpy as np
import pydicom
import pytest

from cardiomm.cli import main
from cardiomm.data.errors import DataFileError
from cardiomm.data.geometry import ScanGeometry, read_geometry
from cardiomm.data.metadata import ScanMetadata
from cardiomm.recon.dicom import read_dicom_series, real_world_slope, write_dicom_series
from cardiomm.recon.identity import SeriesIdentity
from cardiomm.recon.nifti import read_nifti
from tests.builders import write_site_file

GEOMETRY = ScanGeometry(
    pixel_spacing_mm=(1.5, 2.0),
    slice_thickness_mm=8.0,
    slice_positions_mm=(10.0, 18.0),
    trigger_times_ms=(0.0, 40.0, 80.0),
)
METADATA = ScanMetadata(
    centre="Center001",
    vendor="Siemens",
    field_strength=3.0,
    scanner_model="Vida",
    modality="cine",
    view="short-axis",
)
IDENTITY = SeriesIdentity(
    patient_id="Center001-Siemens_30T_Vida-P001",
    study_key="patient Center001-Siemens_30T_Vida-P001",
    frame_of_reference_key="acquisition sha256:0123",
    series_key="acquisition sha256:0123; checkpoint sha256:4567; mask Uniform8",
    description="CardioMM reconstruction, Uniform8",
)
SHAPE = (2, 3, 4, 24, 32)  # frames, slices, coils, ky, kx


def _volume():
    return np.random.default_rng(0).random((3, 2, 16, 20)).astype(np.float32)


def test_a_series_reads_back_with_the_reconstructions_values(tmp_path):
    volume = _volume()
    write_dicom_series(tmp_path, volume, METADATA, GEOMETRY, IDENTITY)
    values, instances = read_dicom_series(tmp_path)
    slope = real_world_slope(instances[0])
    assert values.shape == volume.shape
    assert np.abs(values - volume).max() <= slope / 2 + 1e-9


def test_every_instance_carries_the_scans_geometry_and_frame_times(tmp_path):
    write_dicom_series(tmp_path, _volume(), METADATA, GEOMETRY, IDENTITY)
    _, instances = read_dicom_series(tmp_path)
    for index, instance in enumerate(instances):
        frame, slice_index = divmod(index, 2)
        assert [float(value) for value in instance.PixelSpacing] == [1.5, 2.0]
        assert float(instance.SliceThickness) == 8.0
        location = GEOMETRY.slice_positions_mm[slice_index]
        assert [float(value) for value in instance.ImagePositionPatient] == [0.0, 0.0, location]
        assert float(instance.SliceLocation) == location
        assert int(instance.TemporalPositionIdentifier) == frame + 1
        assert float(instance.TriggerTime) == GEOMETRY.trigger_times_ms[frame]
        assert (instance.Rows, instance.Columns) == (16, 20)


def test_the_series_is_marked_derived_with_method_acceleration_vendor_and_field(tmp_path):
    write_dicom_series(tmp_path, _volume(), METADATA, GEOMETRY, IDENTITY)
    instance = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert list(instance.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
    assert instance.SeriesDescription == "CardioMM reconstruction, Uniform8"
    assert instance.Manufacturer == "Siemens" and float(instance.MagneticFieldStrength) == 3.0
    assert instance.Modality == "MR" and instance.SOPClassUID == pydicom.uid.MRImageStorage


def test_uids_are_one_per_series_unique_per_image_and_the_same_on_a_rerun(tmp_path):
    write_dicom_series(tmp_path / "a", _volume(), METADATA, GEOMETRY, IDENTITY)
    write_dicom_series(tmp_path / "b", _volume(), METADATA, GEOMETRY, IDENTITY)
    first, again = (read_dicom_series(tmp_path / name)[1] for name in ("a", "b"))
    assert len({item.SeriesInstanceUID for item in first}) == 1
    assert len({item.StudyInstanceUID for item in first}) == 1
    assert len({item.SOPInstanceUID for item in first}) == len(first)
    assert [item.SOPInstanceUID for item in first] == [item.SOPInstanceUID for item in again]


def test_mapping_frames_carry_their_inversion_times(tmp_path):
    geometry = ScanGeometry((1.0, 1.0), 8.0, inversion_times_ms=(100.0, 180.0, 975.0))
    write_dicom_series(tmp_path, _volume(), METADATA, geometry, IDENTITY)
    _, instances = read_dicom_series(tmp_path)
    assert [float(item.InversionTime) for item in instances[::2]] == [100.0, 180.0, 975.0]


def test_repetition_and_echo_times_are_the_scans_where_known(tmp_path):
    geometry = ScanGeometry((1.0, 1.0), 8.0, repetition_time_ms=2.7, echo_time_ms=1.1)
    write_dicom_series(tmp_path, _volume(), METADATA, geometry, IDENTITY)
    instance = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert (float(instance.RepetitionTime), float(instance.EchoTime)) == (2.7, 1.1)


def test_unknown_repetition_and_echo_times_are_present_and_empty(tmp_path):
    write_dicom_series(tmp_path, _volume(), METADATA, GEOMETRY, IDENTITY)
    instance = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert "RepetitionTime" in instance and instance.RepetitionTime in (None, "")
    assert "EchoTime" in instance and instance.EchoTime in (None, "")


def _sidecar(path, **fields):
    geometry = {"pixel_spacing_mm": [1.25, 1.5], "slice_thickness_mm": 8.0}
    geometry.update(fields)
    path.with_suffix(".json").write_text(json.dumps(geometry))


def test_a_malformed_geometry_sidecar_is_an_error_naming_the_field(tmp_path):
    path = tmp_path / "cine_sax.mat"
    _sidecar(path, pixel_spacing_mm=[1.25, -1.0])
    with pytest.raises(DataFileError, match="pixel_spacing_mm must be positive"):
        read_geometry(path)


def test_the_sidecars_repetition_and_echo_times_are_read(tmp_path):
    path = tmp_path / "cine_sax.mat"
    _sidecar(path, sequence={"tr_ms": 3.2, "te_ms": 1.6})
    geometry = read_geometry(path)
    assert (geometry.repetition_time_ms, geometry.echo_time_ms) == (3.2, 1.6)


def test_a_sidecar_echo_time_that_is_not_positive_is_an_error_naming_it(tmp_path):
    path = tmp_path / "cine_sax.mat"
    _sidecar(path, sequence={"tr_ms": 3.2, "te_ms": 0})
    with pytest.raises(DataFileError, match="te_ms must be positive"):
        read_geometry(path)


def _reconstruct_with_geometry(tmp_path, output_format):
    """Reconstruct one cine file with a geometry sidecar in ``output_format`` (and --full);
    (the output folder, the reconstruction's relative path without suffix, its volume)."""
    path = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    _sidecar(path, slice_heights_mm=[0.0, 8.0, 16.0])
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data"),
        "--output", str(output), "--mask", "Uniform4", "--format", output_format, "--full",
        "--no-preview",
    ])  # fmt: skip
    assert code == 0
    relative = path.relative_to(tmp_path / "data").with_name("cine_sax_kus_Uniform4")
    with h5py.File(output / relative.with_suffix(".mat"), "r") as handle:
        return output, relative, handle["reconstruction"][()]


def test_reconstruct_writes_a_dicom_series_beside_the_submission_file(tmp_path):
    output, relative, reconstruction = _reconstruct_with_geometry(tmp_path, "both")
    values, instances = read_dicom_series(output / "dicom" / relative)
    assert values.shape == reconstruction.shape == (2, 3, 24, 32)
    slope = real_world_slope(instances[0])
    assert np.abs(values - reconstruction).max() <= slope / 2 + 1e-6
    assert [float(item.SliceLocation) for item in instances[:3]] == [0.0, 8.0, 16.0]
    assert "Uniform4" in instances[0].SeriesDescription


def test_a_file_without_geometry_is_skipped_for_dicom_with_the_reason(tmp_path):
    write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data"),
        "--output", str(output), "--mask", "Uniform4", "--format", "dicom", "--no-preview",
    ])  # fmt: skip
    assert code == 1  # nothing could be written
    with open(output / "reconstruction_summary.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["status"] == "skipped"
    assert "no geometry sidecar cine_sax.json" in row["reason"]
    assert not (output / "dicom").exists()


def test_reconstruct_writes_a_nifti_volume_with_the_scans_voxel_sizes(tmp_path):
    output, relative, reconstruction = _reconstruct_with_geometry(tmp_path, "all")
    volume, affine = read_nifti(output / "nifti" / relative.with_suffix(".nii.gz"))
    np.testing.assert_allclose(volume, reconstruction, rtol=1e-6)
    # columns 1.5 mm, rows 1.25 mm (along -x and -y in RAS), slices 8 mm apart from 0
    assert np.diag(affine)[:3].tolist() == [-1.5, -1.25, 8.0] and affine[2, 3] == 0.0
    assert (output / "dicom" / relative).is_dir()
