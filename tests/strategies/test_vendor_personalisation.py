"""Personalised parameters stay per vendor; an unseen vendor gets the across-vendor average."""

import numpy as np
import pytest
from flwr.serverapp.strategy import FedAvg

from strategies.personalised_strategy import VendorPersonalisedStrategy
from strategies.vendor_personalisation import VendorPersonalisation, personalised_keys
from tests.strategies.replies import arrays, train_instruction, train_reply

KEYS = ["body.weight", "body.adapters.0.gamma", "head.data_consistency.step"]
PATTERNS = ["*.adapters.*", "*.data_consistency.*"]


def _state(value: float) -> dict[str, np.ndarray]:
    return {key: np.full(2, value, np.float32) for key in KEYS}


def _update(
    personalisation: VendorPersonalisation,
    sites: list[tuple[str, float, float]],
    server_round: int = 1,
):
    """sites: (vendor, examples, value); returns the new global arrays."""
    replies = [
        train_reply(f"site{node}", vendor, examples, _state(value), node_id=node)
        for node, (vendor, examples, value) in enumerate(sites, start=1)
    ]
    personalisation.learn_vendors(replies)
    # The shared part's aggregate does not matter here; give it a marker value.
    return personalisation.update(replies, arrays(_state(-1.0)), server_round)


def test_patterns_select_the_adapters_and_data_consistency_weights():
    assert personalised_keys(KEYS, PATTERNS) == KEYS[1:]


def test_a_pattern_that_matches_nothing_is_refused():
    with pytest.raises(ValueError, match=r"'\*\.norm\.\*' matches no parameter"):
        personalised_keys(KEYS, ["*.norm.*"])


def test_each_vendor_keeps_its_own_example_weighted_copy():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    _update(personalisation, [("Siemens", 10, 1.0), ("Siemens", 30, 3.0), ("GE", 5, 10.0)])
    assert personalisation.parts["Siemens"]["body.adapters.0.gamma"] == pytest.approx(2.5)
    assert personalisation.parts["GE"]["head.data_consistency.step"] == pytest.approx(10.0)
    assert "body.weight" not in personalisation.parts["GE"]


def test_the_global_model_holds_the_across_vendor_fallback_in_personal_parameters():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    new = _update(personalisation, [("Siemens", 10, 1.0), ("Siemens", 30, 3.0), ("GE", 5, 10.0)])
    # Vendors weighted equally: (2.5 + 10) / 2; the shared parameter is the strategy's.
    assert new["body.adapters.0.gamma"].numpy() == pytest.approx(6.25)
    assert new["body.weight"].numpy() == pytest.approx(-1.0)


def test_sites_receive_their_vendors_copy_and_an_unseen_vendor_the_fallback():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    new = _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)])
    messages = [train_instruction(node, new) for node in (1, 2, 99)]  # node 99: never replied
    personalisation.personalise(messages)
    received = [message.content["arrays"]["body.adapters.0.gamma"].numpy() for message in messages]
    assert received[0] == pytest.approx(1.0)
    assert received[1] == pytest.approx(5.0)
    assert received[2] == pytest.approx(3.0)
    shared = [message.content["arrays"]["body.weight"].numpy() for message in messages]
    assert all(value == pytest.approx(-1.0) for value in shared)


def test_a_vendor_without_replies_this_round_keeps_its_copy():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)])
    _update(personalisation, [("Siemens", 10, 2.0)])
    assert personalisation.parts["GE"]["body.adapters.0.gamma"] == pytest.approx(5.0)
    assert personalisation.parts["Siemens"]["body.adapters.0.gamma"] == pytest.approx(2.0)


def test_the_state_survives_a_round_trip():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)])
    restored = VendorPersonalisation(PATTERNS, "equal")
    restored.restore(personalisation.state())
    assert restored.node_vendors == personalisation.node_vendors
    assert restored.vendor_examples == personalisation.vendor_examples
    for vendor, part in personalisation.parts.items():
        for key, value in part.items():
            np.testing.assert_array_equal(restored.parts[vendor][key], value)


def test_restoring_with_other_patterns_is_refused():
    personalisation = VendorPersonalisation(PATTERNS, "equal")
    with pytest.raises(ValueError, match=r"same strategy\.personalised"):
        VendorPersonalisation(["*.adapters.*"]).restore(personalisation.state())


def test_messages_sharing_one_content_each_get_their_own_vendors_copy():
    # Flower's configure_train builds every message around the same RecordDict.
    from flwr.app import RecordDict

    from tests.federation_fakes import make_message

    personalisation = VendorPersonalisation(PATTERNS, "equal")
    new = _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)])
    shared = RecordDict({"arrays": new})
    messages = [make_message(shared, "train", dst_node_id=node) for node in (1, 2)]
    personalisation.personalise(messages)
    received = [message.content["arrays"]["body.adapters.0.gamma"].numpy() for message in messages]
    assert received[0] == pytest.approx(1.0)
    assert received[1] == pytest.approx(5.0)


def test_rounds_before_the_first_personalised_round_share_everything():
    personalisation = VendorPersonalisation(PATTERNS, "equal", from_round=3)
    new = _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)], server_round=2)
    assert personalisation.parts == {}
    assert new["body.adapters.0.gamma"].numpy() == pytest.approx(-1.0)


def test_the_first_personalised_round_starts_the_vendor_copies():
    personalisation = VendorPersonalisation(PATTERNS, "equal", from_round=3)
    _update(personalisation, [("Siemens", 10, 1.0), ("GE", 10, 5.0)], server_round=3)
    assert personalisation.parts["GE"]["body.adapters.0.gamma"] == pytest.approx(5.0)


def test_a_resume_with_another_first_personalised_round_is_refused():
    personalisation = VendorPersonalisation(PATTERNS, "equal", from_round=3)
    with pytest.raises(ValueError, match="personalise_from_round"):
        VendorPersonalisation(PATTERNS, "equal", from_round=1).restore(personalisation.state())


@pytest.mark.parametrize("from_round", [0, -1, True, 1.5])
def test_a_first_personalised_round_below_one_is_refused(from_round):
    with pytest.raises(ValueError, match="personalise_from_round"):
        VendorPersonalisation(PATTERNS, "equal", from_round=from_round)


def test_the_personalisation_wrapper_keeps_the_wrapped_aggregate_and_adds_the_fallback():
    sites = [("Siemens", 10, 1.0), ("Siemens", 30, 3.0), ("GE", 10, 10.0)]
    replies = [
        train_reply(f"site{node}", vendor, examples, _state(value), node_id=node)
        for node, (vendor, examples, value) in enumerate(sites, start=1)
    ]
    wrapped = VendorPersonalisedStrategy(FedAvg(), VendorPersonalisation(PATTERNS, "equal"))
    new, metrics = wrapped.aggregate_train(1, replies)
    plain, plain_metrics = FedAvg().aggregate_train(1, replies)
    # The shared parameter is FedAvg's own mean; the personalised ones the vendors' average.
    np.testing.assert_array_equal(new["body.weight"].numpy(), plain["body.weight"].numpy())
    np.testing.assert_allclose(new["body.adapters.0.gamma"].numpy(), (2.5 + 10.0) / 2)
    assert dict(metrics) == dict(plain_metrics)
    assert sorted(wrapped.personalisation.parts) == ["GE", "Siemens"]
