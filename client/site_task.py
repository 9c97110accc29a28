"""One Flower message's work and the site's answer, as plain values (no torch, no Flower):
what the ClientApp hands to a warm site worker and gets back (client/worker.py), and what
:func:`client.tasks.run_task` takes and returns in either process."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

TRAIN = "train"
EVALUATE = "evaluate"
QUERY = "query"  # the roll call: who the site is and what it does
TASK_KINDS = (TRAIN, EVALUATE, QUERY)
_SCALARS = (str, int, float, bool)


@dataclasses.dataclass
class SiteTask:
    """One message's work.

    Attributes:
        kind: :data:`TRAIN`, :data:`EVALUATE` or :data:`QUERY`.
        run_config: Flower's run config (the coordinator's ``overrides``).
        node_config: the SuperNode's node config (who the site is, where its data lives).
        request: the message's config record (round, local steps, learning rate, ...).
        arrays: the global weights, parameter name -> array of the parameter's shape, in the
            state dict's order (empty for a roll call).
        history: the site's DP-SGD accountant lists from ``context.state`` (None when the
            site has none yet).
        run_id: Flower's run id (the key of the run in the site's privacy ledger).
    """

    kind: str
    run_config: dict[str, Any]
    node_config: dict[str, Any]
    request: dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    history: dict[str, list] | None = None
    run_id: str = ""

    def header(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON values."""
        return {
            "kind": self.kind,
            "run_config": self.run_config,
            "node_config": self.node_config,
            "request": self.request,
            "history": self.history,
            "run_id": self.run_id,
        }

    @classmethod
    def from_header(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> SiteTask:
        """The task a worker received; a malformed header is a ValueError naming the field."""
        kind = header.get("kind")
        if kind not in TASK_KINDS:
            raise ValueError(f"task kind {str(kind)[:40]!r} is not one of {', '.join(TASK_KINDS)}")
        fields = {}
        for name in ("run_config", "node_config", "request"):
            fields[name] = _scalar_mapping(header.get(name, {}), name)
        history = header.get("history")
        if history is not None and not (
            isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
        ):
            raise ValueError("task history is not a mapping of lists")
        run_id = header.get("run_id", "")
        if not isinstance(run_id, str) or len(run_id) > 64:
            raise ValueError("task run_id is not a short string")
        return cls(kind=kind, arrays=arrays, history=history, run_id=run_id, **fields)


@dataclasses.dataclass
class TaskOutcome:
    """What the site answers.

    Attributes:
        metrics: the reply's metrics (``MetricRecord``).
        arrays: the trained weights (a train reply), name -> array.
        site: the site record's fields (``SiteRecord.to_record``), None when the site is
            not known (its data could not be resolved).
        history: the DP-SGD accountant lists to store in ``context.state`` (None: leave it).
        error_code: 0, or the protocol's error code (then ``reason`` says why).
        reason: the error's reason, naming the site.
    """

    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    site: dict[str, str] | None = None
    history: dict[str, list] | None = None
    error_code: int = 0
    reason: str = ""

    def header(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "site": self.site,
            "history": self.history,
            "error_code": self.error_code,
            "reason": self.reason,
        }

    @classmethod
    def from_header(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> TaskOutcome:
        """The outcome a worker sent; a malformed header is a ValueError naming the field."""
        metrics = header.get("metrics", {})
        if not isinstance(metrics, dict) or not all(
            isinstance(value, int | float) and not isinstance(value, bool)
            for value in metrics.values()
        ):
            raise ValueError("outcome metrics are not a mapping of numbers")
        site = header.get("site")
        if site is not None:
            site = _scalar_mapping(site, "site")
        history = header.get("history")
        if history is not None and not isinstance(history, dict):
            raise ValueError("outcome history is not a mapping")
        code = header.get("error_code", 0)
        if not isinstance(code, int) or isinstance(code, bool):
            raise ValueError("outcome error_code is not an integer")
        return cls(
            metrics={key: float(value) for key, value in metrics.items()},
            arrays=arrays,
            site=site,
            history=history,
            error_code=code,
            reason=str(header.get("reason", "")),
        )


def scalar_values(record: Any) -> dict[str, Any]:
    """The entries of a Flower record or config that are plain scalars (what a task uses)."""
    return {
        str(key): value
        for key, value in dict(record).items()
        if isinstance(value, _SCALARS) and not (isinstance(value, float) and math.isnan(value))
    }


def _scalar_mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, _SCALARS) for key, item in value.items()
    ):
        raise ValueError(f"task {name} is not a mapping of names to scalars")
    return value


def node_description(node_config: Any) -> str:
    """A node config in one line, ``key=value, ...`` (how a site unknown by name is named)."""
    described = ", ".join(f"{key}={value}" for key, value in dict(node_config).items())
    return described or "unknown"
