"""What a round's admitted train replies go through before the strategy averages them.

1. Update validation (``federation.validation.enabled``): NaN / Inf, wrong keys, shapes or
   dtypes, and updates far larger than their peers' are rejected
   (strategies/update_validation.py).
2. Norm clipping (``federation.validation.clip_norm_ratio``): an accepted update longer than
   that many times its peers' median is scaled down to it.
3. Example shares (``federation.replies.max_site_share``, always): no site counts for more
   than its share of the round's examples (strategies/example_shares.py).

Each step logs what it did with the site and the reason; the round record keeps it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flwr.app import ArrayRecord, Message

from server.settings import FederationSettings
from strategies.example_shares import cap_example_shares
from strategies.update_validation import clip_update_norms, validate_replies

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ScreenedUpdates:
    """The replies the strategy may average, and what screening did to the others.

    Attributes:
        accepted: the replies to aggregate (clipped and capped in place where needed).
        rejected: {phase, site, node-id, reason} per rejected update.
        clipped: {site, node-id, norm, bound} per update scaled down.
        capped: {site, node-id, reported, counted} per site whose examples were capped.
    """

    accepted: list[Message]
    rejected: list[dict[str, Any]]
    clipped: list[dict[str, Any]]
    capped: list[dict[str, Any]]

    def report(self) -> dict[str, Any]:
        """The round record's aggregation entries (only those with something in them)."""
        entries = {"clipped-updates": self.clipped, "capped-examples": self.capped}
        return {key: value for key, value in entries.items() if value}


def screen_updates(
    server_round: int,
    settings: FederationSettings,
    replies: Sequence[Message],
    sent: Mapping[int, ArrayRecord],
) -> ScreenedUpdates:
    """Validate, clip and cap the admitted train ``replies`` (see the module docstring).

    Args:
        sent: per node id, the arrays the server sent it this round.
    """
    accepted, rejected, clipped = list(replies), [], []
    if settings.validation.enabled:
        accepted, rejections = validate_replies(accepted, sent, settings.validation)
        rejected = [{"phase": "train", **rejection.to_dict()} for rejection in rejections]
        clipped = clip_update_norms(accepted, sent, settings.validation.clip_norm_ratio)
    capped = cap_example_shares(accepted, settings.replies.max_site_share)
    for entry in rejected:
        logger.warning(
            "round %d: rejected the update of site %s (node %d): %s",
            server_round,
            entry["site"],
            entry["node-id"],
            entry["reason"],
        )
    for entry in clipped:
        logger.warning(
            "round %d: scaled the update of site %s down from norm %.4g to %.4g "
            "(federation.validation.clip_norm_ratio)",
            server_round,
            entry["site"],
            entry["norm"],
            entry["bound"],
        )
    for entry in capped:
        logger.warning(
            "round %d: site %s reported %g examples; counted %g so that it holds no more than "
            "its share of the round (federation.replies.max_site_share)",
            server_round,
            entry["site"],
            entry["reported"],
            entry["counted"],
        )
    return ScreenedUpdates(accepted, rejected, clipped, capped)
