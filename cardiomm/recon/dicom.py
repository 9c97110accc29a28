"""Reconstructions as DICOM MR image series, for PACS viewers and segmentation tools.

One series per reconstructed file, one instance per (frame, slice) image, written with
pydicom:

- UIDs are derived from stable names (the patient folder for the study; the file, method
  and undersampling for the series; frame and slice for each instance), so a rerun writes
  the same UIDs and all series of one patient share one study.
- Geometry from the scan's sidecar (:mod:`cardiomm.data.geometry`): ``PixelSpacing`` (row,
  column), ``SliceThickness``, ``ImagePositionPatient`` and ``SliceLocation`` along the slice
  normal. The files carry no orientation, so ``ImageOrientationPatient`` is the image's own
  axes (rows along y, columns along x): distances and volumes are right, the patient
  orientation is not known.
- Cine frames carry ``TemporalPositionIdentifier`` and ``TriggerTime``, T1 mapping frames
  their ``InversionTime``.
- Magnitudes are stored as 16-bit integers with ``RescaleSlope`` (value = stored x slope),
  one slope per series; the window spans the 1st to 99.5th percentile.
- ``ImageType`` is DERIVED \\ SECONDARY, and the series description names the method and
  the undersampling, e.g. ``CardioMM reconstruction, ktRadial24``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cardiomm.data.geometry import ScanGeometry
from cardiomm.data.metadata import ScanMetadata

_MAX_STORED = 65535
# The implementation's name in every file (DICOM's ImplementationVersionName, <= 16 chars).
_IMPLEMENTATION = "CARDIOMM-FL"


@dataclasses.dataclass(frozen=True)
class SeriesIdentity:
    """What names a series.

    Attributes:
        patient: the patient folder, e.g. ``P001`` (pseudonymous: it is all the data hold).
        study_key: stable text naming the study (e.g. centre/scanner/patient folders).
        series_key: stable text naming the series (file, method, undersampling).
        description: the series description, e.g. ``CardioMM reconstruction, Uniform8``.
        series_number: the series' number in the study.
    """

    patient: str
    study_key: str
    series_key: str
    description: str
    series_number: int = 1


def write_dicom_series(
    folder: str | Path,
    volume: np.ndarray,
    metadata: ScanMetadata,
    geometry: ScanGeometry,
    identity: SeriesIdentity,
) -> list[Path]:
    """Write ``volume`` as one MR image series into ``folder``.

    Args:
        folder: where the instances go (made), ``IM_f<frame>_s<slice>.dcm``.
        volume: float (frames, slices, rows, columns) magnitude images.
        metadata: the scan's vendor, field strength, scanner, modality and view.
        geometry: its pixel spacing, slice thickness and positions, frame times.
        identity: the names its UIDs and description come from.

    Returns:
        The files written, frame by frame, slice by slice.
    """
    if volume.ndim != 4:
        raise ValueError(
            f"a DICOM series needs (frames, slices, rows, columns), got {volume.shape}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    magnitude = np.nan_to_num(np.abs(np.asarray(volume, dtype=np.float64)))
    peak = float(magnitude.max())
    slope = peak / _MAX_STORED if peak > 0 else 1.0
    low, high = np.percentile(magnitude, [1.0, 99.5]) if magnitude.size else (0.0, 1.0)
    study_uid = generate_uid(entropy_srcs=["study", identity.study_key])
    series_uid = generate_uid(entropy_srcs=["series", identity.series_key])
    frame_of_reference_uid = generate_uid(entropy_srcs=["frame", identity.series_key])
    frames, slices = volume.shape[:2]
    written = []
    for frame in range(frames):
        for slice_index in range(slices):
            instance = _instance(magnitude[frame, slice_index], slope, metadata, geometry, identity)
            instance.StudyInstanceUID = study_uid
            instance.SeriesInstanceUID = series_uid
            instance.FrameOfReferenceUID = frame_of_reference_uid
            instance.SOPInstanceUID = generate_uid(
                entropy_srcs=["instance", identity.series_key, str(frame), str(slice_index)]
            )
            instance.file_meta.MediaStorageSOPInstanceUID = instance.SOPInstanceUID
            instance.InstanceNumber = frame * slices + slice_index + 1
            _place(instance, geometry, frame, frames, slice_index)
            instance.WindowCenter = f"{(low + high) / 2:.4g}"
            instance.WindowWidth = f"{max(high - low, slope):.4g}"
            path = folder / f"IM_f{frame:03d}_s{slice_index:03d}.dcm"
            instance.save_as(path, enforce_file_format=True)
            written.append(path)
    return written


def _instance(
    image: np.ndarray,
    slope: float,
    metadata: ScanMetadata,
    geometry: ScanGeometry,
    identity: SeriesIdentity,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = _IMPLEMENTATION
    instance = Dataset()
    instance.file_meta = meta
    instance.SOPClassUID = MRImageStorage
    instance.Modality = "MR"
    instance.ImageType = ["DERIVED", "SECONDARY"]
    instance.PatientName = identity.patient
    instance.PatientID = identity.patient
    instance.SeriesDescription = identity.description[:64]
    instance.SeriesNumber = identity.series_number
    instance.Manufacturer = metadata.vendor or ""
    instance.ManufacturerModelName = metadata.scanner_model or ""
    if metadata.field_strength is not None:
        instance.MagneticFieldStrength = f"{metadata.field_strength:g}"
    instance.BodyPartExamined = "HEART"
    instance.ProtocolName = " ".join(part for part in (metadata.modality, metadata.view) if part)
    instance.PixelSpacing = [f"{spacing:.6g}" for spacing in geometry.pixel_spacing_mm]
    instance.SliceThickness = f"{geometry.slice_thickness_mm:.6g}"
    instance.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    stored = np.clip(np.rint(image / slope), 0, _MAX_STORED).astype(np.uint16)
    instance.Rows, instance.Columns = stored.shape
    instance.SamplesPerPixel = 1
    instance.PhotometricInterpretation = "MONOCHROME2"
    instance.BitsAllocated = 16
    instance.BitsStored = 16
    instance.HighBit = 15
    instance.PixelRepresentation = 0
    instance.RescaleIntercept = "0"
    instance.RescaleSlope = f"{slope:.10g}"
    instance.PixelData = stored.tobytes()
    return instance


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


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, list[Dataset]]:
    """(float (frames, slices, rows, columns) values after rescale, the instances) of a
    series written by :func:`write_dicom_series`, ordered by temporal position and location."""
    instances = [pydicom.dcmread(path) for path in sorted(Path(folder).glob("*.dcm"))]
    instances.sort(
        key=lambda item: (int(item.TemporalPositionIdentifier), float(item.SliceLocation))
    )
    frames = max(int(item.TemporalPositionIdentifier) for item in instances)
    slices = len(instances) // frames
    images = [item.pixel_array * float(item.RescaleSlope) for item in instances]
    return np.stack(images).reshape(frames, slices, *images[0].shape), instances
