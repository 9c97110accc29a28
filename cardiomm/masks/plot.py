"""Pictures of masks: the first frames and the ky-t sampling diagram."""

from __future__ import annotations

from pathlib import Path

from cardiomm.figures import save_figure
from cardiomm.masks.mask import UndersamplingMask

_SHOWN_FRAMES = 4


def save_mask_figure(mask: UndersamplingMask, path: str | Path) -> Path:
    """Write a PNG with up to four frames (ky vertical, kx horizontal) and the ky-t diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = min(_SHOWN_FRAMES, mask.num_frames)
    figure, axes = plt.subplots(1, shown + 1, figsize=(3.2 * (shown + 1), 3.4))
    for frame, axis in enumerate(axes[:shown]):
        axis.imshow(
            mask.frame(frame), cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest"
        )
        axis.set_title(f"frame {frame}")
        axis.set_xlabel("kx")
        axis.set_ylabel("ky")
    # Fraction of each phase-encode line sampled: 1 for Cartesian lines, partial for radial.
    ky_t = mask.values.mean(axis=2).T
    axes[shown].imshow(ky_t, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    axes[shown].set_title("ky-t (fraction of line sampled)")
    axes[shown].set_xlabel("frame")
    axes[shown].set_ylabel("ky")
    figure.suptitle(f"{mask.text}  true R = {mask.true_acceleration:.2f} (ACS {mask.acs_width})")
    return save_figure(figure, path, dpi=110)
