"""The data of a site's round: its training and validation slices, the round's seed, and the
files it skipped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from cardiomm.data.builders import evaluation_dataset, training_dataset
from cardiomm.data.dataset import SliceDataset


class SiteDataError(ValueError):
    """The site's data cannot be found or used; the message says why."""


class SiteSplits(Protocol):
    """What a round needs to know of a site (client/site.py's ``SiteData`` is one)."""

    @property
    def site_id(self) -> str: ...

    @property
    def train_files(self) -> tuple[Path, ...]: ...

    @property
    def val_files(self) -> tuple[Path, ...]: ...


@dataclasses.dataclass(frozen=True)
class RoundInstructions:
    """What the server asked for this round (docs/federation-protocol.md)."""

    server_round: int
    local_steps: int
    learning_rate: float
    proximal_mu: float
    seed: int


def round_seed(instructions: RoundInstructions, site: SiteSplits) -> int:
    """One seed per (run, round, site): resumed and uninterrupted runs draw the same."""
    return instructions.seed * 100_003 + instructions.server_round * 101 + _site_number(site)


def training_data(site: SiteSplits, config: Any, seed: int) -> SliceDataset:
    """The site's training slices (masks drawn from ``seed``).

    Raises:
        SiteDataError: not one usable slice; the message names the files skipped.
    """
    data = training_dataset(list(site.train_files), config, seed)
    if len(data) == 0:
        raise SiteDataError(f"site {site.site_id}: no usable training data; {why_empty(data)}")
    return data


def validation_data(site: SiteSplits, config: Any) -> SliceDataset | None:
    """The site's validation slices (fixed evaluation masks), None without a val split."""
    return evaluation_dataset(list(site.val_files), config) if site.val_files else None


def skipped_files(*datasets: SliceDataset | None) -> list[dict[str, str]]:
    """``{"path", "reason"}`` of every file the datasets skipped, in order."""
    return [
        {"path": str(bad.path), "reason": bad.reason}
        for dataset in datasets
        if dataset is not None
        for bad in dataset.bad_files
    ]


def why_empty(dataset: SliceDataset) -> str:
    """The skipped files of an empty dataset, in a few words."""
    skipped = dataset.bad_files
    if not skipped:
        return "its split holds no images"
    shown = "; ".join(f"{bad.path.name}: {bad.reason}" for bad in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"{len(skipped)} file(s) skipped ({shown}{more})"


def _site_number(site: SiteSplits) -> int:
    digits = "".join(character for character in site.site_id if character.isdigit())
    return int(digits) if digits else 0
