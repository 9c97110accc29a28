"""PNG previews of one reconstructed file: its central slice in the first frame.

Panels, left to right: zero-filled, reconstruction, then either the fully sampled reference
and the error map |reconstruction - reference|, or (undersampled input, no reference) the
change the method made, |reconstruction - zero-filled|. Each image is divided by its own
99.5th percentile, as the official scores do, and shown on [0, 1]; difference maps of those
normalised images are shown on [0, 0.2], i.e. five times brighter, with a colour bar. With
a reference, the titles give the official PSNR / SSIM of that image on the ranked centre
crop, which the reconstruction panel outlines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cardiomm.metrics import evaluate_image, normalize_percentile, ranking_crop, ranking_crop_shape
from cardiomm.recon.volume import VolumeReconstruction

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

DIFFERENCE_GAIN = 5.0
_PANEL_INCHES = 3.2
_DPI = 110


def preview_position(frames: int, slices: int) -> tuple[int, int]:
    """(frame, slice) a preview shows: the first frame of the central slice."""
    del frames
    return 0, slices // 2


def save_volume_preview(
    path: str | Path, volume: VolumeReconstruction, title: str, method: str
) -> Path:
    """:func:`save_preview` of the image at :func:`preview_position` of ``volume``."""
    frame, slice_index = preview_position(*volume.shape[:2])
    reference = None if volume.reference is None else volume.reference[frame, slice_index]
    return save_preview(
        path,
        volume.zero_filled[frame, slice_index],
        volume.reconstruction[frame, slice_index],
        reference,
        title=f"{title}\nframe {frame}, slice {slice_index}",
        method=method,
        oversampling_removed=volume.oversampling_removed,
    )


def save_preview(
    path: str | Path,
    zero_filled: np.ndarray,
    reconstruction: np.ndarray,
    reference: np.ndarray | None,
    title: str,
    method: str = "reconstruction",
    oversampling_removed: bool = False,
) -> Path:
    """Write the preview PNG (folders are made).

    Args:
        path: the PNG to write.
        zero_filled: (ky, kx) magnitude.
        reconstruction: (ky, kx) magnitude.
        reference: (ky, kx) fully sampled magnitude, or None.
        title: the figure's title (file, mask, position).
        method: the method's name, for the reconstruction panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = _panels(zero_filled, reconstruction, reference, method, oversampling_removed)
    figure = Figure(figsize=(_PANEL_INCHES * len(panels), _PANEL_INCHES + 0.9))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels))
    for axis, (image, panel_title, is_difference) in zip(axes, panels, strict=True):
        _draw_panel(figure, axis, image, panel_title, is_difference)
    if reference is not None:
        axes[1].add_patch(_crop_outline(reconstruction.shape, oversampling_removed))
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    return path


def _panels(
    zero_filled: np.ndarray,
    reconstruction: np.ndarray,
    reference: np.ndarray | None,
    method: str,
    oversampling_removed: bool,
) -> list[tuple[np.ndarray, str, bool]]:
    """The preview's panels, left to right: (image scaled to its 99.5th percentile, title,
    whether it is a difference image). With a reference the titles carry the scores."""
    shown_zero_filled = normalize_percentile(zero_filled)
    shown_reconstruction = normalize_percentile(reconstruction)
    if reference is None:
        return [
            (shown_zero_filled, "zero-filled", False),
            (shown_reconstruction, method, False),
            (
                np.abs(shown_reconstruction - shown_zero_filled),
                f"|{method} - zero-filled| x{DIFFERENCE_GAIN:g}",
                True,
            ),
        ]
    shown_reference = normalize_percentile(reference)
    zero_filled_scores = _scores_text(reference, zero_filled, oversampling_removed)
    reconstruction_scores = _scores_text(reference, reconstruction, oversampling_removed)
    return [
        (shown_zero_filled, f"zero-filled\n{zero_filled_scores}", False),
        (shown_reconstruction, f"{method}\n{reconstruction_scores}", False),
        (shown_reference, "reference (fully sampled)", False),
        (
            np.abs(shown_reconstruction - shown_reference),
            f"|{method} - reference| x{DIFFERENCE_GAIN:g}",
            True,
        ),
    ]


def _draw_panel(
    figure: Figure, axis: Axes, image: np.ndarray, title: str, is_difference: bool
) -> None:
    """One panel: grey image on [0, 1], or a difference on [0, 1 / gain] with its colour bar."""
    upper = 1.0 / DIFFERENCE_GAIN if is_difference else 1.0
    shown = axis.imshow(image, cmap="inferno" if is_difference else "gray", vmin=0.0, vmax=upper)
    axis.set_title(title, fontsize=9)
    axis.set_axis_off()
    if is_difference:
        bar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
        bar.set_label("difference (images / own 99.5th percentile)", fontsize=7)
        bar.ax.tick_params(labelsize=7)


def _scores_text(reference: np.ndarray, image: np.ndarray, oversampling_removed: bool) -> str:
    scores = evaluate_image(
        ranking_crop(reference, oversampling_removed), ranking_crop(image, oversampling_removed)
    )
    return f"PSNR {scores.psnr:.2f} dB, SSIM {scores.ssim:.4f}"


def _crop_outline(shape: tuple[int, ...], oversampling_removed: bool) -> Rectangle:
    """A dashed rectangle around the ranked centre crop of a (ky, kx) image."""
    from matplotlib.patches import Rectangle

    num_ky, num_kx = shape[-2:]
    crop_ky, crop_kx = ranking_crop_shape(num_ky, num_kx, oversampling_removed)
    top = num_ky // 2 - crop_ky // 2
    left = num_kx // 2 - crop_kx // 2
    return Rectangle(
        (left - 0.5, top - 0.5),
        crop_kx,
        crop_ky,
        fill=False,
        edgecolor="tab:cyan",
        linestyle="--",
        linewidth=0.8,
    )
