"""Which frames a frame-window model sees around the frame it reconstructs."""

from __future__ import annotations


def window_frames(centre: int, num_frames: int, radius: int) -> list[int]:
    """Frames of the window around ``centre``: centre - radius .. centre + radius, cyclic.

    A cine is periodic (the heart beat), so the last frame's neighbour is the first. Mapping
    series (their inversion or T2-preparation images are the "frames") and frameless series
    use the same rule: with fewer frames than the window the frames repeat, down to one frame
    seen 2 r + 1 times for a frameless series (LGE, T1w, T2w, black blood).

    Args:
        centre: the frame to reconstruct, in [0, num_frames).
        num_frames: frames of the series (>= 1).
        radius: neighbours on each side (>= 0).

    Returns:
        2 * radius + 1 frame indices, the centre in the middle.
    """
    if num_frames < 1 or not 0 <= centre < num_frames:
        raise ValueError(f"frame {centre} is not a frame of a {num_frames}-frame series")
    return [(centre + offset) % num_frames for offset in range(-radius, radius + 1)]
