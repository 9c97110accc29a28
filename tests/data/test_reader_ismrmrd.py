"""ISMRMRD HDF5 (OCMR) reader: files written with the ismrmrd package, read back onto the grid."""

from collections.abc import Iterable
from pathlib import Path

import ismrmrd
import ismrmrd.xsd as schema
import numpy as np
import pytest
import torch

from cardiomm.data.readers import IsmrmrdSeries, SeriesShape, open_series
from cardiomm.data.readers.ismrmrd_format import (
    IsmrmrdHeader,
    describe_protocol,
    nominal_field_strength,
)
from cardiomm.physics import fft2c, ifft2c


def header_xml(
    matrix: tuple[int, int],
    limits: tuple[int, int, int] | None = None,
    vendor: str = "SIEMENS",
    model: str = "Avanto",
    field: float = 1.494,
    institution: str = "Ohio State University",
    protocol: str = "CV_Cine_SAX",
) -> str:
    """An ISMRMRD header with encoded matrix (x, y) and step-1 limits (min, max, centre)."""

    def space(x: int, y: int) -> schema.encodingSpaceType:
        return schema.encodingSpaceType(
            matrixSize=schema.matrixSizeType(x=x, y=y, z=1),
            fieldOfView_mm=schema.fieldOfViewMm(x=300.0, y=300.0, z=8.0),
        )

    step_1 = None
    if limits is not None:
        step_1 = schema.limitType(minimum=limits[0], maximum=limits[1], center=limits[2])
    header = schema.ismrmrdHeader(
        experimentalConditions=schema.experimentalConditionsType(
            H1resonanceFrequency_Hz=63_600_000
        ),
        acquisitionSystemInformation=schema.acquisitionSystemInformationType(
            systemVendor=vendor,
            systemModel=model,
            systemFieldStrength_T=field,
            institutionName=institution,
        ),
        measurementInformation=schema.measurementInformationType(
            patientPosition=schema.patientPositionType.HFS, protocolName=protocol
        ),
        encoding=[
            schema.encodingType(
                encodedSpace=space(*matrix),
                reconSpace=space(matrix[0] // 2, matrix[1]),
                encodingLimits=schema.encodingLimitsType(kspace_encoding_step_1=step_1),
                trajectory=schema.trajectoryType.CARTESIAN,
            )
        ],
    )
    return header.toXML()


def readout(
    samples: np.ndarray,
    line: int,
    phase: int = 0,
    slice_index: int = 0,
    average: int = 0,
    repetition: int = 0,
    flags: Iterable[int] = (),
    centre_sample: int | None = None,
) -> ismrmrd.Acquisition:
    """One acquisition of ``samples`` (coils, samples) at phase-encode ``line``."""
    acquisition = ismrmrd.Acquisition.from_array(np.ascontiguousarray(samples, np.complex64))
    acquisition.idx.kspace_encode_step_1 = line
    acquisition.idx.phase = phase
    acquisition.idx.slice = slice_index
    acquisition.idx.average = average
    acquisition.idx.repetition = repetition
    acquisition.center_sample = samples.shape[-1] // 2 if centre_sample is None else centre_sample
    for flag in flags:
        acquisition.setFlag(flag)
    return acquisition


def write_ismrmrd(path: Path, xml: str, acquisitions: Iterable[ismrmrd.Acquisition]) -> Path:
    dataset = ismrmrd.Dataset(str(path), mode="w")
    dataset.write_xml_header(xml)
    for acquisition in acquisitions:
        dataset.append_acquisition(acquisition)
    dataset.close()
    return path


def write_grid(path: Path, kspace: np.ndarray, lines: Iterable[int] | None = None) -> Path:
    """Write (frames, slices, coils, ky, kx) k-space as readouts, line-major with the cardiac
    phases interleaved, as a segmented cine acquires them; line e1 = row."""
    frames, slices, _, num_ky, num_kx = kspace.shape
    rows = range(num_ky) if lines is None else lines
    acquisitions = [
        readout(kspace[frame, slice_index, :, row, :], row, frame, slice_index)
        for slice_index in range(slices)
        for row in rows
        for frame in range(frames)
    ]
    xml = header_xml((num_kx, num_ky), (0, num_ky - 1, num_ky // 2))
    return write_ismrmrd(path, xml, acquisitions)


def random_kspace(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_shape_counts_phases_slices_and_channels(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "fs_0001.h5", random_kspace((3, 2, 4, 6, 10)))
    with IsmrmrdSeries(path) as series:
        assert series.shape == SeriesShape(frames=3, slices=2, coils=4, ky=6, kx=10)


def test_each_frame_and_slice_reads_back_the_written_k_space(tmp_path: Path) -> None:
    kspace = random_kspace((3, 2, 4, 6, 10))
    path = write_grid(tmp_path / "fs_0001.h5", kspace)
    with IsmrmrdSeries(path) as series:
        for frame in range(3):
            for slice_index in range(2):
                np.testing.assert_array_equal(
                    series.read_kspace(frame, slice_index), kspace[frame, slice_index]
                )


def test_image_with_feature_at_top_left_comes_back_at_top_left(tmp_path: Path) -> None:
    image = np.zeros((2, 12, 20), dtype=np.complex64)
    image[:, 1:4, 2:6] = 1.0
    kspace = fft2c(torch.from_numpy(image)).numpy()
    path = write_grid(tmp_path / "fs_0002.h5", kspace[None, None])
    with IsmrmrdSeries(path) as series:
        recovered = ifft2c(torch.from_numpy(series.read_kspace(0, 0))).abs().numpy()
    bright = np.argwhere(recovered[0] > 0.5)
    assert bright.min(axis=0).tolist() == [1, 2]
    assert bright.max(axis=0).tolist() == [3, 5]


def test_lines_not_acquired_are_zero(tmp_path: Path) -> None:
    kspace = random_kspace((1, 1, 2, 8, 6))
    acquired = [0, 2, 3, 4, 5, 6]
    path = write_grid(tmp_path / "us.h5", kspace, lines=acquired)
    with IsmrmrdSeries(path) as series:
        image = series.read_kspace(0, 0)
    np.testing.assert_array_equal(image[:, acquired], kspace[0, 0][:, acquired])
    assert not image[:, [1, 7]].any()


def test_centre_line_of_partial_fourier_data_lands_at_ky_centre(tmp_path: Path) -> None:
    # Lines 0..5 acquired, line 3 is the k-space centre; the matrix has 8 lines.
    acquisitions = [readout(np.full((1, 4), line, np.complex64), line) for line in range(6)]
    path = write_ismrmrd(tmp_path / "pf.h5", header_xml((4, 8), (0, 5, 3)), acquisitions)
    with IsmrmrdSeries(path) as series:
        image = series.read_kspace(0, 0)
    assert series.shape.ky == 8
    assert image[0, 8 // 2, 0] == 3
    np.testing.assert_array_equal(image[0, 1:7, 0].real, np.arange(6))
    assert image[0, 0, 0] == 0 and image[0, 7, 0] == 0


def test_echo_centre_sample_lands_at_kx_centre(tmp_path: Path) -> None:
    # Asymmetric echo: 12 samples with the echo at sample 4, in a 16-sample encoded readout.
    samples = np.arange(12, dtype=np.complex64)[None]
    acquisitions = [readout(samples, line, centre_sample=4) for line in range(2)]
    path = write_ismrmrd(tmp_path / "echo.h5", header_xml((16, 2), (0, 1, 1)), acquisitions)
    with IsmrmrdSeries(path) as series:
        image = series.read_kspace(0, 0)
    assert series.shape.kx == 16
    assert image[0, 0, 16 // 2] == 4
    np.testing.assert_array_equal(image[0, 0, 4:].real, np.arange(12))


def test_averages_of_a_line_are_averaged(tmp_path: Path) -> None:
    acquisitions = [
        readout(np.full((1, 4), value, np.complex64), line, average=average)
        for line in range(2)
        for average, value in enumerate((1.0, 3.0))
    ]
    path = write_ismrmrd(tmp_path / "avg.h5", header_xml((4, 2), (0, 1, 1)), acquisitions)
    with IsmrmrdSeries(path) as series:
        np.testing.assert_array_equal(series.read_kspace(0, 0), np.full((1, 2, 4), 2.0))


def test_only_the_first_repetition_is_read(tmp_path: Path) -> None:
    acquisitions = [
        readout(np.full((1, 4), repetition + 1, np.complex64), line, repetition=repetition)
        for repetition in range(2)
        for line in range(2)
    ]
    path = write_ismrmrd(tmp_path / "rep.h5", header_xml((4, 2), (0, 1, 1)), acquisitions)
    with IsmrmrdSeries(path) as series:
        np.testing.assert_array_equal(series.read_kspace(0, 0), np.ones((1, 2, 4)))


def test_noise_and_reference_readouts_are_skipped(tmp_path: Path) -> None:
    acquisitions = [
        readout(np.full((1, 4), 99, np.complex64), 0, flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT]),
        readout(np.full((1, 4), 99, np.complex64), 1, flags=[ismrmrd.ACQ_IS_PARALLEL_CALIBRATION]),
        readout(np.ones((1, 4), np.complex64), 0),
        readout(
            np.ones((1, 4), np.complex64),
            1,
            flags=[
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,
            ],
        ),
    ]
    path = write_ismrmrd(tmp_path / "noise.h5", header_xml((4, 2), (0, 1, 1)), acquisitions)
    with IsmrmrdSeries(path) as series:
        np.testing.assert_array_equal(series.read_kspace(0, 0), np.ones((1, 2, 4)))


def test_reversed_readouts_are_flipped(tmp_path: Path) -> None:
    samples = np.arange(4, dtype=np.complex64)[None]
    acquisitions = [
        readout(samples, 0),
        readout(samples[:, ::-1], 1, flags=[ismrmrd.ACQ_IS_REVERSE]),
    ]
    path = write_ismrmrd(tmp_path / "epi.h5", header_xml((4, 2), (0, 1, 1)), acquisitions)
    with IsmrmrdSeries(path) as series:
        image = series.read_kspace(0, 0)
    np.testing.assert_array_equal(image[0, 1], image[0, 0])


def test_metadata_comes_from_the_xml_header(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "fs_0001.h5", random_kspace((1, 1, 1, 2, 2)))
    with IsmrmrdSeries(path) as series:
        metadata = series.metadata
    assert (metadata.vendor, metadata.field_strength, metadata.scanner_model) == (
        "Siemens",
        1.5,
        "Avanto",
    )
    assert metadata.centre == "Ohio State University"
    assert (metadata.modality, metadata.view) == ("cine", "short-axis")


def test_open_series_picks_the_ismrmrd_reader(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "fs_0001.h5", random_kspace((1, 1, 1, 2, 2)))
    with open_series(path) as series:
        assert isinstance(series, IsmrmrdSeries)


def test_header_without_namespace_is_parsed() -> None:
    xml = (
        "<ismrmrdHeader><acquisitionSystemInformation><systemVendor>GE MEDICAL SYSTEMS"
        "</systemVendor><systemFieldStrength_T>1.5</systemFieldStrength_T>"
        "</acquisitionSystemInformation></ismrmrdHeader>"
    )
    metadata = IsmrmrdHeader.from_xml(Path("x.h5"), xml).to_metadata()
    assert (metadata.vendor, metadata.field_strength) == ("GE", 1.5)


@pytest.mark.parametrize(
    ("measured", "nominal"), [(2.89362, 3.0), (1.494, 1.5), (0.55, 0.55), (2.0, 2.0), (None, None)]
)
def test_field_strength_is_rounded_to_the_nominal_value(
    measured: float | None, nominal: float | None
) -> None:
    assert nominal_field_strength(measured) == nominal


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("CV_Cine_SAX", ("cine", "short-axis")),
        ("trufi_cine_4ch_retro", ("cine", "four-chamber")),
        ("cine_lax_3ch", ("cine", "three-chamber")),
        ("localizer", (None, None)),
    ],
)
def test_protocol_name_gives_modality_and_view(
    protocol: str, expected: tuple[str | None, str | None]
) -> None:
    assert describe_protocol(protocol) == expected
