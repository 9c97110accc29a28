"""No site counts for more than its share of a round's examples."""

import numpy as np
import pytest

from strategies.example_shares import cap_example_shares, capped_counts
from tests.strategies.replies import train_reply

WEIGHTS = {"w": np.zeros(2, np.float32)}


def test_counts_within_the_share_are_left_alone():
    assert capped_counts([30.0, 20.0, 10.0], 0.5) == [30.0, 20.0, 10.0]


def test_the_largest_count_is_lowered_to_exactly_the_share():
    counts = capped_counts([100.0, 30.0, 20.0], 0.5)
    assert counts == [50.0, 30.0, 20.0]
    assert counts[0] / sum(counts) == pytest.approx(0.5)


def test_several_large_counts_are_lowered_to_one_common_level():
    counts = capped_counts([100.0, 90.0, 10.0, 10.0], 0.3)
    assert counts[0] == counts[1]
    assert max(counts) / sum(counts) == pytest.approx(0.3)
    assert counts[2:] == [10.0, 10.0]


def test_a_share_below_one_over_the_sites_gives_equal_counts():
    assert capped_counts([5.0, 1.0, 1.0, 1.0], 0.1) == [1.0, 1.0, 1.0, 1.0]


def test_a_huge_claimed_count_is_capped_in_the_reply_and_reported():
    replies = [
        train_reply("Center001", "Siemens", 1e9, WEIGHTS, node_id=1),
        train_reply("Center002", "GE", 40.0, WEIGHTS, node_id=2),
        train_reply("Center003", "GE", 60.0, WEIGHTS, node_id=3),
    ]
    capped = cap_example_shares(replies, max_share=None)  # two vendors: at most 1/2
    assert capped == [{"site": "Center001", "node-id": 1, "reported": 1e9, "counted": 100.0}]
    assert replies[0].content["metrics"]["num-examples"] == 100.0


def test_one_vendor_means_no_cap_by_default():
    replies = [
        train_reply("Center001", "Siemens", 1000.0, WEIGHTS, node_id=1),
        train_reply("Center002", "Siemens", 10.0, WEIGHTS, node_id=2),
    ]
    assert cap_example_shares(replies, max_share=None) == []
