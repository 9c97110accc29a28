"""Replies are checked before aggregation: broken or hostile updates are left out."""

import numpy as np
import pytest
from flwr.serverapp.strategy import FedAvg

from strategies.update_validation import ValidationSettings, validate_replies
from tests.strategies.replies import arrays, train_reply

GLOBAL = {"conv.weight": np.zeros((2, 3), np.float32), "trust": np.ones(1, np.float32)}
SETTINGS = ValidationSettings(max_norm_ratio=10.0)


def _honest(site: int, vendor: str = "Siemens") -> dict[str, np.ndarray]:
    step = np.random.default_rng(site).normal(scale=0.01, size=(2, 3)).astype(np.float32)
    return {"conv.weight": GLOBAL["conv.weight"] + step, "trust": GLOBAL["trust"] + 0.01 * site}


def _round(*updates: dict[str, np.ndarray], vendors: list[str] | None = None):
    vendors = vendors or ["Siemens"] * len(updates)
    replies = [
        train_reply(f"Center{node:03d}", vendor, 10.0, update, node_id=node)
        for node, (update, vendor) in enumerate(zip(updates, vendors, strict=True), start=1)
    ]
    sent = {node: arrays(GLOBAL) for node in range(1, len(updates) + 1)}
    return replies, sent


def _scaled(update: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    return {key: GLOBAL[key] + factor * (value - GLOBAL[key]) for key, value in update.items()}


def test_honest_replies_are_all_accepted():
    replies, sent = _round(_honest(1), _honest(2), _honest(3))
    accepted, rejected = validate_replies(replies, sent, SETTINGS)
    assert len(accepted) == 3
    assert rejected == []


def test_a_reply_with_nan_is_rejected_naming_the_site_and_array():
    poisoned = _honest(3)
    poisoned["conv.weight"][0, 0] = np.nan
    replies, sent = _round(_honest(1), _honest(2), poisoned)
    accepted, rejected = validate_replies(replies, sent, SETTINGS)
    assert len(accepted) == 2
    assert rejected[0].site == "Center003"
    assert "conv.weight" in rejected[0].reason and "NaN" in rejected[0].reason


def test_a_reply_with_a_wrong_shape_is_rejected():
    wrong = _honest(3)
    wrong["conv.weight"] = np.zeros((3, 2), np.float32)
    replies, sent = _round(_honest(1), _honest(2), wrong)
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert [r.site for r in rejected] == ["Center003"]
    assert "shape (3, 2), expected (2, 3)" in rejected[0].reason


def test_a_reply_with_a_wrong_dtype_is_rejected():
    wrong = _honest(3)
    wrong["trust"] = wrong["trust"].astype(np.float64)
    replies, sent = _round(_honest(1), _honest(2), wrong)
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert "dtype float64, expected float32" in rejected[0].reason


def test_a_reply_missing_a_key_is_rejected():
    missing = _honest(3)
    del missing["trust"]
    replies, sent = _round(_honest(1), _honest(2), missing)
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert "missing trust" in rejected[0].reason


def test_an_update_scaled_1000x_is_rejected():
    replies, sent = _round(_honest(1), _honest(2), _honest(3), _scaled(_honest(4), 1000.0))
    accepted, rejected = validate_replies(replies, sent, SETTINGS)
    assert [r.site for r in rejected] == ["Center004"]
    assert "median" in rejected[0].reason and "vendor Siemens" in rejected[0].reason
    assert len(accepted) == 3


def test_a_scaled_update_is_caught_even_with_only_two_sites():
    # The site itself is left out of its median: with two sites the median would otherwise
    # be half the attacker's own norm.
    replies, sent = _round(_honest(1), _scaled(_honest(2), 1000.0))
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert [r.site for r in rejected] == ["Center002"]


def test_a_vendors_only_site_is_compared_with_all_other_sites():
    replies, sent = _round(
        _honest(1), _honest(2), _scaled(_honest(3), 1000.0), vendors=["Siemens", "Siemens", "GE"]
    )
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert [r.site for r in rejected] == ["Center003"]
    assert "all other sites" in rejected[0].reason


def test_sites_that_did_not_move_do_not_set_the_median():
    # A site with a spent privacy budget returns the global weights: norm 0.
    replies, sent = _round(_honest(1), dict(GLOBAL), _honest(3))
    accepted, rejected = validate_replies(replies, sent, SETTINGS)
    assert rejected == []
    assert len(accepted) == 3


def test_the_aggregate_after_rejection_equals_the_honest_sites_aggregate():
    poisoned = _honest(4)
    poisoned["trust"] = np.array([np.inf], np.float32)
    updates = [_honest(1), _honest(2), _honest(3)]
    replies, sent = _round(*updates, _scaled(_honest(5), 1000.0), poisoned)
    accepted, rejected = validate_replies(replies, sent, SETTINGS)
    assert sorted(r.site for r in rejected) == ["Center004", "Center005"]
    aggregate, _ = FedAvg().aggregate_train(1, accepted)
    honest, _ = FedAvg().aggregate_train(1, _round(*updates)[0])
    for key in GLOBAL:
        np.testing.assert_array_equal(aggregate[key].numpy(), honest[key].numpy())


def test_a_reply_from_a_node_that_was_not_asked_is_rejected():
    replies, sent = _round(_honest(1), _honest(2))
    del sent[2]
    _, rejected = validate_replies(replies, sent, SETTINGS)
    assert "did not ask" in rejected[0].reason


def test_a_norm_ratio_of_one_or_less_is_refused():
    with pytest.raises(ValueError, match="max_norm_ratio"):
        ValidationSettings(max_norm_ratio=1.0).validate()
