"""One synthetic series end to end: subject -> labels -> contrast -> coils -> k-space + truth."""

from __future__ import annotations

import dataclasses

import numpy as np

from cardiomm.data.synthetic.acquisition import AcquisitionReport, acquire, truncate_resolution
from cardiomm.data.synthetic.anatomy import SliceGeometry, render_slice, slice_geometry
from cardiomm.data.synthetic.breath_hold import BreathHold, sample_breath_hold, still_breath_hold
from cardiomm.data.synthetic.coils import CoilArray, body_array, sensitivity_maps
from cardiomm.data.synthetic.contrast import cine_inflow_gain, render_signal
from cardiomm.data.synthetic.heart import heart_pose, lax_cavity_area_mm2
from cardiomm.data.synthetic.labels import SOFT_TISSUE_LABELS, Label, label_names
from cardiomm.data.synthetic.motion import (
    LVModel,
    contraction,
    diastolic_phase,
    end_systole_ms,
    lv_model,
)
from cardiomm.data.synthetic.sequences import Sequence, cine_end_systole_frame, sequence_for
from cardiomm.data.synthetic.series import SeriesSpec
from cardiomm.data.synthetic.shapes import ImageGrid
from cardiomm.data.synthetic.sites import Protocol, SiteProfile
from cardiomm.data.synthetic.smooth_maps import (
    FieldMaps,
    SmoothField,
    random_field,
    sample_field_maps,
)
from cardiomm.data.synthetic.subjects import Subject
from cardiomm.data.synthetic.tissues import TissueTable, tissue_table

# The object is rendered at this many times the acquired resolution, then k-space truncated.
RENDER_OVERSAMPLING = 2
READOUT_OVERSAMPLING = 2
# Torso width at which a site's SNR is quoted.
_REFERENCE_WIDTH_MM = 320.0
# The uneven inflow pattern of a cine's blood pools: features this size, moving this far
# (in the pattern's own coordinates) over one RR interval.
_INFLOW_PATTERN_MM = 35.0
_INFLOW_TRAVEL_MM = 60.0
LABEL_GRID = (
    "the full stored k-space grid: row i, column j of a label map is pixel (i, j) of "
    "ifft2c(kspace) (readout oversampling included, no crop), pixel spacing pixel_spacing_mm"
)


@dataclasses.dataclass
class SimulatedSeries:
    """A series and its ground truth.

    Attributes:
        kspace: complex64, (frames, slices, coils, ky, kx) or (slices, coils, ky, kx).
        labels: uint8, (frames, slices, ky, kx) or (slices, ky, kx), on the k-space grid.
        parameter_maps: true T1 / T2 maps (slices, ky, kx) in ms for mapping series.
        sidecar: JSON-ready description and truth.
    """

    kspace: np.ndarray
    labels: np.ndarray
    parameter_maps: dict[str, np.ndarray]
    sidecar: dict[str, object]


def subject_tissues(field_strength: float, subject: Subject) -> TissueTable:
    """The tissue table of one patient: field, per-subject T1 and diffuse myocardial disease."""
    table = tissue_table(field_strength)
    table = dataclasses.replace(table, t1_ms=table.t1_ms * subject.tissue_t1_jitter)
    for label in (Label.LV_MYOCARDIUM, Label.RV_MYOCARDIUM):
        table = table.scaled(
            label, t1=subject.myocardial_t1_factor, ecv=subject.myocardial_ecv_factor
        )
    return table


def exam_field_maps(subject: Subject, field_strength: float) -> FieldMaps:
    """B0 / B1 / phase / texture maps of the patient's exam (shared by all its series)."""
    return sample_field_maps(np.random.default_rng([subject.seed, 1]), field_strength)


def series_grid(site: SiteProfile, spec: SeriesSpec) -> ImageGrid:
    """The stored grid of a series: (ky, kx) with the readout oversampled."""
    ny, nx = site.series_matrix(spec)
    phase_fov, readout_fov = site.fov_mm
    return ImageGrid(ny, READOUT_OVERSAMPLING * nx, phase_fov / ny, readout_fov / nx)


def frame_phases(subject: Subject, sequence: Sequence, num_frames: int) -> np.ndarray:
    """Contraction phase of each frame: through the cycle for cine, mid-diastole otherwise."""
    if sequence.kind == "cine":
        times = np.asarray(sequence.trigger_times_ms)
        return contraction(times, subject.rr_ms, end_systole_ms(subject, num_frames))
    return np.full(num_frames, diastolic_phase(subject))


@dataclasses.dataclass(frozen=True)
class _Scene:
    """What one series images and how: the step shared by rendering and the sidecar.

    Attributes:
        lv: the patient's calibrated LV model.
        grid: the stored (ky, kx) grid.
        geometry: the series' slices.
        sequence: the series' parameters.
        phases: (frames,) contraction phase of each frame.
        tissues: the tissues as this series sees them (post-contrast for LGE).
        fields: the exam's field maps.
    """

    lv: LVModel
    grid: ImageGrid
    geometry: SliceGeometry
    sequence: Sequence
    phases: np.ndarray
    tissues: TissueTable
    fields: FieldMaps


def simulate_series(
    site: SiteProfile,
    protocol: Protocol,
    subject: Subject,
    spec: SeriesSpec,
    rng: np.random.Generator,
) -> SimulatedSeries:
    """Simulate one series of one patient at one site.

    Args:
        site: centre and scanner.
        protocol: the preset's frame / slice / coil counts.
        subject: the patient.
        spec: which series.
        rng: draws everything specific to this series (noise, gain, TI error).

    Returns:
        the k-space, labels, true parameter maps and sidecar.
    """
    # The draws from ``rng`` keep their order (sequence, inflow, breath-holds, SNR, gain,
    # noise): the same seed makes the same file.
    scene = _scene(site, protocol, subject, spec, rng)
    grid, geometry = scene.grid, scene.geometry
    inflow = random_field(rng, _INFLOW_PATTERN_MM) if scene.sequence.kind == "cine" else None
    images, labels = _render_images(subject, scene, inflow)
    coils = _receive_array(site, subject)
    sensitivities = sensitivity_maps(coils, grid, geometry.z_mm)
    # A cine is segmented over the heartbeats of one breath-hold per slice.
    holds = [
        sample_breath_hold(rng) if scene.sequence.kind == "cine" else still_breath_hold()
        for _ in range(len(geometry.levels))
    ]
    modulation = np.stack(
        [hold.modulation(grid.ny, grid.nx, grid.dy_mm, grid.dx_mm) for hold in holds]
    )
    snr, scale = _scan_snr_and_scale(site, spec, subject, rng)
    kspace, report = acquire(
        images,
        sensitivities,
        coils.noise_covariance,
        np.isin(labels, SOFT_TISSUE_LABELS),
        snr,
        protocol.coils,
        scale,
        rng,
        modulation=modulation,
        raw_filter=site.chain.raw_filter(grid.ny, grid.nx),
    )
    maps = _parameter_maps(spec, scene.tissues, labels)
    if not spec.has_frame_axis:
        kspace, labels = kspace[0], labels[0]
    sidecar = _sidecar(
        site, spec, subject, scene, snr, report, coils.num_coils, kspace.shape, holds
    )
    return SimulatedSeries(kspace, labels, maps, sidecar)


def _scene(
    site: SiteProfile,
    protocol: Protocol,
    subject: Subject,
    spec: SeriesSpec,
    rng: np.random.Generator,
) -> _Scene:
    """The series' grid, slices, sequence (its one draw from ``rng``), phases and tissues."""
    lv = lv_model(subject, site.sax_slices)
    num_frames, num_slices = site.series_frames_slices(spec, protocol)
    grid = series_grid(site, spec)
    tissues = subject_tissues(site.field_strength, subject)
    if spec.kind == "lge":
        tissues = tissues.post_contrast(subject.plasma_gadolinium_mm)
    sequence = sequence_for(
        spec.kind, tissues, subject, num_frames, rng, cine_flip_factor=site.chain.cine_flip_factor
    )
    phases = frame_phases(subject, sequence, num_frames)
    geometry = slice_geometry(subject, lv, spec.view, spec.kind, num_slices)
    fields = exam_field_maps(subject, site.field_strength)
    return _Scene(lv, grid, geometry, sequence, phases, tissues, fields)


def _receive_array(site: SiteProfile, subject: Subject) -> CoilArray:
    """The site's receive array on this patient, placed by the patient's own stream (the same
    placement in every series of the exam)."""
    chain = site.chain
    return body_array(
        site.raw_coils,
        subject.body,
        np.random.default_rng([subject.seed, 2]),
        columns=chain.coil_columns,
        neighbour_correlation=chain.coil_correlation,
    )


def _scan_snr_and_scale(
    site: SiteProfile, spec: SeriesSpec, subject: Subject, rng: np.random.Generator
) -> tuple[float, float]:
    """This scan's SNR and intensity scale, SNR drawn first, then the receiver gain."""
    # Larger bodies load the coils with more noise and sit farther from them; scan-to-scan
    # SNR and receiver gain vary a little even on one scanner.
    snr = site.snr * spec.snr_factor * (_REFERENCE_WIDTH_MM / subject.body.width)
    snr *= rng.uniform(0.9, 1.1)
    scale = site.intensity_scale * rng.uniform(0.8, 1.25)
    return snr, scale


def _render_images(
    subject: Subject, scene: _Scene, inflow: SmoothField | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Object images (frames, slices, ny, nx) complex and labels (same, uint8) on the scene's
    grid, rendered on a grid :data:`RENDER_OVERSAMPLING` times finer and truncated.

    ``inflow``: the cine's uneven blood-pool inflow pattern (None: uniform inflow gain)."""
    lv, geometry, grid, phases = scene.lv, scene.geometry, scene.grid, scene.phases
    sequence, tissues, fields = scene.sequence, scene.tissues, scene.fields
    fine_grid = grid.refined(RENDER_OVERSAMPLING)
    num_slices = len(geometry.levels)
    images = np.empty((len(phases), num_slices, grid.ny, grid.nx), dtype=np.complex64)
    labels = np.empty((len(phases), num_slices, grid.ny, grid.nx), dtype=np.uint8)
    y, x = fine_grid.coordinates()
    pose = heart_pose(subject, geometry.view)
    hot_spot = (
        pose.centre_mm[0] + 45.0 * np.cos(pose.angle_rad + 0.8 * np.pi),
        pose.centre_mm[1] + 45.0 * np.sin(pose.angle_rad + 0.8 * np.pi),
    )
    # Pixel (i, j) of the acquired grid is pixel (2i + ny % 2, 2j) of the fine grid.
    first_row = grid.ny % 2
    for index in range(num_slices):
        fine_labels = render_slice(subject, lv, geometry, index, fine_grid, phases)
        z = float(geometry.z_mm[index])
        blood_gain = None
        if inflow is not None:
            travel = _INFLOW_TRAVEL_MM * np.arange(len(phases)) / max(len(phases), 1)
            pattern = np.stack([inflow(y, x, z + shift) for shift in travel])
            blood_gain = cine_inflow_gain(fine_labels, phases, pattern)
        signal = render_signal(
            fine_labels,
            sequence,
            tissues,
            fields.b1_map(y, x, z),
            fields.off_resonance_map(y, x, z, hot_spot),
            fields.texture_map(y, x, z),
            blood_gain,
        )
        signal = (signal * np.exp(1j * fields.phase_map(y, x, z))).astype(np.complex64)
        images[:, index] = truncate_resolution(signal, (grid.ny, grid.nx))
        labels[:, index] = fine_labels[:, first_row::RENDER_OVERSAMPLING, ::RENDER_OVERSAMPLING]
    return images, labels


def _parameter_maps(
    spec: SeriesSpec, tissues: TissueTable, labels: np.ndarray
) -> dict[str, np.ndarray]:
    if spec.kind == "t1map":
        return {"t1_ms": tissues.t1_ms[labels[0]].astype(np.float32)}
    if spec.kind == "t2map":
        return {"t2_ms": tissues.t2_ms[labels[0]].astype(np.float32)}
    return {}


def _sidecar(
    site: SiteProfile,
    spec: SeriesSpec,
    subject: Subject,
    scene: _Scene,
    snr: float,
    report: AcquisitionReport,
    raw_coils: int,
    kspace_shape: tuple[int, ...],
    holds: list[BreathHold],
) -> dict[str, object]:
    """The JSON sidecar of a series: what was acquired, how, and its ground truth."""
    grid, geometry, site_fov = scene.grid, scene.geometry, site.fov_mm
    return {
        **site.identity(),
        "stem": spec.stem,
        "modality_folder": spec.folder,
        "kind": spec.kind,
        "view": spec.view,
        "kspace_variable": "kspace_full",
        "kspace_shape": list(kspace_shape),
        "kspace_axes": "frames, slices, coils, ky, kx"
        if spec.has_frame_axis
        else "slices, coils, ky, kx",
        "readout_oversampling": READOUT_OVERSAMPLING,
        "fov_mm": {
            "phase": site_fov[0],
            "readout": site_fov[1],
            "readout_with_oversampling": READOUT_OVERSAMPLING * site_fov[1],
        },
        "pixel_spacing_mm": [grid.dy_mm, grid.dx_mm],
        "slice_thickness_mm": geometry.thickness_mm,
        "slice_heights_mm": geometry.heights_mm.tolist() if spec.view == "sax" else None,
        "slice_levels": geometry.levels.tolist(),
        "coils_raw": raw_coils,
        "coils": int(kspace_shape[-3]),
        "compression_energy": report.compression_energy,
        "snr": snr,
        "noise_std": report.noise_std,
        "intensity_scale": report.intensity_scale,
        "vendor_chain": site.chain.describe(),
        "breath_holds": [hold.describe() for hold in holds],
        "b1_amplitude": scene.fields.b1_amplitude,
        "off_resonance_peak_hz": scene.fields.off_resonance_hz,
        "sequence": scene.sequence.to_dict(),
        "cardiac": _cardiac_truth(spec, subject, scene.lv, geometry, scene.phases),
        "disease": subject.disease,
        "subject": subject.summary(),
        "tissues": _tissue_values(scene.tissues),
        "labels": {"grid": LABEL_GRID, "names": {str(k): v for k, v in label_names().items()}},
    }


def _cardiac_truth(
    spec: SeriesSpec,
    subject: Subject,
    lv: LVModel,
    geometry: SliceGeometry,
    phases: np.ndarray,
) -> dict[str, object]:
    """The sidecar's cardiac truth: rhythm, per-frame phase and LV cavity areas (frames,
    slices) mm^2, EF and volumes, and for a cine its end-systolic frame."""
    if geometry.view == "sax":
        areas = np.stack([lv.cavity_areas_mm2(geometry.heights_mm, p) for p in phases])
    else:
        areas = np.array([[lax_cavity_area_mm2(lv, p, geometry.view)] for p in phases])
    cardiac: dict[str, object] = {
        "heart_rate_bpm": subject.heart_rate_bpm,
        "rr_ms": subject.rr_ms,
        "contraction_phase": phases.tolist(),
        "lv_cavity_area_mm2": areas.tolist(),
        "ejection_fraction": subject.ejection_fraction,
        "lv_edv_ml": lv.edv_ml,
        "lv_esv_ml": lv.volume_ml(1.0),
        "volume_definition": "sum over the cine SAX stack of LV blood-pool area x slice thickness",
    }
    if spec.kind == "cine":
        cardiac["end_systolic_frame"] = cine_end_systole_frame(subject, len(phases))
    if spec.kind == "cine" and spec.view == "sax":
        cardiac["lv_volume_ml"] = [lv.volume_ml(p) for p in phases]
    return cardiac


def _tissue_values(tissues: TissueTable) -> dict[str, dict[str, float]]:
    """The sidecar's tissue truth: T1, T2 (ms) and proton density of every labelled tissue."""
    return {
        name: {
            "t1_ms": float(tissues.t1_ms[value]),
            "t2_ms": float(tissues.t2_ms[value]),
            "proton_density": float(tissues.proton_density[value]),
        }
        for value, name in label_names().items()
        if value != Label.BACKGROUND
    }
