"""Small CMRxRecon-2025-layout data sets written for tests (the synthetic generator is tested
on its own; these are plain, fast and fully controlled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiomm.data.matlab import write_mat_v73

FULL_SAMPLE = "MultiCoil/Cine/TrainingSet/FullSample"


def phantom_kspace(
    frames: int, slices: int, coils: int, ky: int, kx: int, seed: int = 0
) -> np.ndarray:
    """complex64 (frames, slices, coils, ky, kx): a smooth ellipse seen by smooth coils."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1 : 1 : ky * 1j, -1 : 1 : kx * 1j]
    images = np.empty((frames, slices, ky, kx), dtype=np.complex128)
    for frame in range(frames):
        for slice_index in range(slices):
            radius = 0.5 + 0.05 * np.sin(frame + slice_index)
            images[frame, slice_index] = (x**2 / 0.6 + y**2 / 0.8 < radius) * (
                1 + 0.3 * rng.random()
            )
    angles = np.linspace(0, 2 * np.pi, coils, endpoint=False)
    sensitivities = np.stack(
        [np.exp(-((x - 0.7 * np.cos(a)) ** 2 + (y - 0.7 * np.sin(a)) ** 2)) for a in angles]
    ) * np.exp(1j * 0.3 * x)
    coil_images = images[:, :, None] * sensitivities
    kspace = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(coil_images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    return kspace.astype(np.complex64)


def write_site_file(
    root: Path,
    centre: str,
    scanner: str,
    patient: str,
    stem: str = "cine_sax",
    shape: tuple[int, int, int, int, int] = (2, 3, 4, 24, 32),
    seed: int = 0,
    variable: str = "kspace_full",
) -> Path:
    """One fully sampled file at ``root/<FULL_SAMPLE>/<centre>/<scanner>/<patient>/<stem>.mat``."""
    path = root / FULL_SAMPLE / centre / scanner / patient / f"{stem}.mat"
    return write_mat_v73(path, {variable: phantom_kspace(*shape, seed=seed)})


def write_consortium(root: Path) -> dict[str, list[Path]]:
    """Three centres of unequal size and two vendors; returns each centre's files."""
    layout = {
        "Center001": ("Siemens_30T_Vida", ["P001", "P002", "P003", "P004", "P005"]),
        "Center002": ("UIH_15T_umr670", ["P001", "P002"]),
        "Center003": ("Siemens_15T_Avanto", ["P001"]),
    }
    files: dict[str, list[Path]] = {}
    for number, (centre, (scanner, patients)) in enumerate(layout.items()):
        files[centre] = [
            write_site_file(root, centre, scanner, patient, seed=10 * number + index)
            for index, patient in enumerate(patients)
        ]
    return files


# Overrides that make the classical references' tuning a smoke test: one validation slice,
# two lambdas per method, two solver iterations (the machinery, not its figures).
TINY_CLASSICAL = [
    "++classical.tuning_slices=1",
    "++classical.workers=1",
    "++classical.max_iter={cg-sense: 2, l1-wavelet: 2, kt-sparse: 2}",
    "++classical.lambdas={cg-sense: [0.01, 0.1], l1-wavelet: [0.01, 0.1], kt-sparse: [0.01, 0.1]}",
]
