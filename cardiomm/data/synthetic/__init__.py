"""Synthetic multi-centre, multi-vendor cardiac k-space: the project's embedded data set.

``generate_dataset(root, preset, seed)`` writes a consortium in the CMRxRecon 2025 layout::

    <root>/MultiCoil/{Cine|Mapping|LGE|T1w|T2w|BlackBlood}/TrainingSet/FullSample/
        Center00X/{Vendor}_{FF}T_{Model}/P00X/<stem>.mat     kspace_full, complex64
    <root>/synthetic_manifest.json                            version, preset, seed, centres

k-space is stored in h5py order (frames, slices, coils, ky, kx), or (slices, coils, ky, kx) for
T1w / T2w / black blood, centred, readout (kx) 2x oversampled, coils compressed (10, or 4 in
``tiny``). Beside each file, ``<stem>.json`` (scanner, sequence with TI / T2-prep times, SNR,
coils before compression, vendor scale, disease, EF and true LV volume per frame) and
``<stem>_labels.npz`` (``labels`` uint8 with the k-space shape minus the coil axis, on the full
stored grid: pixel (i, j) is pixel (i, j) of ``ifft2c(kspace)``, oversampling included; true
``t1_ms`` / ``t2_ms`` maps for mapping series). Labels are :class:`Label` (1 RV blood,
2 LV myocardium, 3 LV blood as in ACDC; 4 scar; see :mod:`.labels`).

Pipeline per file (one module each): :mod:`.subjects` (patient) -> :mod:`.motion` (cardiac
cycle, exact EF) -> :mod:`.torso` + :mod:`.heart` via :mod:`.anatomy` (label maps) ->
:mod:`.tissues` + :mod:`.sequences` + :mod:`.contrast` (signal) -> :mod:`.smooth_maps` (B0, B1,
phase, texture) -> :mod:`.coils` + :mod:`.acquisition` (k-space) -> :mod:`.writer`;
:mod:`.scan` runs it, :mod:`.generate` runs a preset of :mod:`.sites`.
"""

from cardiomm.data.synthetic.generate import (
    GENERATOR_VERSION,
    FileTask,
    centre_summaries,
    ensure_synthetic_dataset,
    generate_dataset,
    plan_dataset,
    subject_for,
)
from cardiomm.data.synthetic.labels import Label, label_names
from cardiomm.data.synthetic.scan import SimulatedSeries, simulate_series
from cardiomm.data.synthetic.series import SERIES, SeriesSpec
from cardiomm.data.synthetic.sites import (
    PRESETS,
    DatasetPreset,
    Protocol,
    SiteProfile,
    field_folder_token,
    get_preset,
)
from cardiomm.data.synthetic.subjects import DISEASES, Subject, sample_subject
from cardiomm.data.synthetic.writer import (
    MANIFEST_NAME,
    read_labels,
    read_manifest,
    read_sidecar,
    sidecar_paths,
)

__all__ = [
    "DISEASES",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "PRESETS",
    "SERIES",
    "DatasetPreset",
    "FileTask",
    "Label",
    "Protocol",
    "SeriesSpec",
    "SimulatedSeries",
    "SiteProfile",
    "Subject",
    "centre_summaries",
    "ensure_synthetic_dataset",
    "field_folder_token",
    "generate_dataset",
    "get_preset",
    "label_names",
    "plan_dataset",
    "read_labels",
    "read_manifest",
    "read_sidecar",
    "sample_subject",
    "sidecar_paths",
    "simulate_series",
    "subject_for",
]
