"""What names a reconstruction's DICOM patient, study, series and frame of reference.

A DICOM viewer or PACS files images by their UIDs and patient ID alone, so each must change
exactly when what it names changes:

- the patient: the centre, scanner and patient folders of the CMRxRecon layout
  (``Center001/UIH_30T_umr780/P001``), so the cine and mapping series of one patient meet in
  one study and ``P001`` of two centres are two patients. A file outside that layout has no
  known patient: it is a patient (and a study) of its own, named by its content's hash.
- the acquisition (frame of reference): the input file's content (SHA-256), wherever the file
  lies or however it was named.
- the series: the acquisition, the method (a checkpoint's SHA-256 or a classical method's
  name), the mask (pattern, acceleration, where it came from) and the readout handling, so
  two models on one file, or one model with two masks, never share a UID.
- the series number (what a viewer sorts a study's series by): ``kind x 1000 + slot``. The
  kind is the series' place among the CMRxRecon series (``cine_sax`` 1, ``cine_lax`` 2, ...,
  ``T1map`` 15; 0 for a file name outside them: :func:`cardiomm.data.metadata.
  series_kind_number`), so a patient's cine series come before the mapping series and keep
  their numbers whichever files a run holds; the slot (1-999) derives from the series' key,
  so two reconstructions of one kind differ. Two series of one study that a run writes
  never share a number (the later takes the next free slot); two runs on one study can, with
  odds of 1 in 999 per pair of series of one kind; the UIDs differ regardless.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Collection
from pathlib import Path

from cardiomm.data.metadata import (
    ScanMetadata,
    parse_scanner_folder,
    series_kind_number,
    series_stem,
)

# DICOM's LO values hold at most 64 characters and no backslash or control characters.
_LO_LENGTH = 64
_NOT_LO = re.compile(r"[^\x20-\x5b\x5d-\x7e]")
_CHUNK_BYTES = 1 << 20
# Series numbers: one block of slots per series kind.
_SLOTS_PER_KIND = 1000


@dataclasses.dataclass(frozen=True)
class SeriesIdentity:
    """What names one DICOM series and everything above it.

    Attributes:
        patient_id: unique across centres, e.g. ``Center001-UIH_30T_umr780-P001`` or
            ``anonymous-<hash>`` for a file outside the CMRxRecon layout.
        study_key: stable text naming the study (the patient's examination).
        frame_of_reference_key: stable text naming the acquisition (the input's content).
        series_key: stable text naming the series (acquisition, method, mask).
        description: the series description, e.g. ``cardiomm reconstruction, Uniform8``.
        series_number: the series' number in the study.
    """

    patient_id: str
    study_key: str
    frame_of_reference_key: str
    series_key: str
    description: str
    series_number: int = 1


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def patient_id(path: Path, metadata: ScanMetadata, content_hash: str) -> str:
    """The patient of the file at (absolute) ``path``.

    ``.../Center001/UIH_30T_umr780/P001/cine_sax.mat`` -> ``Center001-UIH_30T_umr780-P001``;
    a file elsewhere -> ``anonymous-<first 16 hex digits of its content hash>``.
    """
    folders = [folder.name for folder in path.parents[:3]] + ["", "", ""]
    patient, scanner, centre = folders[:3]
    in_layout = (
        metadata.centre is not None
        and centre == metadata.centre
        and parse_scanner_folder(scanner)[0] is not None
        and patient != ""
    )
    if not in_layout:
        return f"anonymous-{content_hash[:16]}"
    return _NOT_LO.sub("_", f"{centre}-{scanner}-{patient}")[:_LO_LENGTH]


def series_identity(
    path: Path,
    metadata: ScanMetadata,
    content_hash: str,
    method_key: str,
    mask_key: str,
    description: str,
    numbers_taken: Collection[int] = (),
) -> SeriesIdentity:
    """The identity of the reconstruction of the file at (absolute) ``path``.

    Args:
        path: the input k-space file.
        metadata: its metadata (the centre comes from it).
        content_hash: :func:`file_sha256` of the file.
        method_key: names the method, e.g. ``checkpoint sha256:<hex>`` or ``method sense``.
        mask_key: names the mask and the readout handling, e.g. ``Uniform8, generated (ACS
            20, seed 0), readout kept``.
        description: the series description.
        numbers_taken: series numbers of the same study written already (by this run).
    """
    patient = patient_id(path, metadata, content_hash)
    series_key = f"acquisition sha256:{content_hash}; {method_key}; mask {mask_key}"
    return SeriesIdentity(
        patient_id=patient,
        study_key=f"patient {patient}",
        frame_of_reference_key=f"acquisition sha256:{content_hash}",
        series_key=series_key,
        description=description,
        series_number=series_number(series_stem(path.name), series_key, numbers_taken),
    )


def series_number(stem: str, series_key: str, taken: Collection[int] = ()) -> int:
    """The series' number in its study (see the module docstring): the kind's block, the
    slot from ``series_key``, moved on to the next free slot of the block past ``taken``.

    Raises:
        ValueError: every slot of the kind's block is taken.
    """
    block = series_kind_number(stem) * _SLOTS_PER_KIND
    slots = _SLOTS_PER_KIND - 1
    first = int(hashlib.sha256(series_key.encode()).hexdigest()[:8], 16) % slots
    for step in range(slots):
        number = block + 1 + (first + step) % slots
        if number not in taken:
            return number
    raise ValueError(f"all {slots} series numbers of {stem!r} in this study are taken")
