"""Find the fully sampled k-space files of a CMRxRecon-2025-layout root.

The walk never stops on a bad path: a folder it cannot list, a symlink loop, a dangling
symlink, a file it cannot open, a folder where the layout expects a file or the reverse, a
symlink leading outside the data root, is listed with its reason (``unreadable``) and
skipped, so that a site learns which of its data are missing instead of losing them
silently.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

from cardiomm.data.index import BadFile
from cardiomm.data.path_checks import FILE, FOLDER, MISSING, os_error_reason, path_problem

logger = logging.getLogger(__name__)

# Files beside the data that are not k-space: masks, and the synthetic set's sidecars.
_NOT_KSPACE = re.compile(r"_(mask|labels?|seg(mentation)?)(_|\.|$)", re.IGNORECASE)
CENTRE_FOLDER = re.compile(r"^center\d+$", re.IGNORECASE)
# Below a centre: <Vendor_Field_Model>/<Patient>/; a patient folder is named P001, P002, ...
_PATIENT_FOLDER = re.compile(r"^P\d+$")
# Folders the walk does not enter: undersampled validation data and masks.
_NOT_FULLY_SAMPLED = ("UnderSample", "Mask_")
_KSPACE_SUFFIX = ".mat"


@dataclasses.dataclass(frozen=True)
class KSpaceFiles:
    """What the walk found: the usable files and every path it had to skip, with why."""

    files: list[Path]
    unreadable: list[BadFile]


def data_root(root: str | Path) -> Path:
    """``root`` resolved, after checking it is a folder the site can list.

    Raises:
        FileNotFoundError: ``root`` is missing, a symlink loop, a dangling symlink, not a
            folder or not listable (the message names it and the reason).
    """
    root = Path(root)
    problem = path_problem(root, FOLDER)
    if problem is not None:
        reason = "no such data directory" if problem == MISSING else f"data root is {problem}"
        raise FileNotFoundError(f"{root}: {reason}")
    return Path(os.path.realpath(root))


def find_kspace_files(root: str | Path) -> KSpaceFiles:
    """Sorted fully sampled .mat files under ``root`` that sit in a ``Center...`` folder,
    and the paths skipped on the way (each with its reason; see the module docstring).

    Undersampled validation folders (``UnderSample_*``) and mask folders (``Mask_*``) are
    left out: a site trains and validates on fully sampled data. Symlinked folders are not
    followed (a loop or a second path to the same patient would mislead the split); each is
    listed.

    Raises:
        FileNotFoundError: ``root`` is not a usable folder (:func:`data_root`), or holds no
            usable file (the message names the first paths skipped).
    """
    root = data_root(root)
    found = KSpaceFiles([], [])
    _walk(root, root, found)
    for bad in found.unreadable:
        logger.warning("skipping %s: %s", bad.path, bad.reason)
    if not found.files:
        raise FileNotFoundError(f"{root}: no k-space .mat files {_why_none(found.unreadable)}")
    return found


def _why_none(unreadable: list[BadFile]) -> str:
    if not unreadable:
        return (
            "in the CMRxRecon 2025 layout (MultiCoil/<Modality>/TrainingSet/FullSample/"
            "Center00X/<Vendor>_<Field>T_<Model>/P00X/)"
        )
    shown = "; ".join(f"{bad.path} ({bad.reason})" for bad in unreadable[:3])
    more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    return f"that can be read: {len(unreadable)} path(s) skipped: {shown}{more}"


def _walk(folder: Path, root: Path, found: KSpaceFiles) -> None:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        reason = f"folder cannot be listed: {os_error_reason(error)}"
        found.unreadable.append(BadFile(folder, reason))
        return
    for entry in entries:
        path = Path(entry.path)
        relative = path.relative_to(root)
        problem = _entry_problem(entry, path, relative, root)
        if problem is not None:
            found.unreadable.append(BadFile(path, problem))
        elif entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith(_NOT_FULLY_SAMPLED):
                _walk(path, root, found)
        elif _is_wanted_file(relative):
            found.files.append(path)


def _entry_problem(entry: os.DirEntry, path: Path, relative: Path, root: Path) -> str | None:
    """Why the walk must skip this entry, or None (a folder to enter, a file to take, or an
    entry the layout does not use)."""
    try:
        is_link = entry.is_symlink()
        is_folder = entry.is_dir()  # follows a symlink
    except OSError as error:
        return os_error_reason(error)
    if is_folder and entry.name.startswith(_NOT_FULLY_SAMPLED):
        return None  # never entered, so nothing in it goes missing
    wanted = _is_wanted_file(relative)
    if is_link:
        problem = path_problem(path, FOLDER if is_folder else FILE)
        if problem is not None:
            return problem
        if is_folder:
            return f"a symlink to a folder (to {os.readlink(path)}): not followed"
        target = Path(os.path.realpath(path))
        if wanted and not target.is_relative_to(root):
            # A manifest may not name a file outside its root (manifest.read_manifest).
            return f"a symlink leading outside the data root (to {target})"
    if is_folder:
        return "a folder, not a k-space file" if wanted else None
    if _is_layout_folder_name(relative):
        return "not a folder (the layout expects a folder here)"
    return path_problem(path, FILE) if wanted else None


def _is_wanted_file(relative: Path) -> bool:
    return relative.suffix == _KSPACE_SUFFIX and _is_fully_sampled_kspace(relative)


def _is_layout_folder_name(relative: Path) -> bool:
    if CENTRE_FOLDER.match(relative.name):
        return True
    inside_centre = any(CENTRE_FOLDER.match(part) for part in relative.parts[:-1])
    return inside_centre and _PATIENT_FOLDER.match(relative.name) is not None


def _is_fully_sampled_kspace(relative: Path) -> bool:
    folders = relative.parts[:-1]
    if any(part.startswith(_NOT_FULLY_SAMPLED) for part in folders):
        return False
    if not any(CENTRE_FOLDER.match(part) for part in folders):
        return False
    return _NOT_KSPACE.search(relative.stem) is None
