"""Image grids and the geometric primitives the anatomy is painted with (all vectorised).

Coordinates are millimetres in the image plane: x along the readout (columns, kx), y along
the phase encode (rows, ky), both centred the way a centred FFT centres them: pixel ``i`` of
``n`` sits at ``(i - n // 2) * spacing``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageGrid:
    """A pixel grid in the image plane.

    Attributes:
        ny, nx: rows (phase encode) and columns (readout, oversampling included).
        dy_mm, dx_mm: pixel spacing.
    """

    ny: int
    nx: int
    dy_mm: float
    dx_mm: float

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) in mm, shapes (ny, 1) and (1, nx): broadcast them for a full map."""
        y = (np.arange(self.ny) - self.ny // 2) * self.dy_mm
        x = (np.arange(self.nx) - self.nx // 2) * self.dx_mm
        return y[:, None], x[None, :]

    def refined(self, factor: int) -> ImageGrid:
        """The same field of view with ``factor`` times more pixels along each axis."""
        return ImageGrid(
            self.ny * factor, self.nx * factor, self.dy_mm / factor, self.dx_mm / factor
        )

    def window(self, centre_mm: tuple[float, float], half_size_mm: float) -> tuple[slice, slice]:
        """(rows, columns) of the pixels within ``half_size_mm`` of ``centre_mm`` = (x, y)."""
        cx, cy = centre_mm
        rows = _index_range(cy, half_size_mm, self.dy_mm, self.ny)
        columns = _index_range(cx, half_size_mm, self.dx_mm, self.nx)
        return rows, columns


def _index_range(centre: float, half: float, spacing: float, size: int) -> slice:
    first = int(np.floor((centre - half) / spacing)) + size // 2
    last = int(np.ceil((centre + half) / spacing)) + size // 2 + 1
    return slice(int(np.clip(first, 0, size)), int(np.clip(last, 0, size)))


def to_local(
    x: np.ndarray, y: np.ndarray, centre: tuple[float, float], angle_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame centred at ``centre`` = (x, y) whose first axis points at
    ``angle_rad`` (image angle, y down): returns (along, across)."""
    dx, dy = x - centre[0], y - centre[1]
    cos, sin = np.cos(angle_rad), np.sin(angle_rad)
    return dx * cos + dy * sin, -dx * sin + dy * cos


def inside_ellipse(
    x: np.ndarray,
    y: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    angle_rad: float = 0.0,
) -> np.ndarray:
    """Boolean map of an ellipse with semi-axes (along ``angle_rad``, across it)."""
    along, across = to_local(x, y, centre, angle_rad)
    a, b = semi_axes
    if a <= 0 or b <= 0:
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)), dtype=bool)
    return (along / a) ** 2 + (across / b) ** 2 <= 1.0


def inside_disc(
    x: np.ndarray, y: np.ndarray, centre: tuple[float, float], radius: float
) -> np.ndarray:
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2


def ellipse_radius(theta: np.ndarray, a: float, b: float) -> np.ndarray:
    """Polar radius at angle ``theta`` (from the ``a`` axis) of an ellipse centred at 0."""
    if a <= 0 or b <= 0:
        return np.zeros_like(np.asarray(theta, dtype=float))
    return a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)


def wrap_angle(theta: np.ndarray) -> np.ndarray:
    """Angles folded into [-pi, pi)."""
    return np.mod(np.asarray(theta) + np.pi, 2 * np.pi) - np.pi
