"""Reconstruction of whole k-space files for submission and inspection (``cardiomm reconstruct``).

- :mod:`~cardiomm.recon.mask_choice`: which mask a file is reconstructed with.
- :mod:`~cardiomm.recon.volume`: every (frame, slice) image of one file through a method.
- :mod:`~cardiomm.recon.submission`: input discovery, the CMRxRecon submission layout, the
  summary CSV.
- :mod:`~cardiomm.recon.preview`: PNG previews with error maps.
- :mod:`~cardiomm.recon.dicom`, :mod:`~cardiomm.recon.nifti`: the clinical formats (MR image
  series, 4D volumes placed at the same patient coordinates);
  :mod:`~cardiomm.recon.identity`: the patient, study, series and frame-of-reference names
  their UIDs come from.
"""

from cardiomm.recon.mask_choice import (
    FileMasks,
    GeneratedMasks,
    MissingMaskError,
    OfficialMasks,
    SampledMasks,
    choose_masks,
    parse_mask_spec,
)
from cardiomm.recon.preview import save_preview, save_volume_preview
from cardiomm.recon.submission import (
    FULL_VARIABLE,
    RANKING_VARIABLE,
    FileSummary,
    InputFiles,
    find_inputs,
    output_relative_path,
    preview_relative_path,
    ranking_volume,
    write_reconstruction,
    write_summary,
)
from cardiomm.recon.volume import VolumeReconstruction, reconstruct_volume

__all__ = [
    "FULL_VARIABLE",
    "RANKING_VARIABLE",
    "FileMasks",
    "FileSummary",
    "GeneratedMasks",
    "InputFiles",
    "MissingMaskError",
    "OfficialMasks",
    "SampledMasks",
    "VolumeReconstruction",
    "choose_masks",
    "find_inputs",
    "output_relative_path",
    "parse_mask_spec",
    "preview_relative_path",
    "ranking_volume",
    "reconstruct_volume",
    "save_preview",
    "save_volume_preview",
    "write_reconstruction",
    "write_summary",
]
