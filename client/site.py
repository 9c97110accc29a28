"""Find a site's data and role from Flower's node config.

In simulation the node config holds ``partition-id``: the i-th internal site of the partition
manifest, then its held-out centres, which are evaluation-only sites. In a deployment the site
says who it is, where its data lives and what it does (``site-id``, ``data-path``, optionally
``manifest-path`` and ``role``: ``train``, the default, or ``evaluate``).

A training site trains on its train split and validates on its val split; an
evaluation-only site never trains and scores the global model on all of its files.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import (
    partition_dataset,
    read_manifest,
    site_files,
    site_for_partition,
)
from cardiomm.site_round.data import SiteDataError
from federation.protocol import (
    NODE_DATA_PATH,
    NODE_MANIFEST_PATH,
    NODE_ROLE,
    NODE_SITE_ID,
    PARTITION_ID,
    ROLE_EVALUATE,
    ROLE_TRAIN,
    SITE_ROLES,
)
from federation.reply_checks import IDENTIFIER


@dataclasses.dataclass(frozen=True)
class SiteData:
    """A site's files and identity (what :class:`cardiomm.site_round.SiteRound` needs of a
    site, and its role, vendor and scanners for the site record).

    Attributes:
        site_id: the centre, e.g. ``Center001``.
        vendor: the vendor holding most of its images.
        scanners: its scanner folders.
        field_strengths: tesla.
        train_files, val_files, test_files: its k-space files per split (a training site).
        role: ``train`` or ``evaluate``.
        evaluation_files: what an evaluation-only site scores: all of its files.
    """

    site_id: str
    vendor: str
    scanners: tuple[str, ...]
    field_strengths: tuple[float, ...]
    train_files: tuple[Path, ...]
    val_files: tuple[Path, ...]
    role: str = ROLE_TRAIN
    evaluation_files: tuple[Path, ...] = ()
    test_files: tuple[Path, ...] = ()

    @property
    def scored_files(self) -> tuple[Path, ...]:
        """What the site scores another model on (the cross-site matrix): its test split,
        or all of its files when it is an evaluation-only site."""
        return self.evaluation_files if self.role == ROLE_EVALUATE else self.test_files


def resolve_site(node_config: dict[str, Any], config: Any) -> SiteData:
    """The site this node plays, from its node config and the federation config."""
    if PARTITION_ID in node_config:
        data_yaml = OmegaConf.to_yaml(config.data, resolve=True)
        manifest = _simulation_manifest(data_yaml, int(config.seed))
        try:
            site = site_for_partition(manifest, int(node_config[PARTITION_ID]))
        except ValueError as error:
            raise SiteDataError(str(error)) from error
        role = ROLE_EVALUATE if site["held_out"] else ROLE_TRAIN
    elif NODE_SITE_ID in node_config:
        manifest = _deployment_manifest(
            str(node_config.get(NODE_DATA_PATH, "")), str(node_config.get(NODE_MANIFEST_PATH, ""))
        )
        site = _site_by_id(manifest, str(node_config[NODE_SITE_ID]))
        role = str(node_config.get(NODE_ROLE, ROLE_TRAIN))
        if role not in SITE_ROLES:
            raise SiteDataError(
                f"node config role={role!r}: a site's role is one of {', '.join(SITE_ROLES)}"
            )
    else:
        raise SiteDataError(
            "node config names no site: a deployed SuperNode needs "
            '--node-config \'site-id="Center001" data-path="/data/cmr"\''
        )
    for field in ("site", "vendor"):
        if IDENTIFIER.match(str(site[field])) is None:
            raise SiteDataError(
                f"{field} {site[field]!r} cannot be sent to the coordinator: use 1-64 letters, "
                "digits, '.', '_' or '-' (the server refuses anything else)"
            )
    identity = {
        "site_id": site["site"],
        "vendor": site["vendor"],
        "scanners": tuple(site["scanners"]),
        "field_strengths": tuple(site["field_strengths"]),
    }
    if role == ROLE_EVALUATE:
        files = tuple(site_files(manifest, site, None))
        if not files:
            raise SiteDataError(f"site {site['site']}: no files to evaluate on")
        return SiteData(**identity, train_files=(), val_files=(), role=role, evaluation_files=files)
    train_files = tuple(site_files(manifest, site, "train"))
    if not train_files:
        raise SiteDataError(f"site {site['site']}: no training files in the partition")
    return SiteData(
        **identity,
        train_files=train_files,
        val_files=tuple(site_files(manifest, site, "val")),
        test_files=tuple(site_files(manifest, site, "test")),
    )


@functools.lru_cache(maxsize=4)
def _simulation_manifest(data_yaml: str, seed: int) -> dict:
    # Keyed by the data config's YAML, so each process partitions the data set once.
    return load_partition(OmegaConf.create(data_yaml), seed, show_progress=False)


@functools.lru_cache(maxsize=4)
def _deployment_manifest(data_path: str, manifest_path: str) -> dict:
    if manifest_path:
        return read_manifest(manifest_path)
    if not data_path:
        raise SiteDataError("node config has a site-id but no data-path (nor manifest-path)")
    root = Path(data_path)
    if not root.is_dir():
        raise SiteDataError(f"data-path {root} is not a directory")
    try:
        return partition_dataset(root, show_progress=False)
    except FileNotFoundError as error:
        raise SiteDataError(str(error)) from error


def _site_by_id(manifest: dict, site_id: str) -> dict:
    for site in manifest["sites"]:
        if site["site"] == site_id:
            return site
    found = ", ".join(site["site"] for site in manifest["sites"]) or "none"
    raise SiteDataError(f"site {site_id} not found under {manifest['root']} (centres: {found})")
