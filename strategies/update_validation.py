"""Check every site's reply before aggregation; a reply that fails is left out.

A broken or hostile site can send NaNs, arrays of the wrong shape or type, or an update far
larger than the others' (a scaled or diverged model). Each check compares the reply with the
arrays the server sent that site this round.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Message

from federation.protocol import ARRAYS, SiteRecord, vendor_of
from federation.schema import ValidationConfig


@dataclasses.dataclass(frozen=True)
class ValidationSettings:
    """``federation.validation`` in the config.

    Attributes:
        enabled: check replies before aggregation.
        max_norm_ratio: reject an update whose L2 norm is more than this many times the
            median update norm of the other sites of its vendor this round (of all other
            sites when it is its vendor's only one; no norm check for a lone site).
        clip_norm_ratio: scale an accepted update down to this many times the median norm
            of the other accepted updates (None: no clipping), so that one site's scaled
            update below the rejection limit cannot steer the mean either.
        min_accepted: fewest accepted replies a round needs to update the global model.
    """

    enabled: bool = ValidationConfig.enabled
    max_norm_ratio: float = ValidationConfig.max_norm_ratio
    clip_norm_ratio: float | None = ValidationConfig.clip_norm_ratio
    min_accepted: int = ValidationConfig.min_accepted

    def validate(self) -> None:
        if self.max_norm_ratio <= 1.0:
            raise ValueError(
                f"federation.validation.max_norm_ratio must be > 1, got {self.max_norm_ratio}"
            )
        if self.clip_norm_ratio is not None and self.clip_norm_ratio < 1.0:
            raise ValueError(
                "federation.validation.clip_norm_ratio must be >= 1 or null, "
                f"got {self.clip_norm_ratio}"
            )
        if self.min_accepted < 1:
            raise ValueError(
                f"federation.validation.min_accepted must be >= 1, got {self.min_accepted}"
            )


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A reply left out of aggregation: who sent it and why."""

    site: str
    node_id: int
    reason: str

    def to_dict(self) -> dict[str, str | int]:
        return {"site": self.site, "node-id": self.node_id, "reason": self.reason}


def validate_replies(
    replies: Sequence[Message],
    sent: Mapping[int, ArrayRecord],
    settings: ValidationSettings,
) -> tuple[list[Message], list[Rejection]]:
    """Split train replies into accepted ones and rejections (in the replies' order).

    Args:
        replies: the round's train replies with content.
        sent: per destination node id, the arrays the server sent it this round.
        settings: the thresholds.
    """
    accepted: list[Message] = []
    rejections: list[Rejection] = []
    norms: dict[int, float] = {}
    for index, reply in enumerate(replies):
        reference = sent.get(int(reply.metadata.src_node_id))
        problem = _structure_problem(reply, reference)
        if problem is not None:
            rejections.append(_rejection(reply, problem))
            continue
        norms[index] = _update_norm(reply.content[ARRAYS], reference)
        accepted.append(reply)
    outliers = _norm_outliers(replies, norms, settings.max_norm_ratio)
    rejections.extend(_rejection(replies[index], reason) for index, reason in outliers.items())
    rejected_ids = {id(replies[index]) for index in outliers}
    return [reply for reply in accepted if id(reply) not in rejected_ids], rejections


def clip_update_norms(
    replies: Sequence[Message], sent: Mapping[int, ArrayRecord], ratio: float | None
) -> list[dict[str, Any]]:
    """Scale down, in the replies themselves, updates above ``ratio`` x their peers' median.

    The peers of a reply are the other replies that moved (norm > 0); with no peer, nothing
    is clipped. The clipped reply becomes ``sent + (reply - sent) * bound / norm`` in its own
    dtype, so it points the same way with the peers' typical length times ``ratio``.

    Args:
        replies: accepted train replies (structurally valid: see :func:`validate_replies`).
        sent: per node id, the arrays the server sent it.
        ratio: the bound relative to the peers' median norm; None: no clipping.

    Returns:
        One entry per clipped reply: site, node id, its norm and the bound.
    """
    if ratio is None or len(replies) < 2:
        return []
    nodes = [int(reply.metadata.src_node_id) for reply in replies]
    norms = [
        _update_norm(reply.content[ARRAYS], sent[node])
        for reply, node in zip(replies, nodes, strict=True)
    ]
    clipped = []
    for index, (reply, node, norm) in enumerate(zip(replies, nodes, norms, strict=True)):
        peers = [value for other, value in enumerate(norms) if other != index and value > 0]
        if not peers:
            continue
        bound = ratio * statistics.median(peers)
        if norm <= bound:
            continue
        reply.content[ARRAYS] = _scaled_update(reply.content[ARRAYS], sent[node], bound / norm)
        clipped.append(
            {
                "site": SiteRecord.of(reply.content, node).site_id,
                "node-id": node,
                "norm": norm,
                "bound": bound,
            }
        )
    return clipped


def _scaled_update(arrays: ArrayRecord, reference: ArrayRecord, factor: float) -> ArrayRecord:
    scaled = {}
    for key, expected in reference.items():
        before = expected.numpy()
        after = arrays[key].numpy()
        if not np.issubdtype(before.dtype, np.floating):
            scaled[key] = arrays[key]  # counters (BatchNorm's batches) are not steered by size
            continue
        difference = after.astype(np.float64) - before.astype(np.float64)
        value = before.astype(np.float64) + factor * difference
        scaled[key] = Array(np.asarray(value, dtype=before.dtype))
    return ArrayRecord(scaled)


def _structure_problem(reply: Message, reference: ArrayRecord | None) -> str | None:
    """Why the reply's arrays cannot be averaged with the others (None when they can)."""
    if reference is None:
        return "reply from a node the server did not ask to train"
    content = reply.content
    if ARRAYS not in content.array_records:
        return f"no '{ARRAYS}' ArrayRecord in the reply"
    arrays = content[ARRAYS]
    missing = sorted(set(reference) - set(arrays))
    unexpected = sorted(set(arrays) - set(reference))
    if missing or unexpected:
        return (
            f"keys differ from the global model: missing {_few(missing)}, "
            f"unexpected {_few(unexpected)}"
        )
    for key, expected in reference.items():
        received = arrays[key]
        if tuple(received.shape) != tuple(expected.shape):
            return f"'{key}' has shape {tuple(received.shape)}, expected {tuple(expected.shape)}"
        if received.dtype != expected.dtype:
            return f"'{key}' has dtype {received.dtype}, expected {expected.dtype}"
    for key in reference:
        if not np.isfinite(arrays[key].numpy()).all():
            return f"'{key}' holds NaN or infinite values"
    return None


def _update_norm(arrays: ArrayRecord, reference: ArrayRecord) -> float:
    """L2 norm of (reply - sent) over every array, in float64."""
    total = 0.0
    for key, expected in reference.items():
        difference = arrays[key].numpy().astype(np.float64) - expected.numpy().astype(np.float64)
        total += float(np.vdot(difference, difference).real)
    return total**0.5


def _norm_outliers(
    replies: Sequence[Message], norms: Mapping[int, float], max_ratio: float
) -> dict[int, str]:
    """Replies whose update norm exceeds ``max_ratio`` x the median of their peers.

    The peers are the other structurally valid replies of the same vendor (all other
    replies when the site is its vendor's only one). Leaving the site itself out of the
    median matters with two sites, where the median would be half the attacker's own norm.
    Peers that did not move (norm 0: no examples, a spent privacy budget) do not count.
    """
    vendors = {index: vendor_of(replies[index].content) for index in norms}
    outliers: dict[int, str] = {}
    for index, norm in norms.items():
        others = {other: value for other, value in norms.items() if other != index and value > 0}
        same_vendor = [value for other, value in others.items() if vendors[other] == vendors[index]]
        peers = same_vendor or list(others.values())
        if not peers:
            continue
        median = statistics.median(peers)
        if norm > max_ratio * median:
            scope = f"vendor {vendors[index]}" if same_vendor else "all other sites"
            outliers[index] = (
                f"update norm {norm:.4g} is {norm / median:.1f}x the median {median:.4g} of "
                f"{scope} (limit {max_ratio:g}x)"
            )
    return outliers


def _rejection(reply: Message, reason: str) -> Rejection:
    return Rejection(
        site=SiteRecord.of(reply.content, int(reply.metadata.src_node_id)).site_id,
        node_id=int(reply.metadata.src_node_id),
        reason=reason,
    )


def _few(keys: list[str], limit: int = 3) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown} and {len(keys) - limit} more"
