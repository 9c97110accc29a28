"""Strategies from config: FedProx sends proximal-mu, FedAdam keeps the network's dtypes."""

import math

import pytest
import torch
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from server.rounds import run_federation
from server.settings import FederationSettings
from strategies.factory import build_strategy, nan_aware_mean
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


@pytest.mark.parametrize(
    ("name", "kind"), [("fedavg", FedAvg), ("fedprox", FedProx), ("fedadam", FedAdam)]
)
def test_strategy_is_built_from_config(tmp_path, name, kind):
    config = federation_config(tmp_path, f"strategy={name}", "federation.min_sites=3")
    strategy = build_strategy(FederationSettings.from_config(config))
    assert type(strategy) is kind
    assert strategy.min_train_nodes == 3


def test_unknown_reducer_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"strategy\.reducer"):
        FederationSettings.from_config(federation_config(tmp_path, "strategy.reducer=krum"))


def test_fedprox_sends_proximal_mu(tmp_path):
    config = federation_config(
        tmp_path, "strategy=fedprox", "strategy.proximal_mu=0.25", "federation.num_rounds=1"
    )
    grid = InProcessGrid(fake_site_app(), simulation_node_configs(3))
    run_federation(config, grid)
    configs = grid.sent_configs()
    assert len(configs) == 3
    assert all(float(config["proximal-mu"]) == 0.25 for config in configs)


def test_fedadam_global_model_keeps_float32(tmp_path):
    config = federation_config(tmp_path, "strategy=fedadam", "federation.num_rounds=2")
    result = run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))
    assert {value.dtype for value in result.arrays.values()} == {torch.float32}


def test_nan_aware_mean_skips_nan_and_empty_sites():
    replies = [
        RecordDict({"metrics": MetricRecord({"num-examples": 2.0, "psnr": 30.0})}),
        RecordDict({"metrics": MetricRecord({"num-examples": 6.0, "psnr": float("nan")})}),
        RecordDict({"metrics": MetricRecord({"num-examples": 0.0, "psnr": 99.0})}),
    ]
    mean = nan_aware_mean(replies, "num-examples")
    assert mean["psnr"] == 30.0
    assert mean["num-examples"] == 8.0
    nothing = nan_aware_mean(replies[2:], "num-examples")
    assert math.isnan(nothing["psnr"])
