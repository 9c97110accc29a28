"""ISMRMRD HDF5 files (OCMR): raw readouts in ``/dataset/data`` plus an XML header.

Each acquisition is one readout of all active coils, ``(coils, samples)`` complex, tagged with
its phase-encode line (``idx.kspace_encode_step_1``), slice (``idx.slice``) and cardiac phase
(``idx.phase``, the library's frame). At open only the small acquisition headers are read and
indexed per (frame, slice); ``read_kspace`` then reads just that image's readouts and places
them on a centred (coils, ky, kx) grid, zero where a line was not acquired.

Choices, documented because files differ:
- Imaging readouts only: noise, navigator, phase-correction, feedback, dummy and phase
  stabilisation readouts are skipped, and so are pure parallel-calibration (reference)
  readouts, which may come from a separate reference scan with other contrast.
- Averages (``idx.average``) and any repeated line are averaged. Only the first repetition,
  contrast and set are read: repetitions can be time points (real-time cine) or separate
  measurements, which averaging would blur.
- Frames and slices are the distinct ``idx.phase`` / ``idx.slice`` values in increasing order.
- Line ``e1`` goes to row ``e1 - center + ky // 2`` (``center`` from the header's encoding
  limits), and sample ``center_sample`` of each readout to column ``kx // 2``, so the k-space
  centre sits where the library's centred FFT expects it; ky and kx grow beyond the encoded
  matrix only when the data would not fit (partial Fourier, asymmetric echo).
- 3D (more than one ``kspace_encode_step_2``) and non-Cartesian data are refused.

What comes from the format's own ``ismrmrd`` package and what does not (measured, docs/data.md):
the acquisition flags and the acquisition header's field layout are the package's. Reading
stays on h5py because the package reads one whole acquisition (header and samples, twice)
per call: indexing a file through it means reading every readout's samples, and one image of
192 lines x 20 coils took 0.4 s against 16 ms for this reader's one selective read. The XML
header stays on a lenient parser because the package's schema binding refuses headers
without the ISMRMRD namespace or without a required element (``experimentalConditions``),
which converters write; the vendor and field strength are still in them.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
from ismrmrd.hdf5 import acquisition_header_dtype

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata, canonical_vendor, parse_series_stem
from cardiomm.data.readers.base import (
    KSpaceSeries,
    SeriesShape,
    check_plausible_shape,
    open_hdf5,
    require_dataset,
)

# The flags and the acquisition header layout are the format's own (the ismrmrd package);
# readouts that are not imaging data are skipped by these flags.
_NON_IMAGING_FLAGS = (
    ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_PHASECORR_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
)
_HEAD_FIELDS = ("flags", "number_of_samples", "active_channels", "center_sample")
_HEAD_FIELDS += ("trajectory_dimensions",)
_IDX_FIELDS = ("kspace_encode_step_1", "kspace_encode_step_2", "slice", "contrast", "phase")
_IDX_FIELDS += ("repetition", "set")


def _index_fields() -> np.dtype:
    """The acquisition header fields the index needs, typed as the package defines them.

    HDF5 matches compound members by name, so reading into this type skips the rest of each
    ~340-byte header and the data itself.
    """
    header = acquisition_header_dtype
    counters = header.fields["idx"][0]
    head = [(name, header.fields[name][0]) for name in _HEAD_FIELDS]
    head.append(("idx", [(name, counters.fields[name][0]) for name in _IDX_FIELDS]))
    return np.dtype([("head", head)])


_INDEX_FIELDS = _index_fields()

# Nominal field strengths; scanners report e.g. 2.89362 T for a 3 T system.
_NOMINAL_FIELDS_T = (0.35, 0.55, 1.0, 1.5, 3.0, 5.0, 7.0, 9.4, 11.7)
_NOMINAL_TOLERANCE = 0.08

# Protocol-name words -> modality / view, for headers that carry no other description.
_PROTOCOL_MODALITIES = {
    "cine": "cine",
    "lge": "LGE",
    "psir": "LGE",
    "molli": "T1 mapping",
    "t1map": "T1 mapping",
    "t2map": "T2 mapping",
    "perf": "perfusion",
    "perfusion": "perfusion",
}
_PROTOCOL_VIEWS = {
    "sax": "short-axis",
    "sa": "short-axis",
    "lax": "long-axis",
    "2ch": "two-chamber",
    "3ch": "three-chamber",
    "4ch": "four-chamber",
    "lvot": "LVOT",
    "rvot": "RVOT",
}


@dataclasses.dataclass(frozen=True)
class EncodingLimit:
    """One ``encodingLimits`` entry: the smallest, largest and centre index."""

    minimum: int
    maximum: int
    center: int


@dataclasses.dataclass(frozen=True)
class IsmrmrdHeader:
    """The parts of an ISMRMRD XML header the readers use; ``None`` where absent.

    Attributes:
        matrix_size: encodedSpace matrixSize (x, y, z), x along the readout.
        encoding_step_1: encodingLimits kspace_encoding_step_1 (phase-encode lines).
    """

    vendor: str | None = None
    scanner_model: str | None = None
    field_strength: float | None = None
    institution: str | None = None
    station: str | None = None
    protocol_name: str | None = None
    series_description: str | None = None
    trajectory: str | None = None
    matrix_size: tuple[int, int, int] | None = None
    encoding_step_1: EncodingLimit | None = None

    @classmethod
    def from_xml(cls, path: Path, text: str | bytes) -> IsmrmrdHeader:
        """Parse header XML (any namespace); malformed XML is a ``DataFileError`` for ``path``."""
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as error:
            raise DataFileError(path, f"ISMRMRD header is not valid XML ({error})") from error
        system = ("acquisitionSystemInformation",)
        measurement = ("measurementInformation",)
        encoding = _child(root, "encoding")
        matrix = None
        limit = None
        trajectory = None
        if encoding is not None:
            sizes = [
                _integer(encoding, ("encodedSpace", "matrixSize", axis)) for axis in ("x", "y", "z")
            ]
            if sizes[0] is not None and sizes[1] is not None:
                matrix = (sizes[0], sizes[1], sizes[2] or 1)
            bounds = [
                _integer(encoding, ("encodingLimits", "kspace_encoding_step_1", name))
                for name in ("minimum", "maximum", "center")
            ]
            if None not in bounds:
                limit = EncodingLimit(*bounds)  # type: ignore[arg-type]
            trajectory = _text(encoding, ("trajectory",))
        return cls(
            vendor=_text(root, (*system, "systemVendor")),
            scanner_model=_text(root, (*system, "systemModel")),
            field_strength=_float(root, (*system, "systemFieldStrength_T")),
            institution=_text(root, (*system, "institutionName")),
            station=_text(root, (*system, "stationName")),
            protocol_name=_text(root, (*measurement, "protocolName")),
            series_description=_text(root, (*measurement, "seriesDescription")),
            trajectory=trajectory,
            matrix_size=matrix,
            encoding_step_1=limit,
        )

    def to_metadata(self) -> ScanMetadata:
        """Scan metadata: vendor, field strength (nominal), model, centre, modality, view.

        The centre is the institution name, else the station name. Modality and view come
        from the protocol name or series description when they say so (``CV_Cine_SAX``);
        lifespan is not in the header and stays unknown.
        """
        modality = view = None
        for description in (self.protocol_name, self.series_description):
            if description and modality is None:
                modality, view = describe_protocol(description)
        return ScanMetadata(
            centre=self.institution or self.station,
            vendor=canonical_vendor(self.vendor),
            field_strength=nominal_field_strength(self.field_strength),
            scanner_model=self.scanner_model,
            modality=modality,
            view=view,
            lifespan=None,
        )


def nominal_field_strength(tesla: float | None) -> float | None:
    """The nominal field of a measured one: 2.89362 -> 3.0, 1.494 -> 1.5; others to 0.01 T."""
    if tesla is None or not np.isfinite(tesla) or tesla <= 0:
        return None
    nearest = min(_NOMINAL_FIELDS_T, key=lambda nominal: abs(nominal - tesla))
    if abs(nearest - tesla) <= _NOMINAL_TOLERANCE * nearest:
        return nearest
    return round(tesla, 2)


def describe_protocol(name: str) -> tuple[str | None, str | None]:
    """(modality, view) named in a protocol name, e.g. ``CV_Cine_SAX`` -> (cine, short-axis)."""
    modality, view = parse_series_stem(name.strip().lower())
    if modality is not None:
        return modality, view
    words = re.split(r"[^a-z0-9]+", name.lower())
    modality = next((_PROTOCOL_MODALITIES[w] for w in words if w in _PROTOCOL_MODALITIES), None)
    view = next((_PROTOCOL_VIEWS[w] for w in words if w in _PROTOCOL_VIEWS), None)
    return modality, view


@dataclasses.dataclass(frozen=True)
class _ImageIndex:
    """Where one (frame, slice) image's readouts are: increasing acquisition numbers, the row
    of each, its first column, and whether its samples run backwards."""

    acquisitions: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    reversed: np.ndarray


class IsmrmrdSeries(KSpaceSeries):
    """An ISMRMRD HDF5 file with Cartesian 2D multi-slice data (OCMR).

    Args:
        path: the ``.h5`` file.
        metadata: overrides the metadata read from the XML header.
        group: the ISMRMRD dataset group, ``dataset`` by convention.

    Raises:
        DataFileError: not HDF5, truncated, no ``/dataset/xml`` or ``/dataset/data``, bad XML,
            non-Cartesian or 3D encoding, no imaging readouts, or readouts whose size changes.
    """

    format_name = "ISMRMRD"

    def __init__(
        self,
        path: str | Path,
        *,
        metadata: ScanMetadata | None = None,
        group: str = "dataset",
    ) -> None:
        path = Path(path)
        self._file = open_hdf5(path)
        self._group = group
        try:
            header, self._data = _open_group(path, self._file, group)
            shape, self._index, self._samples = _index_acquisitions(path, self._data, header)
        except BaseException:
            self._file.close()
            raise
        self._header = header
        super().__init__(path, shape, metadata or header.to_metadata())

    @property
    def header(self) -> IsmrmrdHeader:
        return self._header

    def _read_image(self, frame: int, slice_index: int) -> np.ndarray:
        index = self._index[frame, slice_index]
        if index.acquisitions.size == 0:
            raise DataFileError(self.path, f"no readouts for frame {frame}, slice {slice_index}")
        readouts = self._data.fields("data")[index.acquisitions]
        coils, num_ky, num_kx = self._shape.image_shape
        image = np.zeros((coils, num_ky, num_kx), dtype=np.complex64)
        counts = np.zeros(num_ky, dtype=np.int64)
        expected = 2 * coils * self._samples
        for number, readout, row, column, backwards in zip(
            index.acquisitions, readouts, index.rows, index.columns, index.reversed, strict=True
        ):
            if readout.size != expected:
                raise DataFileError(
                    self.path,
                    f"acquisition {number} has {readout.size} values, expected {expected} "
                    f"({coils} coils x {self._samples} complex samples)",
                )
            line = readout.astype(np.float32, copy=False).view(np.complex64)
            line = line.reshape(coils, self._samples)
            if backwards:
                line = line[:, ::-1]
            image[:, row, column : column + self._samples] += line
            counts[row] += 1
        repeated = counts > 1
        image[:, repeated, :] /= counts[repeated][None, :, None].astype(np.float32)
        return image

    def _close(self) -> None:
        self._file.close()

    def _reopen_kwargs(self) -> dict[str, object]:
        return {"metadata": self.metadata, "group": self._group}


def _open_group(path: Path, handle: h5py.File, group: str) -> tuple[IsmrmrdHeader, h5py.Dataset]:
    if not isinstance(handle.get(group), h5py.Group):
        found = ", ".join(sorted(handle.keys())) or "none"
        raise DataFileError(path, f"no ISMRMRD group {group!r} (keys found: {found})")
    xml_dataset = require_dataset(path, handle[group], "xml")
    data = require_dataset(path, handle[group], "data")
    names = data.dtype.names or ()
    if "head" not in names or "data" not in names or data.ndim != 1:
        raise DataFileError(
            path, f"'/{group}/data' is not an ISMRMRD acquisition table (dtype {data.dtype})"
        )
    text = xml_dataset[0] if xml_dataset.shape else xml_dataset[()]
    header = IsmrmrdHeader.from_xml(path, text)
    if header.trajectory not in (None, "cartesian"):
        raise DataFileError(path, f"trajectory {header.trajectory!r}; only Cartesian is supported")
    return header, data


def _index_acquisitions(
    path: Path, data: h5py.Dataset, header: IsmrmrdHeader
) -> tuple[SeriesShape, dict[tuple[int, int], _ImageIndex], int]:
    """Read only the acquisition headers and group the imaging readouts per (frame, slice)."""
    heads = np.empty(data.shape, dtype=_INDEX_FIELDS)
    if data.shape[0]:
        data.read_direct(heads)
    head = heads["head"]
    numbers = np.flatnonzero(_is_imaging(head["flags"]))
    if numbers.size == 0:
        raise DataFileError(path, f"no imaging readouts among {data.shape[0]} acquisitions")
    head = head[numbers]
    idx = head["idx"]
    first = (
        (idx["repetition"] == idx["repetition"].min())
        & (idx["contrast"] == idx["contrast"].min())
        & (idx["set"] == idx["set"].min())
    )
    numbers, head, idx = numbers[first], head[first], idx[first]
    coils = _single_value(path, head["active_channels"], "active_channels")
    samples = _single_value(path, head["number_of_samples"], "number_of_samples")
    _single_value(path, idx["kspace_encode_step_2"], "kspace_encode_step_2 (3D encoding)")
    if coils < 1 or samples < 1:
        raise DataFileError(path, f"readouts of {coils} coils x {samples} samples")
    if np.any(head["trajectory_dimensions"] > 0):
        raise DataFileError(path, "readouts carry a trajectory; only Cartesian is supported")

    lines = idx["kspace_encode_step_1"].astype(np.int64)
    centre_line, num_ky = _phase_encode_grid(header, lines)
    rows = lines - centre_line + num_ky // 2
    centre_samples = head["center_sample"].astype(np.int64)
    # 0 means unset in older converters: a symmetric readout.
    centre_samples[centre_samples == 0] = samples // 2
    num_kx = max(
        header.matrix_size[0] if header.matrix_size else 0,
        samples,
        2 * int(max(centre_samples.max(), samples - centre_samples.min())),
    )
    columns = num_kx // 2 - centre_samples
    backwards = (head["flags"] & np.uint64(1 << (ismrmrd.ACQ_IS_REVERSE - 1))) != 0

    phases = np.unique(idx["phase"])
    slices = np.unique(idx["slice"])
    frame_of = np.searchsorted(phases, idx["phase"])
    slice_of = np.searchsorted(slices, idx["slice"])
    index = {}
    for frame in range(phases.size):
        for slice_index in range(slices.size):
            chosen = np.flatnonzero((frame_of == frame) & (slice_of == slice_index))
            index[frame, slice_index] = _ImageIndex(
                numbers[chosen], rows[chosen], columns[chosen], backwards[chosen]
            )
    shape = SeriesShape(phases.size, slices.size, int(coils), num_ky, num_kx)
    return check_plausible_shape(path, shape), index, int(samples)


def _is_imaging(flags: np.ndarray) -> np.ndarray:
    def has(bit: int) -> np.ndarray:
        return (flags & np.uint64(1 << (bit - 1))) != 0

    skipped = np.zeros(flags.shape, dtype=bool)
    for bit in _NON_IMAGING_FLAGS:
        skipped |= has(bit)
    skipped |= has(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) & ~has(
        ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
    )
    return ~skipped


def _phase_encode_grid(header: IsmrmrdHeader, lines: np.ndarray) -> tuple[int, int]:
    """(index of the centre line, ky size) with the centre line at ky // 2."""
    matrix_ky = header.matrix_size[1] if header.matrix_size else 0
    if header.encoding_step_1 is not None:
        centre = header.encoding_step_1.center
    elif matrix_ky:
        centre = matrix_ky // 2
    else:
        centre = (int(lines.max()) + 1) // 2
    # Symmetric room around the centre for every acquired line.
    needed = 2 * max(centre - int(lines.min()), int(lines.max()) - centre + 1)
    return centre, max(matrix_ky, needed)


def _single_value(path: Path, values: np.ndarray, name: str) -> int:
    distinct = np.unique(values)
    if distinct.size != 1:
        shown = ", ".join(str(v) for v in distinct[:8])
        raise DataFileError(path, f"imaging readouts differ in {name}: {shown}")
    return int(distinct[0])


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    # Match local names so headers with or without the ISMRMRD namespace both work.
    for child in element:
        if child.tag.rsplit("}", 1)[-1] == name:
            return child
    return None


def _text(element: ElementTree.Element, names: tuple[str, ...]) -> str | None:
    node: ElementTree.Element | None = element
    for name in names:
        node = _child(node, name) if node is not None else None
    if node is None or node.text is None or not node.text.strip():
        return None
    return node.text.strip()


def _float(element: ElementTree.Element, names: tuple[str, ...]) -> float | None:
    text = _text(element, names)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _integer(element: ElementTree.Element, names: tuple[str, ...]) -> int | None:
    value = _float(element, names)
    return int(value) if value is not None and np.isfinite(value) else None
