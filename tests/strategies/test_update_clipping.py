"""An accepted update far longer than its peers' is scaled down to a bound on its norm."""

import numpy as np
import pytest

from strategies.update_validation import clip_update_norms
from tests.strategies.replies import arrays, train_reply

GLOBAL = {"w": np.zeros(4, np.float32), "count": np.zeros(1, np.int64)}


def _round(*steps):
    replies = [
        train_reply(
            f"Center{node:03d}",
            "Siemens",
            10.0,
            {"w": GLOBAL["w"] + np.float32(step), "count": GLOBAL["count"] + 1},
            node_id=node,
        )
        for node, step in enumerate(steps, start=1)
    ]
    return replies, {node: arrays(GLOBAL) for node in range(1, len(steps) + 1)}


def test_updates_within_the_ratio_are_left_as_sent():
    replies, sent = _round(1.0, 1.2, 0.9)
    before = [reply.content["arrays"]["w"].numpy().copy() for reply in replies]
    assert clip_update_norms(replies, sent, ratio=3.0) == []
    for reply, values in zip(replies, before, strict=True):
        np.testing.assert_array_equal(reply.content["arrays"]["w"].numpy(), values)


def test_a_long_update_is_scaled_to_the_ratio_times_the_peers_median_norm():
    replies, sent = _round(1.0, 1.0, 8.0)
    [clipped] = clip_update_norms(replies, sent, ratio=3.0)
    assert clipped["site"] == "Center003"
    peer_norm = np.sqrt(4 * 1.0**2 + 1.0)  # the float step on four values and the counter
    assert clipped["bound"] == pytest.approx(3.0 * peer_norm)
    weights = replies[2].content["arrays"]["w"].numpy()
    # Same direction, float values scaled; the integer counter left as the site sent it.
    assert np.allclose(weights, weights[0])
    assert replies[2].content["arrays"]["count"].numpy().tolist() == [1]


def test_no_clipping_when_switched_off():
    replies, sent = _round(1.0, 1.0, 8.0)
    assert clip_update_norms(replies, sent, ratio=None) == []
