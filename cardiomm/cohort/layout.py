"""Find the fully sampled k-space files of a CMRxRecon-2025-layout root."""

from __future__ import annotations

import re
from pathlib import Path

# Files beside the data that are not k-space: masks, and the synthetic set's sidecars.
_NOT_KSPACE = re.compile(r"_(mask|labels?|seg(mentation)?)(_|\.|$)", re.IGNORECASE)
_CENTRE_FOLDER = re.compile(r"^center\d+$", re.IGNORECASE)


def find_kspace_files(root: str | Path) -> list[Path]:
    """Sorted fully sampled .mat files under ``root`` that sit in a ``Center...`` folder.

    Undersampled validation folders (``UnderSample_*``) and mask folders (``Mask_*``) are
    left out: a site trains and validates on fully sampled data.

    Raises:
        FileNotFoundError: ``root`` is not a directory, or holds no such file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data directory")
    files = sorted(
        path for path in root.rglob("*.mat") if _is_fully_sampled_kspace(path.relative_to(root))
    )
    if not files:
        raise FileNotFoundError(
            f"{root}: no k-space .mat files in the CMRxRecon 2025 layout "
            "(MultiCoil/<Modality>/TrainingSet/FullSample/Center00X/<Vendor>_<Field>T_<Model>/P00X/)"
        )
    return files


def _is_fully_sampled_kspace(relative: Path) -> bool:
    folders = relative.parts[:-1]
    if any(part.startswith(("UnderSample", "Mask_")) for part in folders):
        return False
    if not any(_CENTRE_FOLDER.match(part) for part in folders):
        return False
    return _NOT_KSPACE.search(relative.stem) is None
