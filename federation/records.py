"""The record of a federated round: what the ServerApp writes to history.json and its round
checkpoints, and what tracking, the study's report and its figures read back.

The JSON layout (one object per round, docs/federation-protocol.md) is unchanged from the
untyped dicts these classes replace; :meth:`RoundRecord.to_json` writes it and
:meth:`RoundRecord.from_json` reads it, so every reader works with named fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.json"


@dataclasses.dataclass
class SiteRound:
    """One site in one round.

    Attributes:
        node_id: the Flower node that played it.
        vendor, scanner: as its site record says (None: it did not train this round).
        bad_files: the files it skipped ({path, reason} each).
        train: its train reply's metrics (None: it did not train this round).
        train_fields: what the round loop adds for a site that trained (the secure path's
            weight), in order.
        bytes_sent, bytes_received: traffic with the server in the round.
        evaluate: its evaluate reply's metrics (None: it did not evaluate).
    """

    node_id: int
    vendor: str | None = None
    scanner: str | None = None
    bad_files: list[Any] | None = None
    train: dict[str, Any] | None = None
    train_fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    bytes_sent: int | None = None
    bytes_received: int | None = None
    evaluate: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {"node-id": self.node_id}
        for key, value in (("vendor", self.vendor), ("scanner", self.scanner)):
            if value is not None:
                values[key] = value
        if self.bad_files is not None:
            values["bad-files"] = self.bad_files
        if self.train is not None:
            values["train"] = self.train
            values.update(self.train_fields)
        for key, value in (
            ("bytes-sent", self.bytes_sent),
            ("bytes-received", self.bytes_received),
        ):
            if value is not None:
                values[key] = value
        if self.evaluate is not None:
            values["evaluate"] = self.evaluate
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> SiteRound:
        known = {
            "node-id",
            "vendor",
            "scanner",
            "bad-files",
            "train",
            "bytes-sent",
            "bytes-received",
            "evaluate",
        }
        return cls(
            node_id=int(values["node-id"]),
            vendor=values.get("vendor"),
            scanner=values.get("scanner"),
            bad_files=values.get("bad-files"),
            train=values.get("train"),
            train_fields={key: value for key, value in values.items() if key not in known},
            bytes_sent=values.get("bytes-sent"),
            bytes_received=values.get("bytes-received"),
            evaluate=values.get("evaluate"),
        )


@dataclasses.dataclass
class RoundRecord:
    """One federated round.

    Attributes:
        round: the server round (from 1).
        train: the strategy's aggregate of the train replies' metrics.
        evaluate: the strategy's aggregate of the evaluate replies' metrics (the global
            model on the sites' validation splits).
        aggregation: how aggregation went (``train`` / ``evaluate`` notes, each site's
            weight, central DP's figures).
        sites: per site id, what it did; in site order.
        errors: failed or missing replies ({phase, node-id, site, code, reason}).
        rejected: replies that update validation left out ({site, node-id, reason}).
        timing: seconds: the round, its phases, the slowest sites, the overhead.
        traffic: bytes per site and in all.
        global_scores: the server's own evaluation (simulation only), when run.
        secure_aggregation: the secure sum's figures (privacy=secagg only).
        zero_shot: per evaluation-only site, its scores of the round's new global model
            (overall and per group, federation/protocol.py), in rounds where they ran.
    """

    round: int
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    evaluate: dict[str, Any] = dataclasses.field(default_factory=dict)
    aggregation: dict[str, Any] = dataclasses.field(default_factory=dict)
    sites: dict[str, SiteRound] = dataclasses.field(default_factory=dict)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rejected: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    traffic: dict[str, int] = dataclasses.field(default_factory=dict)
    global_scores: dict[str, float] | None = None
    secure_aggregation: dict[str, Any] | None = None
    zero_shot: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "round": self.round,
            "train": self.train,
            "evaluate": self.evaluate,
            "aggregation": self.aggregation,
            "sites": {site: entry.to_json() for site, entry in sorted(self.sites.items())},
            "errors": self.errors,
            "rejected": self.rejected,
            "timing": self.timing,
            "traffic": self.traffic,
        }
        if self.secure_aggregation is not None:
            values["secure-aggregation"] = self.secure_aggregation
        if self.global_scores is not None:
            values["global"] = self.global_scores
        if self.zero_shot:
            values["zero-shot"] = self.zero_shot
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> RoundRecord:
        return cls(
            round=int(values["round"]),
            train=dict(values.get("train") or {}),
            evaluate=dict(values.get("evaluate") or {}),
            aggregation=dict(values.get("aggregation") or {}),
            sites={
                str(site): SiteRound.from_json(entry)
                for site, entry in (values.get("sites") or {}).items()
            },
            errors=list(values.get("errors") or []),
            rejected=list(values.get("rejected") or []),
            timing=dict(values.get("timing") or {}),
            traffic=dict(values.get("traffic") or {}),
            global_scores=values.get("global"),
            secure_aggregation=values.get("secure-aggregation"),
            zero_shot={
                str(site): dict(scores) for site, scores in (values.get("zero-shot") or {}).items()
            },
        )


def history_to_json(history: Iterable[RoundRecord]) -> list[dict[str, Any]]:
    return [record.to_json() for record in history]


def history_from_json(values: Iterable[Mapping[str, Any]]) -> list[RoundRecord]:
    return [RoundRecord.from_json(record) for record in values]


def write_history(path: str | Path, history: Iterable[RoundRecord]) -> Path:
    """history.json (written whole, then renamed into place)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(history_to_json(history), indent=2, default=float))
    partial.replace(path)
    return path


def read_history(path: str | Path) -> list[RoundRecord]:
    """The rounds of a history.json, with a clear error for a file that is not one."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such history") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a federation history (invalid JSON: {error})") from error
    if not isinstance(values, list):
        raise ValueError(f"{path}: not a federation history (not a list of round records)")
    try:
        return history_from_json(values)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: a round record is malformed ({error!r})") from error


def finite_series(
    history: Iterable[RoundRecord], section: str, key: str
) -> list[tuple[int, float]]:
    """(round, value) of ``getattr(record, section)[key]`` over the rounds with a finite one
    (``section``: train, evaluate, timing, traffic, global_scores)."""
    points = []
    for record in history:
        value = (getattr(record, section) or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            points.append((record.round, float(value)))
    return points
