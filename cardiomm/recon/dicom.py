"""Reconstructions as DICOM MR image series, for PACS viewers and segmentation tools.

One series per reconstructed file, one instance per (frame, slice) image, written with
pydicom and valid against the MR Image IOD (``dciodvfy`` from dicom3tools reports no error):

- Identity (:mod:`cardiomm.recon.identity`): the patient ID is the centre, scanner and
  patient folders (or the file's content hash outside the CMRxRecon layout); the study UID
  derives from the patient, the frame of reference from the input's content, the series UID
  from the content, the method (a checkpoint's hash) and the mask, each instance's from its
  series, frame and slice. A rerun of the same reconstruction writes the same UIDs.
- Geometry from the scan's sidecar (:mod:`cardiomm.data.geometry`): ``PixelSpacing`` (row,
  column), ``SliceThickness``, ``ImagePositionPatient`` and ``SliceLocation`` along the slice
  normal. The files carry no orientation, so ``ImageOrientationPatient`` is the image's own
  axes (rows along the patient's +x, columns along +y, LPS): distances and volumes are right,
  the patient orientation is not known. Voxel (column i, row j, slice k) lies at
  ``(i * column spacing, j * row spacing, position of slice k)`` in LPS.
- Cine frames carry ``TemporalPositionIdentifier`` and ``TriggerTime``, T1 mapping frames
  their ``InversionTime``.
- Magnitudes are stored as 16-bit integers scaled to the series' peak; the scale back to the
  reconstruction's values is a ``RealWorldValueMappingSequence`` (value = stored x slope; the
  MR Image IOD has no Modality LUT, so there is no ``RescaleSlope`` that viewers would apply
  to the window). The window, in stored units, spans the 1st to 99.5th percentile.
- ``ImageType`` is DERIVED \\ SECONDARY \\ OTHER, the series description names the method and
  the undersampling, e.g. ``CardioMM reconstruction, ktRadial24``; ``ScanningSequence`` and
  ``SequenceVariant`` name the sequence family of the modality (:data:`SEQUENCE_FAMILIES`).
- ``RepetitionTime`` and ``EchoTime`` are the sidecar's ``sequence.tr_ms`` and ``te_ms``
  where it records them (the synthetic set does; CMRxRecon's files hold no sequence header).
- What the k-space files do not hold (birth date, sex, study date and time, patient
  position; repetition and echo times the sidecar lacks) is present and empty, as DICOM's
  Type 2 asks.
- ``SeriesNumber`` is distinct per series of a study and derives from the series' kind
  (:mod:`cardiomm.recon.identity`).
- A volume with NaN or Inf values is refused: no file is written for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cardiomm.data.geometry import ScanGeometry
from cardiomm.data.metadata import ScanMetadata
from cardiomm.recon.identity import SeriesIdentity

_MAX_STORED = 65535
# The implementation's name in every file (DICOM's ImplementationVersionName, <= 16 chars).
_IMPLEMENTATION = "CARDIOMM-FL"
# (ScanningSequence, SequenceVariant) of each modality's usual CMR sequence; the k-space
# files hold no sequence header, so this is the family, not the scanner's own record. An
# unknown modality is RM (research mode) / NONE.
SEQUENCE_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cine": (("GR",), ("SS",)),  # balanced SSFP
    "LGE": (("IR", "GR"), ("SP", "MP")),  # inversion-recovery spoiled gradient echo
    "T1 mapping": (("IR", "GR"), ("SS", "MP")),  # MOLLI-like: inversions, SSFP readout
    "T1 mapping post-contrast": (("IR", "GR"), ("SS", "MP")),
    "T2 mapping": (("GR",), ("SS", "MP")),  # T2-prepared SSFP
    "T2* mapping": (("GR",), ("SP",)),  # multi-echo spoiled gradient echo
    "T1rho mapping": (("GR",), ("SS", "MP")),  # spin-lock prepared SSFP
    "T1-weighted": (("SE",), ("SK",)),  # turbo spin echo
    "T2-weighted": (("SE",), ("SK",)),
    "black blood": (("SE",), ("SK", "MP")),  # double-inversion turbo spin echo
    "perfusion": (("GR",), ("SP", "MP")),  # saturation-recovery gradient echo
    "flow": (("GR",), ("SP",)),  # phase-contrast gradient echo
}
_UNKNOWN_SEQUENCE = (("RM",), ("NONE",))
# Type 2 attributes of the MR Image IOD: present, empty unless the scan's sidecar gives a
# value (repetition and echo times only).
_UNKNOWN_TYPE_2 = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ContentDate",
    "ContentTime",
    "ReferringPhysicianName",
    "AccessionNumber",
    "PatientPosition",
    "PositionReferenceIndicator",
    "ScanOptions",
    "MRAcquisitionType",
    "RepetitionTime",
    "EchoTime",
    "EchoTrainLength",
)


def write_dicom_series(
    folder: str | Path,
    volume: np.ndarray,
    metadata: ScanMetadata,
    geometry: ScanGeometry,
    identity: SeriesIdentity,
    replace: bool = False,
) -> list[Path]:
    """Write ``volume`` as one MR image series into ``folder``.

    Args:
        folder: where the instances go (made), ``IM_f<frame>_s<slice>.dcm``.
        volume: float (frames, slices, rows, columns) magnitude images, all finite.
        metadata: the scan's vendor, field strength, scanner, modality and view.
        geometry: its pixel spacing, slice thickness and positions, frame times.
        identity: the names its patient, UIDs and description come from.
        replace: remove the instances already in ``folder`` first (else they are an error: a
            series folder never mixes two reconstructions).

    Returns:
        The files written, frame by frame, slice by slice.

    Raises:
        ValueError: ``volume`` is not 4D or holds NaN or Inf.
        FileExistsError: ``folder`` holds instances and ``replace`` is False.
    """
    magnitude = _checked_magnitude(folder, volume)
    folder = Path(folder)
    _clear(folder, replace)
    folder.mkdir(parents=True, exist_ok=True)
    stored, slope = _quantised(magnitude)
    low, high = np.percentile(stored, [1.0, 99.5]) if stored.size else (0.0, 1.0)
    study_uid = generate_uid(entropy_srcs=["study", identity.study_key])
    series_uid = generate_uid(entropy_srcs=["series", identity.series_key])
    frame_of_reference_uid = generate_uid(
        entropy_srcs=["frame of reference", identity.frame_of_reference_key]
    )
    frames, slices = volume.shape[:2]
    written = []
    for frame in range(frames):
        for slice_index in range(slices):
            instance = _instance(stored[frame, slice_index], slope, metadata, geometry, identity)
            instance.StudyInstanceUID = study_uid
            instance.SeriesInstanceUID = series_uid
            instance.FrameOfReferenceUID = frame_of_reference_uid
            instance.SOPInstanceUID = generate_uid(
                entropy_srcs=["instance", identity.series_key, str(frame), str(slice_index)]
            )
            instance.file_meta.MediaStorageSOPInstanceUID = instance.SOPInstanceUID
            instance.InstanceNumber = frame * slices + slice_index + 1
            _place(instance, geometry, frame, frames, slice_index)
            instance.WindowCenter = f"{(low + high) / 2:.6g}"
            instance.WindowWidth = f"{max(high - low, 1.0):.6g}"
            path = folder / f"IM_f{frame:03d}_s{slice_index:03d}.dcm"
            instance.save_as(path, enforce_file_format=True)
            written.append(path)
    return written


def _checked_magnitude(folder: str | Path, volume: np.ndarray) -> np.ndarray:
    """float64 magnitude of a (frames, slices, rows, columns) ``volume``.

    Raises:
        ValueError: ``volume`` is not 4D or holds NaN or Inf (named with ``folder``).
    """
    if volume.ndim != 4:
        raise ValueError(
            f"a DICOM series needs (frames, slices, rows, columns), got {volume.shape}"
        )
    magnitude = np.abs(np.asarray(volume, dtype=np.float64))
    if not np.isfinite(magnitude).all():
        raise ValueError(
            f"{folder}: the volume holds {np.count_nonzero(~np.isfinite(magnitude))} NaN or "
            "Inf values; no DICOM series is written for it"
        )
    return magnitude


def _quantised(magnitude: np.ndarray) -> tuple[np.ndarray, float]:
    """uint16 stored values of ``magnitude`` (the peak at the top of the stored range) and the
    rescale slope that maps them back."""
    peak = float(magnitude.max()) if magnitude.size else 0.0
    slope = peak / _MAX_STORED if peak > 0 else 1.0
    stored = np.clip(np.rint(magnitude / slope), 0, _MAX_STORED).astype(np.uint16)
    return stored, slope


def _clear(folder: Path, replace: bool) -> None:
    """Remove the instances already in ``folder`` (``replace``), or refuse to mix series."""
    existing = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if existing and not replace:
        raise FileExistsError(
            f"{folder}: holds {len(existing)} DICOM instances already; a series folder is "
            "written whole (replace=True removes them first)"
        )
    for path in existing:
        path.unlink()


def _instance(
    stored: np.ndarray,
    slope: float,
    metadata: ScanMetadata,
    geometry: ScanGeometry,
    identity: SeriesIdentity,
) -> Dataset:
    """One instance of the series without its UIDs and position: uint16 (rows, columns)
    ``stored`` values, real value = stored x ``slope``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = _IMPLEMENTATION
    instance = Dataset()
    instance.file_meta = meta
    instance.SOPClassUID = MRImageStorage
    instance.Modality = "MR"
    instance.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    for keyword in _UNKNOWN_TYPE_2:
        setattr(instance, keyword, None)
    # Pseudonymous data: the ID is all that names the patient (family name component only).
    instance.PatientName = f"{identity.patient_id}^"
    instance.PatientID = identity.patient_id
    instance.StudyID = _study_id(identity.study_key)
    instance.SeriesDescription = identity.description[:64]
    instance.SeriesNumber = identity.series_number
    instance.Manufacturer = metadata.vendor or ""
    instance.ManufacturerModelName = metadata.scanner_model or ""
    if metadata.field_strength is not None:
        instance.MagneticFieldStrength = f"{metadata.field_strength:g}"
    instance.BodyPartExamined = "HEART"
    instance.ProtocolName = " ".join(part for part in (metadata.modality, metadata.view) if part)
    scanning, variant = _sequence(metadata, geometry)
    instance.ScanningSequence = list(scanning)
    instance.SequenceVariant = list(variant)
    if "IR" in scanning:
        instance.InversionTime = None  # Type 2C with IR; the frame's own time where known
    if geometry.repetition_time_ms is not None:
        instance.RepetitionTime = f"{geometry.repetition_time_ms:.6g}"
    if geometry.echo_time_ms is not None:
        instance.EchoTime = f"{geometry.echo_time_ms:.6g}"
    if geometry.trigger_times_ms:
        # Frames at trigger times are cardiac gated (CG); DICOM allows TriggerTime only so.
        instance.ScanOptions = "CG"
    instance.PixelSpacing = [f"{spacing:.6g}" for spacing in geometry.pixel_spacing_mm]
    instance.SliceThickness = f"{geometry.slice_thickness_mm:.6g}"
    instance.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    instance.Rows, instance.Columns = stored.shape
    instance.SamplesPerPixel = 1
    instance.PhotometricInterpretation = "MONOCHROME2"
    instance.BitsAllocated = 16
    instance.BitsStored = 16
    instance.HighBit = 15
    instance.PixelRepresentation = 0
    instance.RealWorldValueMappingSequence = [_value_mapping(slope)]
    instance.PixelData = np.ascontiguousarray(stored, dtype=np.uint16).tobytes()
    return instance


def _sequence(
    metadata: ScanMetadata, geometry: ScanGeometry
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ScanningSequence, SequenceVariant): the modality's family; inversion times in the
    geometry make it an inversion-recovery sequence whatever the modality says (DICOM allows
    an InversionTime only then)."""
    scanning, variant = SEQUENCE_FAMILIES.get(metadata.modality or "", _UNKNOWN_SEQUENCE)
    if geometry.inversion_times_ms and "IR" not in scanning:
        scanning = ("IR",) if scanning == _UNKNOWN_SEQUENCE[0] else ("IR", *scanning)
    return scanning, variant


def _value_mapping(slope: float) -> Dataset:
    """Stored values 0..65535 -> the reconstruction's (arbitrary) units: x slope."""
    units = Dataset()
    units.CodeValue = "1"
    units.CodingSchemeDesignator = "UCUM"
    units.CodeMeaning = "no units"
    mapping = Dataset()
    mapping.LUTExplanation = "reconstructed magnitude"
    mapping.LUTLabel = "MAGNITUDE"
    mapping.MeasurementUnitsCodeSequence = [units]
    mapping.RealWorldValueFirstValueMapped = 0
    mapping.RealWorldValueLastValueMapped = _MAX_STORED
    mapping.RealWorldValueIntercept = 0.0
    mapping.RealWorldValueSlope = slope
    return mapping


def _study_id(study_key: str) -> str:
    """A short (16 hex digits, SH's limit) stable Study ID from the study's key."""
    return hashlib.sha256(study_key.encode()).hexdigest()[:16].upper()


def _place(
    instance: Dataset, geometry: ScanGeometry, frame: int, frames: int, slice_index: int
) -> None:
    location = geometry.slice_position(slice_index)
    instance.ImagePositionPatient = [0, 0, f"{location:.6g}"]
    instance.SliceLocation = f"{location:.6g}"
    instance.TemporalPositionIdentifier = frame + 1
    instance.NumberOfTemporalPositions = frames
    if geometry.trigger_times_ms is not None and frame < len(geometry.trigger_times_ms):
        instance.TriggerTime = f"{geometry.trigger_times_ms[frame]:.6g}"
    if geometry.inversion_times_ms is not None and frame < len(geometry.inversion_times_ms):
        instance.InversionTime = f"{geometry.inversion_times_ms[frame]:.6g}"


def real_world_slope(instance: Dataset) -> float:
    """The factor from ``instance``'s stored values to the reconstruction's values."""
    return float(instance.RealWorldValueMappingSequence[0].RealWorldValueSlope)


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, list[Dataset]]:
    """(float (frames, slices, rows, columns) real-world values, the instances) of a series
    written by :func:`write_dicom_series`, in the writer's (frame, slice) order."""
    instances = [pydicom.dcmread(path) for path in sorted(Path(folder).glob("*.dcm"))]
    instances.sort(key=lambda item: int(item.InstanceNumber))
    frames = max(int(item.TemporalPositionIdentifier) for item in instances)
    slices = len(instances) // frames
    images = [item.pixel_array * real_world_slope(item) for item in instances]
    return np.stack(images).reshape(frames, slices, *images[0].shape), instances
