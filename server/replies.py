"""Read the sites' replies: per-site metrics, errors, missing replies and traffic.

The strategies aggregate replies but do not say which site sent what; the history keeps each
site's numbers under its ``site-id`` (from the reply's ``site`` ConfigRecord) and each failure
with the node id and Flower's error reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message

from federation.protocol import SITE_ID, SiteRecord


def array_bytes(arrays: ArrayRecord) -> int:
    """Payload size of an ArrayRecord: the sum of its arrays' nbytes (headers left out)."""
    return int(
        sum(int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize for array in arrays.values())
    )


@dataclasses.dataclass
class PhaseReplies:
    """A train or evaluate exchange, sorted out.

    Attributes:
        valid: replies with content, in a fixed order (site id, then node id) so that
            aggregation sums in the same order in every run (bitwise reproducible).
        sites: per site id: node id, site fields, metrics and bytes received.
        errors: one dict per failure: phase, node id, site (if known), code, reason.
    """

    valid: list[Message]
    sites: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]


def sort_replies(phase: str, sent: Iterable[Message], replies: Iterable[Message]) -> PhaseReplies:
    """Split replies into valid ones and errors; a sent message with no reply is an error."""
    replies = list(replies)
    valid, errors, sites = [], [], {}
    for reply in replies:
        node = int(reply.metadata.src_node_id)
        if reply.has_error():
            errors.append(
                {
                    "phase": phase,
                    "node-id": node,
                    "code": int(reply.error.code),
                    "reason": str(reply.error.reason),
                }
            )
            continue
        valid.append(reply)
        site = _site(reply)
        sites[site.site_id] = _site_entry(reply, site)
    answered = {int(reply.metadata.src_node_id) for reply in replies}
    for message in sent:
        node = int(message.metadata.dst_node_id)
        if node not in answered:
            errors.append(
                {"phase": phase, "node-id": node, "code": -1, "reason": "no reply before timeout"}
            )
    valid.sort(key=lambda reply: (_site(reply).site_id, int(reply.metadata.src_node_id)))
    return PhaseReplies(valid=valid, sites=sites, errors=errors)


def _site(reply: Message) -> SiteRecord:
    return SiteRecord.of(reply.content, int(reply.metadata.src_node_id))


def _site_entry(reply: Message, site: SiteRecord) -> dict[str, Any]:
    metrics = {}
    for record in reply.content.metric_records.values():
        metrics.update({key: _number(value) for key, value in record.items()})
    received = sum(array_bytes(arrays) for arrays in reply.content.array_records.values())
    return {
        "node-id": int(reply.metadata.src_node_id),
        SITE_ID: site.site_id,
        "vendor": site.vendor,
        "scanner": site.scanner,
        "metrics": metrics,
        "bytes-received": received,
        "bad-files": _bad_files(site.bad_files_json),
    }


def _bad_files(text: str) -> list[Any]:
    """The site's skipped files ({path, reason} each); kept as text if not valid JSON."""
    try:
        files = json.loads(text)
    except json.JSONDecodeError:
        return [text]
    return files if isinstance(files, list) else [files]


def _number(value: Any) -> float | list[float]:
    if isinstance(value, list):
        return [float(item) for item in value]
    return float(value)


def finite_max(values: Iterable[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return max(finite) if finite else 0.0
