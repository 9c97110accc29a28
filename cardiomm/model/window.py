"""The frame-window cascade: frame t is refined from frames t-r..t+r of its slice together.

The CMRxRecon-winning way to use a cine's time: the image network of every cascade sees the
window's 2r + 1 coil-combined frames as (real, imag) input channels and returns a correction
for each of them; every frame of the window is then kept consistent with its own mask:

    k_{t+1}[f] = k_t[f] - eta_t * M[f] (k_t[f] - k_0[f]) + F(S R_t(S^H k_t)[f])   for each f

The kt masks sample other lines in every frame, so a frame's neighbours hold much of what
its own mask misses. As in the 2D cascade (cardiomm/model/cascade.py) the network's output
starts at exactly zero, so an untrained window network returns the zero-filled image of the
window's centre frame. One set of coil sensitivities serves the whole window: coils do not
move between the frames of a breath-hold.
"""

from __future__ import annotations

import torch

from cardiomm.data.frame_window import window_frames
from cardiomm.model.cascade import Cascade
from cardiomm.model.unet import UNetConfig
from cardiomm.physics import expand_to_kspace, reduce_to_image

__all__ = ["WindowCascade", "window_frames"]


class WindowCascade(Cascade):
    """One unrolled step over a frame window: every frame refined from all of them, then
    each frame's data consistency with its own mask (the 2D :class:`Cascade`'s step, which
    takes any leading axes).

    kspace, measured complex (B, F, C, H, W); mask (B, F, H, W); sensitivities complex
    (B, C, H, W), shared by the frames -> complex (B, F, C, H, W).

    Args:
        config: sizes of the U-Net (conditioning flags included).
        frames: frames of the window (2 r + 1); the U-Net sees and corrects 2 F channels.
    """

    def __init__(self, config: UNetConfig, frames: int) -> None:
        super().__init__(config, image_channels=2 * frames)
        self.frames = frames

    def refinement(
        self,
        kspace: torch.Tensor,
        sensitivities: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """F(S R(S^H k)) of every window frame, R seeing all frames: (B, F, C, H, W)."""
        maps = sensitivities.unsqueeze(1)
        channels = _frames_to_channels(reduce_to_image(kspace, maps))
        # Physics stays in float32 / complex64 even under bf16 autocast.
        output = self.image_net(channels, undersampling, metadata).float()
        return expand_to_kspace(_channels_to_frames(output, self.frames), maps)


def _frames_to_channels(images: torch.Tensor) -> torch.Tensor:
    """complex (B, F, H, W) -> real (B, 2F, H, W): (real, imag) of frame f at 2f, 2f + 1."""
    stacked = torch.stack((images.real, images.imag), dim=2)
    return stacked.reshape(images.shape[0], -1, *images.shape[-2:]).contiguous()


def _channels_to_frames(channels: torch.Tensor, frames: int) -> torch.Tensor:
    """real (B, 2F, H, W) -> complex (B, F, H, W), the inverse of :func:`_frames_to_channels`."""
    pairs = channels.reshape(channels.shape[0], frames, 2, *channels.shape[-2:])
    return torch.complex(pairs[:, :, 0].contiguous(), pairs[:, :, 1].contiguous())
