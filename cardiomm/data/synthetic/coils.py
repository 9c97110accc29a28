"""Receive coil arrays around the torso: Biot-Savart sensitivities and correlated noise.

An array is an anterior set of loops on the chest and a posterior (spine) set under the back,
each in rows along the body axis, as cardiac arrays are built. A loop's receive sensitivity is
``B_x - i B_y`` of the field its unit current makes (quasi-static Biot-Savart, B0 normal to the
image plane), times a cable phase. Noise is correlated between neighbouring loops.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import interpolate

from cardiomm.data.synthetic.shapes import ImageGrid
from cardiomm.data.synthetic.subjects import Body

_SEGMENTS = 24
_STANDOFF_MM = 35.0
# Softens the 1/r^3 kernel near a wire (finite conductor width; keeps coarse grids smooth).
_SOFTENING_MM = 8.0
_COARSE_SPACING_MM = 10.0
_NEIGHBOUR_CORRELATION = 0.25
_COLUMNS = 4
_ANTERIOR_ARC_DEG = 140.0


@dataclasses.dataclass(frozen=True)
class CoilArray:
    """Loop coils in image-plane coordinates (x, y as the image, z through-plane), in mm.

    Attributes:
        centres: (coils, 3) loop centres.
        normals: (coils, 3) unit loop normals.
        radii: (coils,) loop radii.
        cable_phases: (coils,) constant phase of each receive chain, rad.
        noise_covariance: (coils, coils) real symmetric positive definite, unit mean diagonal.
    """

    centres: np.ndarray
    normals: np.ndarray
    radii: np.ndarray
    cable_phases: np.ndarray
    noise_covariance: np.ndarray

    @property
    def num_coils(self) -> int:
        return int(self.centres.shape[0])


def body_array(
    num_coils: int,
    body: Body,
    rng: np.random.Generator,
    columns: int = _COLUMNS,
    neighbour_correlation: float = _NEIGHBOUR_CORRELATION,
) -> CoilArray:
    """A cardiac array of ``num_coils`` loops placed around this torso (placement jittered).

    Elements keep their size whatever the channel count (``columns`` across the chest and
    under the back; four columns make about 10 cm loops); more channels add rows along the
    body axis, as larger arrays do. Vendors build their arrays differently
    (:mod:`.vendors`): fewer, larger columns see deeper with less variation between
    elements, and ``neighbour_correlation`` sets how much neighbouring loops share noise.
    """
    if columns < 1:
        raise ValueError(f"a receive array needs at least one column, got {columns}")
    if not 0.0 <= neighbour_correlation < 1.0:
        raise ValueError(f"neighbour_correlation must lie in [0, 1), got {neighbour_correlation}")
    if num_coils < 2:
        raise ValueError(f"a receive array needs at least 2 coils, got {num_coils}")
    anterior = (num_coils + 1) // 2
    posterior = num_coils - anterior
    half_width = body.width / 2 + _STANDOFF_MM
    half_depth = body.depth / 2 + _STANDOFF_MM
    shift = rng.uniform(-15, 15), rng.uniform(-20, 20)
    centres, normals, radii = _anterior_loops(anterior, columns, half_width, half_depth, shift)
    if posterior:
        back = _posterior_loops(posterior, columns, body.width, half_depth)
        centres, normals, radii = centres + back[0], normals + back[1], radii + back[2]
    centres_array = _to_image(np.asarray(centres, dtype=float), body)
    normals_array = _rotate_normals(np.asarray(normals, dtype=float), body)
    radii_array = np.asarray(radii)
    return CoilArray(
        centres=centres_array,
        normals=normals_array,
        radii=radii_array,
        cable_phases=rng.uniform(-np.pi, np.pi, num_coils),
        noise_covariance=_noise_covariance(centres_array, radii_array, rng, neighbour_correlation),
    )


# A loop array's elements as lists: centres [x, y, z] and unit normals [x, y, z] in the
# torso's frame (mm), and radii (mm).
_Loops = tuple[list[list[float]], list[list[float]], list[float]]


def _anterior_loops(
    count: int,
    columns: int,
    half_width: float,
    half_depth: float,
    shift: tuple[float, float],
) -> _Loops:
    """``count`` loops on the chest: up to ``columns`` across an arc of the elliptical torso
    surface (half axes ``half_width``, ``half_depth``, stand-off included), rows along the
    body axis, the whole array moved by ``shift`` (across, along the body)."""
    centres, normals, radii = [], [], []
    anterior_columns = min(count, columns)
    rows = math.ceil(count / anterior_columns)
    arc = np.deg2rad(_ANTERIOR_ARC_DEG) * 0.5 * (half_width + half_depth)
    radius = 0.55 * arc / anterior_columns
    spread = _ANTERIOR_ARC_DEG * (anterior_columns - 1) / anterior_columns
    angles = np.deg2rad(270 + np.linspace(-0.5, 0.5, anterior_columns) * spread)
    for index in range(count):
        row, column = divmod(index, anterior_columns)
        angle = angles[column]
        point = np.array([half_width * np.cos(angle) + shift[0], half_depth * np.sin(angle)])
        normal = np.array([np.cos(angle) / half_width, np.sin(angle) / half_depth])
        centres.append([*point, _row_z(row, rows, radius) + shift[1]])
        normals.append([*(normal / np.linalg.norm(normal)), 0.0])
        radii.append(radius)
    return centres, normals, radii


def _posterior_loops(count: int, columns: int, body_width: float, half_depth: float) -> _Loops:
    """``count`` flat loops under the back (``half_depth`` below the centre), up to
    ``columns`` across the middle 70 % of the body width, rows along the body axis."""
    centres, normals, radii = [], [], []
    back_columns = min(count, columns)
    rows = math.ceil(count / back_columns)
    back_radius = 0.55 * 0.7 * body_width / back_columns
    xs = np.linspace(-0.35, 0.35, back_columns) * body_width * (back_columns - 1) / back_columns
    for index in range(count):
        row, column = divmod(index, back_columns)
        centres.append([xs[column], half_depth, _row_z(row, rows, back_radius)])
        normals.append([0.0, 1.0, 0.0])
        radii.append(back_radius)
    return centres, normals, radii


def _row_z(row: int, rows: int, radius: float) -> float:
    # Neighbouring rows overlap by ~10 % of a diameter (geometric decoupling).
    return (row - (rows - 1) / 2) * 1.8 * radius


def _to_image(points: np.ndarray, body: Body) -> np.ndarray:
    angle = np.deg2rad(body.rotation_deg)
    rotated = points.copy()
    rotated[:, 0] = points[:, 0] * np.cos(angle) - points[:, 1] * np.sin(angle) + body.offset_mm[0]
    rotated[:, 1] = points[:, 0] * np.sin(angle) + points[:, 1] * np.cos(angle) + body.offset_mm[1]
    return rotated


def _rotate_normals(normals: np.ndarray, body: Body) -> np.ndarray:
    return _to_image(normals, dataclasses.replace(body, offset_mm=(0.0, 0.0)))


def _noise_covariance(
    centres: np.ndarray,
    radii: np.ndarray,
    rng: np.random.Generator,
    neighbour_correlation: float = _NEIGHBOUR_CORRELATION,
) -> np.ndarray:
    distance = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)
    scale = radii[:, None] + radii[None, :]
    correlation = neighbour_correlation * np.exp(-distance / scale)
    np.fill_diagonal(correlation, 1.0)
    gains = rng.uniform(0.85, 1.15, len(radii))
    covariance = correlation * gains[:, None] * gains[None, :]
    return covariance / np.mean(np.diag(covariance))


def loop_field(array: CoilArray, points: np.ndarray) -> np.ndarray:
    """Complex receive sensitivity ``(B_x - i B_y) e^{i phase}`` of every loop at ``points``.

    Args:
        array: the coils.
        points: (points, 3) positions in mm.

    Returns:
        complex128 (coils, points), arbitrary common unit.
    """
    beta = np.linspace(0, 2 * np.pi, _SEGMENTS, endpoint=False)
    result = np.empty((array.num_coils, points.shape[0]), dtype=np.complex128)
    for coil in range(array.num_coils):
        normal = array.normals[coil]
        helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        first = np.cross(normal, helper)
        first /= np.linalg.norm(first)
        second = np.cross(normal, first)
        radius = array.radii[coil]
        wire = array.centres[coil] + radius * (
            np.cos(beta)[:, None] * first + np.sin(beta)[:, None] * second
        )
        step = (radius * 2 * np.pi / _SEGMENTS) * (
            -np.sin(beta)[:, None] * first + np.cos(beta)[:, None] * second
        )
        rx, ry, rz = (points[None, :, axis] - wire[:, axis, None] for axis in range(3))
        weight = (rx**2 + ry**2 + rz**2 + _SOFTENING_MM**2) ** -1.5
        lx, ly, lz = (step[:, axis, None] for axis in range(3))
        # Only the transverse components of dl x r matter for reception.
        field_x = np.sum((ly * rz - lz * ry) * weight, axis=0)
        field_y = np.sum((lz * rx - lx * rz) * weight, axis=0)
        result[coil] = (field_x - 1j * field_y) * np.exp(1j * array.cable_phases[coil])
    return result


def sensitivity_maps(array: CoilArray, grid: ImageGrid, z_mm: np.ndarray) -> np.ndarray:
    """Coil sensitivities on ``grid`` in the planes ``z = z_mm``: complex64 (slices, coils, ny, nx).

    The field is computed on a coarse grid (about 10 mm) and interpolated with cubic splines:
    it varies on the scale of a loop radius, so nothing is lost and the cost stays small.
    """
    z_mm = np.atleast_1d(np.asarray(z_mm, dtype=float))
    fine_y, fine_x = (axis.ravel() for axis in grid.coordinates())
    coarse_y = _coarse_axis(fine_y)
    coarse_x = _coarse_axis(fine_x)
    yy, xx = np.meshgrid(coarse_y, coarse_x, indexing="ij")
    points = np.concatenate(
        [np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, z)], axis=-1) for z in z_mm]
    )
    coarse = loop_field(array, points).reshape(array.num_coils, len(z_mm), *yy.shape)
    # Cubic-spline interpolation is linear in the data: one matrix per axis.
    rows = interpolate.CubicSpline(coarse_y, np.eye(len(coarse_y)))(fine_y)
    columns = interpolate.CubicSpline(coarse_x, np.eye(len(coarse_x)))(fine_x)
    # einsum, not BLAS matmul (see acquisition.compression_matrix).
    along_x = np.einsum("kscd,xd->kscx", coarse, columns)
    return np.einsum("yc,kscx->skyx", rows, along_x).astype(np.complex64)


def _coarse_axis(fine: np.ndarray) -> np.ndarray:
    count = max(4, math.ceil((fine[-1] - fine[0]) / _COARSE_SPACING_MM) + 1)
    return np.linspace(fine[0], fine[-1], count)
