"""Partition a multi-centre data set into sites (one site = one centre) with held-out centres.

The manifest (JSON) lists each site's vendor, field strengths, scanners and files with their
sizes and patient-level split (train / val / test), and flags the held-out centres, whose
files are all test data. Simulated federations map Flower's ``partition-id`` to the internal
sites in name order.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiomm.cohort.layout import data_root, find_kspace_files
from cardiomm.data.index import IndexedFile, SliceIndex

MANIFEST_FORMAT = "cardiomm-fl partition manifest"
MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")
# The held-out centres' files, named as a split of their own where a split is chosen.
HELD_OUT = "held-out"


@dataclasses.dataclass(frozen=True)
class SplitFractions:
    """Fractions of each internal site's patients kept for validation and testing."""

    val: float = 0.1
    test: float = 0.2

    def __post_init__(self) -> None:
        if self.val < 0 or self.test < 0 or self.val + self.test >= 1:
            raise ValueError(
                f"val ({self.val}) and test ({self.test}) fractions must be >= 0 and sum below 1"
            )


def partition_dataset(
    root: str | Path,
    hold_out: Sequence[str] = (),
    hold_out_count: int = 0,
    seed: int = 0,
    fractions: SplitFractions = SplitFractions(),
    show_progress: bool = True,
) -> dict:
    """Scan ``root``, group files by centre, choose held-out centres, split patients.

    Args:
        root: a CMRxRecon-2025-layout directory (real or synthetic).
        hold_out: centre names to hold out (e.g. ``["Center005"]``).
        hold_out_count: or this many centres, drawn with ``seed`` (ignored if ``hold_out``).
        seed: seeds the held-out draw and the patient splits.
        fractions: validation and test fractions of each internal site's patients.
        show_progress: progress bar while file headers are read.

    Returns:
        the manifest as a JSON-ready dict (see :func:`write_manifest`).
    """
    root = data_root(root)
    found = find_kspace_files(root)
    index = SliceIndex.build(found.files, show_progress=show_progress)
    by_centre: dict[str, list[IndexedFile]] = collections.defaultdict(list)
    for indexed in index.files:
        by_centre[indexed.metadata.centre or "unknown"].append(indexed)
    held_out = _choose_held_out(sorted(by_centre), hold_out, hold_out_count, seed)
    sites = [
        _site_entry(root, centre, by_centre[centre], centre in held_out, seed, fractions)
        for centre in sorted(by_centre)
    ]
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "root": str(root),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "fractions": dataclasses.asdict(fractions),
        "held_out": sorted(held_out),
        "sites": sites,
        "bad_files": [{"path": str(bad.path), "reason": bad.reason} for bad in index.bad_files],
        # Folders and files the walk could not use (cardiomm/cohort/layout.py): their data
        # are missing from the sites above, so a site lists them instead of losing them.
        "unreadable_paths": [
            {"path": str(bad.path), "reason": bad.reason} for bad in found.unreadable
        ],
    }


def _choose_held_out(centres: list[str], names: Sequence[str], count: int, seed: int) -> set[str]:
    if names:
        unknown = sorted(set(names) - set(centres))
        if unknown:
            raise ValueError(
                f"held-out centre(s) {', '.join(unknown)} not in the data; centres found: "
                f"{', '.join(centres)}"
            )
        chosen = set(names)
    else:
        if not 0 <= count < len(centres):
            raise ValueError(
                f"cannot hold out {count} of {len(centres)} centres: at least one must train"
            )
        rng = np.random.default_rng(seed)
        chosen = {str(name) for name in rng.choice(centres, size=count, replace=False)}
    if len(chosen) >= len(centres):
        raise ValueError("every centre is held out; at least one must train")
    return chosen


def _site_entry(
    root: Path,
    centre: str,
    files: list[IndexedFile],
    held_out: bool,
    seed: int,
    fractions: SplitFractions,
) -> dict:
    split_of_patient = (
        dict.fromkeys({_patient(f) for f in files}, "test")
        if held_out
        else _split_patients(sorted({_patient(f) for f in files}), centre, seed, fractions)
    )
    file_entries = [
        _file_entry(root, indexed, split_of_patient[_patient(indexed)]) for indexed in files
    ]
    vendors = collections.Counter(f.metadata.vendor or "unknown" for f in files)
    return {
        "site": centre,
        "held_out": held_out,
        # The vendor holding most of the site's images speaks for the site in aggregation.
        "vendor": _main_vendor(files),
        "vendors": sorted(vendors),
        "field_strengths": sorted(
            {f.metadata.field_strength for f in files if f.metadata.field_strength}
        ),
        "scanners": sorted({_scanner(f) for f in files}),
        "num_patients": len(split_of_patient),
        "num_files": len(files),
        "num_slices": sum(f.shape[1] for f in files),
        "num_images": sum(f.num_images for f in files),
        "split_images": {
            split: sum(e["num_images"] for e in file_entries if e["split"] == split)
            for split in SPLITS
        },
        "files": file_entries,
    }


def _split_patients(
    patients: list[str], centre: str, seed: int, fractions: SplitFractions
) -> dict[str, str]:
    """Patient-level split, so no patient's images leak between train and test."""
    rng = np.random.default_rng([seed, *centre.encode()])
    order = [patients[i] for i in rng.permutation(len(patients))]
    num_test = round(fractions.test * len(order))
    num_val = round(fractions.val * len(order))
    # A site always keeps at least one training patient.
    while num_test + num_val >= len(order) and (num_test or num_val):
        if num_test >= num_val:
            num_test -= 1
        else:
            num_val -= 1
    splits = ["test"] * num_test + ["val"] * num_val
    splits += ["train"] * (len(order) - len(splits))
    return dict(zip(order, splits, strict=True))


def _file_entry(root: Path, indexed: IndexedFile, split: str) -> dict:
    frames, slices, coils, ky, kx = indexed.shape
    return {
        "path": str(indexed.path.relative_to(root)),
        "patient": _patient(indexed),
        "scanner": _scanner(indexed),
        "split": split,
        "metadata": indexed.metadata.to_dict(),
        "frames": frames,
        "slices": slices,
        "coils": coils,
        "ky": ky,
        "kx": kx,
        "num_images": indexed.num_images,
    }


def _patient(indexed: IndexedFile) -> str:
    return indexed.path.parent.name


def _scanner(indexed: IndexedFile) -> str:
    return indexed.path.parent.parent.name


def _main_vendor(files: list[IndexedFile]) -> str:
    images = collections.Counter()
    for indexed in files:
        images[indexed.metadata.vendor or "unknown"] += indexed.num_images
    return images.most_common(1)[0][0]


def write_manifest(manifest: dict, path: str | Path) -> Path:
    """Write the manifest as indented JSON (atomically: temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(manifest, indent=2))
    partial.replace(path)
    return path


def read_manifest(path: str | Path) -> dict:
    """Read a manifest, with a clear error for a file that is not one."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such partition manifest") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a partition manifest (invalid JSON: {error})") from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a partition manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path}: manifest version {manifest.get('version')} is not {MANIFEST_VERSION}; "
            "run `cardiomm partition` again"
        )
    _check_files_inside_root(manifest, path)
    return manifest


def _check_files_inside_root(manifest: dict, path: Path) -> None:
    """Refuse a manifest whose file entries leave its data root (absolute paths, ``..``):
    a manifest decides which files a site reads, so it must not reach outside its data."""
    try:
        root = Path(os.path.realpath(manifest["root"]))
        entries = [
            (site["site"], entry["path"]) for site in manifest["sites"] for entry in site["files"]
        ]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a partition manifest (missing {error})") from error
    for site, relative in entries:
        # realpath, not resolve(): a path that has become a symlink loop since the manifest
        # was written is the reader's to name and skip, not a crash here.
        resolved = Path(os.path.realpath(root / str(relative)))
        if Path(str(relative)).is_absolute() or not resolved.is_relative_to(root):
            raise ValueError(
                f"{path}: site {site}'s file {relative!r} is outside the data root {root}"
            )


def internal_sites(manifest: dict) -> list[dict]:
    """The sites that train, in name order (partition-id i is the i-th)."""
    return [site for site in manifest["sites"] if not site["held_out"]]


def held_out_sites(manifest: dict) -> list[dict]:
    return [site for site in manifest["sites"] if site["held_out"]]


def site_for_partition(manifest: dict, partition_id: int) -> dict:
    """The site that simulated node ``partition_id`` plays: the internal sites in name order,
    then the held-out centres in name order (a simulation with more nodes than internal sites
    runs its held-out centres as evaluation-only sites)."""
    sites = internal_sites(manifest) + held_out_sites(manifest)
    if not 0 <= partition_id < len(sites):
        raise ValueError(
            f"partition-id {partition_id} out of range: the manifest has "
            f"{len(internal_sites(manifest))} internal sites and "
            f"{len(held_out_sites(manifest))} held-out centres "
            f"({', '.join(site['site'] for site in sites)})"
        )
    return sites[partition_id]


def site_files(manifest: dict, site: dict, split: str | None) -> list[Path]:
    """Absolute paths of ``site``'s files in ``split`` (train / val / test; None: all)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(manifest["root"])
    return [
        root / entry["path"] for entry in site["files"] if split is None or entry["split"] == split
    ]


def split_sites_and_files(manifest: dict, split: str, names: list[str]) -> list[Path]:
    """Files of ``split`` (a manifest split, or ``held-out``) restricted to the named sites."""
    if split == HELD_OUT:
        sites, wanted = held_out_sites(manifest), "test"
    elif split in SPLITS:
        sites, wanted = internal_sites(manifest), split
    else:
        raise ValueError(f"split must be one of {(*SPLITS, HELD_OUT)}, got {split!r}")
    if names:
        sites = [site for site in sites if site["site"] in names]
    files = [path for site in sites for path in site_files(manifest, site, wanted)]
    if not files:
        raise ValueError(f"no files in split {split!r} for sites {names or 'all'}")
    return files
