"""Read the sites' replies: checked fields, per-site metrics, errors, missing replies, traffic.

Every reply passes the gate first (:class:`ReplyGate`): its fields are checked
(federation/reply_checks.py) and its site claim against the node's binding
(server/site_identities.py). A refused reply is recorded with its node, the site it claimed
and why, and goes no further; an admitted one carries only checked, sanitised fields from
then on, so the strategies, the history and MLflow never see what the site sent unchecked.
The history keeps each site's numbers under its ``site-id`` and each failure with the node
id and Flower's error reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Collection, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from federation.protocol import METRICS, SITE_ID, SITE_RECORD, SiteRecord, node_name
from federation.reply_checks import (
    IDENTIFIER,
    CheckedReply,
    ReplyLimits,
    ReplyRefusedError,
    check_reply,
    clean_text,
)
from server.site_identities import SiteIdentities

logger = logging.getLogger(__name__)


def array_bytes(arrays: ArrayRecord) -> int:
    """Payload size of an ArrayRecord: the sum of its arrays' nbytes (headers left out)."""
    return int(
        sum(int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize for array in arrays.values())
    )


@dataclasses.dataclass
class ReplyGate:
    """What a reply must pass before the server uses it.

    Attributes:
        limits: the bounds on its fields (``federation.validation``).
        identities: the run's node -> site bindings.
        connected: the node ids connected now (the grid's ``get_node_ids``).
    """

    limits: ReplyLimits
    identities: SiteIdentities
    connected: Callable[[], Iterable[int]]

    def admit(
        self,
        reply: Message,
        phase: str,
        connected: Iterable[int],
        contested: Collection[str] = (),
    ) -> CheckedReply:
        """The checked fields of ``reply``, written back into it (sanitised).

        Args:
            connected: the node ids connected now.
            contested: the sites several replies of this exchange claim.

        Raises:
            ReplyRefusedError: a field fails its check, or the site claim its node's binding.
        """
        checked = check_reply(reply.content, phase, self.limits)
        node = int(reply.metadata.src_node_id)
        self.identities.claim(node, checked.site.site_id, checked.site.vendor, connected, contested)
        site = dataclasses.replace(checked.site, bad_files_json=json.dumps(checked.bad_files))
        reply.content.config_records[SITE_RECORD] = site.to_record()
        reply.content.metric_records[METRICS] = MetricRecord(checked.metrics)
        return checked


def open_gate(limits: ReplyLimits, sites: dict[str, str], grid: Any) -> ReplyGate:
    """The run's gate: ``limits`` on fields, ``sites`` (may be empty) for identities, and
    the grid's connected nodes."""
    return ReplyGate(limits, SiteIdentities(sites), grid.get_node_ids)


@dataclasses.dataclass
class PhaseReplies:
    """A train or evaluate exchange, sorted out.

    Attributes:
        valid: admitted replies, in a fixed order (site id, then node id) so that
            aggregation sums in the same order in every run (bitwise reproducible).
        sites: per site id: node id, site fields, metrics and bytes received.
        errors: one dict per failure: phase, node id, site (if known), code, reason.
        refused: one dict per reply the gate refused: phase, node id, the site it claimed
            (its node's name when the claim was not even well formed), reason.
    """

    valid: list[Message]
    sites: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]
    refused: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def sort_replies(
    phase: str, sent: Iterable[Message], replies: Iterable[Message], gate: ReplyGate
) -> PhaseReplies:
    """Split replies into admitted ones, refused ones and errors; a sent message with no
    reply is an error, and so is a reply from a node that was not asked."""
    replies = list(replies)
    asked = {int(message.metadata.dst_node_id) for message in sent}
    connected = set(gate.connected())
    contested = _contested_sites(replies)
    sorted_out = PhaseReplies(valid=[], sites={}, errors=[])
    for reply in replies:
        node = int(reply.metadata.src_node_id)
        if reply.has_error():
            sorted_out.errors.append(
                {
                    "phase": phase,
                    "node-id": node,
                    "code": int(reply.error.code),
                    "reason": _error_reason(reply),
                }
            )
            continue
        try:
            if node not in asked:
                raise ReplyRefusedError("reply from a node the server did not ask")
            checked = gate.admit(reply, phase, connected, contested)
        except ReplyRefusedError as refusal:
            sorted_out.refused.append(_refusal(phase, reply, str(refusal)))
            continue
        sorted_out.valid.append(reply)
        sorted_out.sites[checked.site.site_id] = _site_entry(reply, checked)
    answered = {int(reply.metadata.src_node_id) for reply in replies}
    for node in sorted(asked - answered):
        sorted_out.errors.append(
            {"phase": phase, "node-id": node, "code": -1, "reason": "no reply before timeout"}
        )
    sorted_out.valid.sort(key=lambda reply: (_site(reply).site_id, int(reply.metadata.src_node_id)))
    return sorted_out


def _contested_sites(replies: list[Message]) -> set[str]:
    """Site ids that more than one node's reply claims."""
    claimants: dict[str, set[int]] = {}
    for reply in replies:
        if reply.has_error():
            continue
        claimed = reply.content.config_records.get(SITE_RECORD, {}).get(SITE_ID)
        if isinstance(claimed, str):
            claimants.setdefault(claimed, set()).add(int(reply.metadata.src_node_id))
    return {site for site, nodes in claimants.items() if len(nodes) > 1}


def _site(reply: Message) -> SiteRecord:
    return SiteRecord.of(reply.content, int(reply.metadata.src_node_id))


def _site_entry(reply: Message, checked: CheckedReply) -> dict[str, Any]:
    received = sum(array_bytes(arrays) for arrays in reply.content.array_records.values())
    return {
        "node-id": int(reply.metadata.src_node_id),
        SITE_ID: checked.site.site_id,
        "vendor": checked.site.vendor,
        "scanner": checked.site.scanner,
        "metrics": dict(checked.metrics),
        "bytes-received": received,
        "bad-files": checked.bad_files,
    }


def _refusal(phase: str, reply: Message, reason: str) -> dict[str, Any]:
    node = int(reply.metadata.src_node_id)
    claimed = reply.content.config_records.get(SITE_RECORD, {}).get(SITE_ID)
    site = claimed if isinstance(claimed, str) and IDENTIFIER.match(claimed) else node_name(node)
    logger.warning("refused the %s reply of node %d (claims %s): %s", phase, node, site, reason)
    return {"phase": phase, "site": site, "node-id": node, "reason": reason}


def _error_reason(reply: Message) -> str:
    # A site writes its own error text: kept readable, without markup, and short.
    return clean_text(reply.error.reason, 2000)


def finite_max(values: Iterable[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return max(finite) if finite else 0.0
