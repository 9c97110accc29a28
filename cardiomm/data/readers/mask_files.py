"""Official CMRxRecon mask files: where they are for a data file, and what they hold.

Layouts (paths relative to a modality folder such as ``MultiCoil/Cine``):
- 2025 training: ``TrainingSet/FullSample/Center001/UIH_30T_umr780/P007/cine_sax.mat`` has
  ``TrainingSet/Mask_TaskAll/Center001/UIH_30T_umr780/P007/cine_sax_mask_ktRadial16.mat``.
- 2024 training: ``TrainingSet/FullSample/P001/cine_sax.mat`` has
  ``TrainingSet/Mask_Task1/P001/cine_sax_mask_Uniform8.mat`` and
  ``TrainingSet/Mask_Task2/P001/cine_sax_mask_ktRadial16.mat``.
- 2024 / 2025 undersampled files ``UnderSample_TaskR1/.../cine_lax_3ch_kus_Uniform8.mat``: the
  mask ``cine_lax_3ch_mask_Uniform8.mat`` in the same folder, else in ``Mask_TaskR1`` or
  ``Mask_TaskAll`` beside ``UnderSample_TaskR1``.
- 2023: ``AccFactor04/P001/cine_sax.mat`` (variable ``kspace_sub04``) has
  ``AccFactor04/P001/cine_sax_mask.mat`` (variable ``mask04``) beside it; a ``FullSample``
  file finds it under ``AccFactorNN`` for the acceleration asked for.

Mask arrays are 0/1 doubles, ``(ky, kx)`` in h5py order (MATLAB's ``(kx, ky)``) like the
trailing axes of the k-space, or ``(frames, ky, kx)`` for per-frame (kt) masks.
"""

from __future__ import annotations

import dataclasses
import glob
import re
from pathlib import Path

import h5py
import numpy as np

from cardiomm.data.errors import DataFileError, MaskFileNotFoundError
from cardiomm.data.metadata import series_stem
from cardiomm.data.readers.base import SeriesShape, open_hdf5
from cardiomm.masks import MaskPattern, UndersamplingMask
from cardiomm.masks.factory import DEFAULT_ACS_WIDTH

_MASK_FILE_NAME = re.compile(r"_mask_(?P<pattern>[A-Za-z]+?)(?P<acceleration>\d+)$")
_KUS_FILE_NAME = re.compile(r"_kus_(?P<pattern>[A-Za-z]+?)(?P<acceleration>\d+)$")
_MASK_VARIABLE = re.compile(r"^mask(?P<acceleration>\d*)$")
_ACCELERATION_FOLDER = re.compile(r"^AccFactor(?P<acceleration>\d+)$")
_UNDERSAMPLED_FOLDER = re.compile(r"^UnderSample_Task(?P<task>\w+)$")
FULLY_SAMPLED_FOLDER = "FullSample"
# Always listed when a FullSample file's masks are missing, so the error shows where to look.
_STANDARD_MASK_FOLDERS = ("Mask_TaskAll", "Mask_Task1", "Mask_Task2")
_UNIFORM = MaskPattern.UNIFORM.value


@dataclasses.dataclass(frozen=True, eq=False)
class MaskFile:
    """An official mask file's contents.

    Attributes:
        path: the mask file.
        values: bool (frames, ky, kx), True where sampled; frames = 1 for a 2D mask.
        pattern_name: the name's pattern, e.g. ``Uniform``, ``ktGaussian``, ``ktRadial``,
            ``ktUniform`` (2024); ``None`` for 2023 files, whose names carry none.
        acceleration: nominal R from the file name or the ``maskNN`` variable.
    """

    path: Path
    values: np.ndarray
    pattern_name: str | None
    acceleration: int | None

    @property
    def pattern(self) -> MaskPattern | None:
        """The pattern as the library names it; ``None`` if unnamed or not one of its three."""
        if self.pattern_name is None:
            return None
        try:
            return MaskPattern.parse(self.pattern_name)
        except ValueError:
            return None

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]

    def frame(self, index: int) -> np.ndarray:
        """bool (ky, kx) mask of one frame; a 2D mask serves every frame."""
        return self.values[0 if self.num_frames == 1 else index]

    def check_shape(self, shape: SeriesShape) -> None:
        """Raise ``DataFileError`` unless this mask fits k-space of ``shape``.

        The mask's (ky, kx) must equal the k-space's; a mask that matches only when
        transposed is reported as such. Per-frame masks need one frame per k-space frame.
        """
        matrix = self.values.shape[1:]
        if matrix != (shape.ky, shape.kx):
            transposed = matrix == (shape.kx, shape.ky) and shape.kx != shape.ky
            hint = "; it is transposed, (kx, ky)" if transposed else ""
            raise DataFileError(
                self.path,
                f"mask is {matrix[0]} x {matrix[1]} but the k-space (ky, kx) is "
                f"{shape.ky} x {shape.kx}{hint}",
            )
        if self.num_frames not in (1, shape.frames):
            raise DataFileError(
                self.path, f"mask has {self.num_frames} frames, the k-space {shape.frames}"
            )

    def to_undersampling_mask(self, acs_width: int = DEFAULT_ACS_WIDTH) -> UndersamplingMask:
        """The library's mask type; needs a known pattern and acceleration.

        Args:
            acs_width: the ACS size the file was made with (20 in 2025, 16 in 2024); files
                do not record it.
        """
        if self.pattern is None or self.acceleration is None:
            raise ValueError(
                f"{self.path}: pattern {self.pattern_name!r} / acceleration "
                f"{self.acceleration} cannot be named as a library mask"
            )
        return UndersamplingMask(self.pattern, self.acceleration, acs_width, self.values)


def parse_mask_name(file_name: str | Path) -> tuple[str | None, int | None]:
    """``cine_sax_mask_ktRadial16.mat`` -> (``ktRadial``, 16); 2023 ``cine_sax_mask.mat``
    -> (None, None)."""
    match = _MASK_FILE_NAME.search(Path(file_name).stem)
    if match is None:
        return None, None
    return match["pattern"], int(match["acceleration"])


def find_mask_file(
    data_path: str | Path,
    pattern: MaskPattern | str | None = None,
    acceleration: int | None = None,
) -> Path:
    """The official mask file of a k-space file.

    Args:
        data_path: the k-space ``.mat`` file.
        pattern: ``Uniform``, ``ktGaussian``, ``ktRadial`` (or the library's names), or a
            2024 name such as ``ktUniform``; by default from an undersampled file's name.
        acceleration: nominal R; by default from the file name or a 2023 ``AccFactorNN``
            folder.

    Raises:
        MaskFileNotFoundError: no mask file, with every path tried.
        ValueError: pattern or acceleration left open and several mask files fit.
    """
    data_path = Path(data_path)
    found, tried = _search(data_path, pattern, acceleration)
    if not found:
        raise MaskFileNotFoundError(data_path, tried)
    token, wanted = _wanted(data_path, pattern, acceleration)
    if (token is None or wanted is None) and len(found) > 1:
        listing = ", ".join(str(path) for path in found)
        raise ValueError(
            f"{data_path}: {len(found)} mask files fit; name a pattern and acceleration: {listing}"
        )
    return found[0]


def read_mask_file(path: str | Path, acceleration: int | None = None) -> MaskFile:
    """Read an official mask file.

    Args:
        path: the mask ``.mat`` file.
        acceleration: chooses ``maskNN`` in a 2023 file holding several.

    Raises:
        DataFileError: not HDF5, no or several mask variables, rank other than 2 or 3, or
            values other than 0 and 1.
    """
    path = Path(path)
    with open_hdf5(path) as handle:
        variable = _find_mask_variable(path, handle, acceleration)
        dataset = handle[variable]
        if dataset.ndim not in (2, 3):
            raise DataFileError(
                path,
                f"{variable!r} has rank {dataset.ndim} {dataset.shape}; expected "
                "(ky, kx) or (frames, ky, kx)",
            )
        if dataset.dtype.kind not in "biuf":
            raise DataFileError(path, f"{variable!r} has dtype {dataset.dtype}, expected 0/1")
        stored = dataset[()]
    if not np.isin(stored, (0, 1)).all():
        unexpected = np.unique(stored[~np.isin(stored, (0, 1))])[:5]
        raise DataFileError(path, f"{variable!r} holds values other than 0/1: {unexpected}")
    values = stored.astype(bool)
    if values.ndim == 2:
        values = values[None]
    pattern_name, named_acceleration = parse_mask_name(path)
    if named_acceleration is None:
        digits = _MASK_VARIABLE.match(variable)["acceleration"]  # type: ignore[index]
        named_acceleration = int(digits) if digits else None
    return MaskFile(path, np.ascontiguousarray(values), pattern_name, named_acceleration)


def read_official_mask(
    data_path: str | Path,
    pattern: MaskPattern | str | None = None,
    acceleration: int | None = None,
) -> MaskFile:
    """``read_mask_file(find_mask_file(...))``; see both."""
    _, wanted = _wanted(Path(data_path), pattern, acceleration)
    return read_mask_file(find_mask_file(data_path, pattern, acceleration), wanted)


def _find_mask_variable(path: Path, handle: h5py.File, acceleration: int | None) -> str:
    keys = sorted(key for key in handle if not key.startswith("#"))
    found = [key for key in keys if _MASK_VARIABLE.match(key)]
    if acceleration is not None and f"mask{acceleration:02d}" in found:
        return f"mask{acceleration:02d}"
    if len(found) == 1:
        return found[0]
    if not found:
        listing = ", ".join(keys) or "none"
        raise DataFileError(path, f"no mask variable (mask, maskNN); keys found: {listing}")
    raise DataFileError(path, f"several mask variables ({', '.join(found)}); name the acceleration")


def _pattern_token(pattern: MaskPattern | str) -> str:
    """The spelling used in file names: ``random`` -> ``ktGaussian``; unknown names as given."""
    if isinstance(pattern, MaskPattern):
        return pattern.value
    try:
        return MaskPattern.parse(pattern).value
    except ValueError:
        return pattern.strip()


def _wanted(
    data_path: Path, pattern: MaskPattern | str | None, acceleration: int | None
) -> tuple[str | None, int | None]:
    """Pattern spelling and R asked for, completed from the data file's name and folders."""
    token = _pattern_token(pattern) if pattern is not None else None
    named = _KUS_FILE_NAME.search(data_path.stem)
    if named is not None:
        token = token or named["pattern"]
        acceleration = acceleration or int(named["acceleration"])
    if acceleration is None:
        for part in reversed(data_path.parts[:-1]):
            if (match := _ACCELERATION_FOLDER.match(part)) is not None:
                acceleration = int(match["acceleration"])
                break
    return token, acceleration


def _search(
    data_path: Path, pattern: MaskPattern | str | None, acceleration: int | None
) -> tuple[list[Path], list[str]]:
    """(existing mask files in preference order, every path or glob looked at)."""
    token, wanted = _wanted(data_path, pattern, acceleration)
    stem = series_stem(data_path.name)
    found: list[Path] = []
    tried: list[str] = []
    for folder, named in _mask_folders(data_path, token, wanted):
        if not named:
            candidate = folder / f"{stem}_mask.mat"
            tried.append(str(candidate))
            if candidate.is_file():
                found.append(candidate)
        elif token is not None and wanted is not None:
            candidate = folder / f"{stem}_mask_{token}{wanted}.mat"
            tried.append(str(candidate))
            if candidate.is_file():
                found.append(candidate)
        else:
            expression = f"{glob.escape(str(folder))}/{glob.escape(stem)}_mask_*.mat"
            tried.append(expression)
            for match in sorted(glob.glob(expression)):
                match_token, match_acceleration = parse_mask_name(match)
                if token not in (None, match_token) or wanted not in (None, match_acceleration):
                    continue
                found.append(Path(match))
    return list(dict.fromkeys(found)), list(dict.fromkeys(tried))


def _mask_folders(
    data_path: Path, token: str | None, acceleration: int | None
) -> list[tuple[Path, bool]]:
    """(folder, named) places a mask may be, most likely first; ``named`` is True for
    ``<stem>_mask_<pattern><R>.mat`` names, False for 2023 ``<stem>_mask.mat``.

    2023 ``AccFactorNN`` masks are equispaced, so they are looked for only when the pattern
    asked for is Uniform or not named.
    """
    parts = data_path.parts
    places: list[tuple[Path, bool]] = [(data_path.parent, True)]
    for position in range(len(parts) - 2, -1, -1):
        part = parts[position]
        root = Path(*parts[:position])
        below = Path(*parts[position + 1 : -1])
        if _ACCELERATION_FOLDER.match(part):
            return [(data_path.parent, False)]
        if (match := _UNDERSAMPLED_FOLDER.match(part)) is not None:
            for name in (f"Mask_Task{match['task']}", "Mask_TaskAll"):
                places.append((root / name / below, True))
            break
        if part == FULLY_SAMPLED_FOLDER:
            existing = sorted(item.name for item in root.glob("Mask_Task*") if item.is_dir())
            for name in dict.fromkeys([*existing, *_STANDARD_MASK_FOLDERS]):
                places.append((root / name / below, True))
            if token in (None, _UNIFORM):
                if acceleration is not None:
                    folders = [root / f"AccFactor{acceleration:02d}"]
                else:
                    folders = sorted(root.glob("AccFactor*"))
                places.extend((folder / below, False) for folder in folders)
            # The data folder itself only holds masks for undersampled files.
            places.pop(0)
            break
    else:
        # Not an official layout: look beside the file under both naming schemes.
        places.append((data_path.parent, False))
    return list(dict.fromkeys(places))
