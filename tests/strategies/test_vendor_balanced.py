"""Vendor-balanced averaging on hand-computed cases."""

import math

import numpy as np
import pytest
from flwr.app import Message
from flwr.serverapp.strategy import FedAvg

from federation.records import history_to_json
from strategies import VendorAwareFedAvg, vendor_balanced_weights
from tests.federation_fakes import federation_config
from tests.strategies.replies import train_reply

# The case: three sites of vendor A with 100 slices each, one of vendor B with 10.
VENDORS = ["A", "A", "A", "B"]
EXAMPLES = [100.0, 100.0, 100.0, 10.0]


def test_equal_weighting_gives_the_small_vendor_half_the_weight():
    weights = vendor_balanced_weights(VENDORS, EXAMPLES, "equal")
    assert weights == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])


def test_examples_weighting_is_plain_fedavg():
    weights = vendor_balanced_weights(VENDORS, EXAMPLES, "examples")
    assert weights == pytest.approx([100 / 310, 100 / 310, 100 / 310, 10 / 310])


def test_sqrt_weighting_sits_between_equal_and_fedavg():
    weights = vendor_balanced_weights(VENDORS, EXAMPLES, "sqrt")
    share_b = math.sqrt(10) / (math.sqrt(300) + math.sqrt(10))
    assert weights[3] == pytest.approx(share_b)
    assert weights[0] == pytest.approx((1 - share_b) / 3)


def test_sites_of_one_vendor_share_its_weight_by_examples():
    weights = vendor_balanced_weights(["A", "A", "B"], [30.0, 10.0, 5.0], "equal")
    assert weights == pytest.approx([0.375, 0.125, 0.5])


def test_a_vendor_with_no_examples_this_round_gets_nothing():
    weights = vendor_balanced_weights(["A", "B"], [50.0, 0.0], "equal")
    assert weights == [1.0, 0.0]


def test_an_unknown_weighting_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="equal, sqrt, examples"):
        vendor_balanced_weights(VENDORS, EXAMPLES, "median")


def _reply(vendor: str, examples: float, value: float) -> Message:
    return train_reply(
        f"{vendor}{value}", vendor, examples, {"weight": np.full(3, value, dtype=np.float32)}
    )


def test_the_strategy_averages_weights_with_vendor_balanced_weights():
    values = [1.0, 2.0, 3.0, 9.0]
    replies = [_reply(*site) for site in zip(VENDORS, EXAMPLES, values, strict=True)]
    strategy = VendorAwareFedAvg().set_aggregation(vendor_weighting="equal")
    arrays, _ = strategy.aggregate_train(1, replies)
    # (1 + 2 + 3) / 6 + 9 / 2 = 5.5; plain FedAvg would give (600 + 90) / 310 = 2.23.
    np.testing.assert_allclose(arrays["weight"].numpy(), 5.5, rtol=1e-6)
    assert arrays["weight"].numpy().dtype == np.float32


def test_examples_weighting_gives_flowers_fedavg_aggregate():
    values = [1.0, 2.0, 3.0, 9.0]
    ours, _ = VendorAwareFedAvg().aggregate_train(
        1, [_reply(*site) for site in zip(VENDORS, EXAMPLES, values, strict=True)]
    )
    flowers, _ = FedAvg().aggregate_train(
        1, [_reply(*site) for site in zip(VENDORS, EXAMPLES, values, strict=True)]
    )
    np.testing.assert_allclose(ours["weight"].numpy(), flowers["weight"].numpy(), rtol=1e-6)


def test_the_vendor_balanced_strategy_is_chosen_from_config(tmp_path):
    from server.settings import FederationSettings
    from strategies.factory import build_strategy

    config = federation_config(
        tmp_path, "strategy=vendor_balanced", "strategy.vendor_weighting=sqrt"
    )
    strategy = build_strategy(FederationSettings.from_config(config))
    assert isinstance(strategy, VendorAwareFedAvg)
    assert strategy.vendor_weighting == "sqrt"


def test_a_federation_runs_its_rounds_with_vendor_balanced_averaging(tmp_path):
    from server.rounds import run_federation
    from tests.federation_fakes import InProcessGrid, fake_site_app, simulation_node_configs

    config = federation_config(
        tmp_path, "strategy=vendor_balanced", "federation.num_rounds=2", "federation.local_steps=1"
    )
    result = run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))
    assert [record["round"] for record in history_to_json(result.history)] == [1, 2]
    assert all(record["errors"] == [] for record in history_to_json(result.history))
    assert result.final_checkpoint.is_file()
