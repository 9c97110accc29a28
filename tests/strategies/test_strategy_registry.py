"""A new strategy is one module: it registers a builder, and the factory, the settings, the
round loop and the checkpoints take it from there (no edit of server/ or of the factory).

The toy strategy here moves the global model only part of the way to the sites' mean (a
server step) and counts its steps as server state.
"""

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from server.checkpoints import load_round_checkpoint
from server.model import GlobalModel
from server.rounds import run_federation
from server.settings import FederationSettings
from strategies.factory import build_strategy
from strategies.registry import STRATEGY_BUILDERS, register_strategy, strategy_names
from strategies.settings import StrategySettings
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
    stopped_after,
)

TOY = "partway"
TOY_STEP = "++strategy.server_step=0.25"  # the toy's own key, read by its builder


class PartwayFedAvg(FedAvg):
    """FedAvg whose new model is ``current + step * (mean - current)``."""

    def __init__(self, step: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.steps_taken = 0
        self.current_arrays = ArrayRecord()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        mean, metrics = super().aggregate_train(server_round, replies)
        if mean is None:
            return None, metrics
        self.steps_taken += 1
        moved = {}
        for key, array in mean.items():
            current, mean_value = self.current_arrays[key].numpy(), array.numpy()
            step = current + self.step * (mean_value - current)
            moved[key] = Array(np.asarray(step, dtype=mean_value.dtype))
        return ArrayRecord(moved), metrics

    def server_state(self) -> dict[str, int]:
        return {"steps_taken": self.steps_taken}

    def restore_server_state(self, state: dict[str, int]) -> None:
        self.steps_taken = int(state["steps_taken"])


def build_partway(settings: StrategySettings, common: dict[str, Any]) -> PartwayFedAvg:
    return PartwayFedAvg(float(settings.option("server_step", 0.5)), **common)


@pytest.fixture
def toy_strategy():
    register_strategy(TOY)(build_partway)
    yield TOY
    STRATEGY_BUILDERS.pop(TOY)


def _config(tmp_path, *overrides):
    return federation_config(tmp_path, f"strategy.server_optimizer={TOY}", TOY_STEP, *overrides)


def _run(output, *overrides, rounds=1):
    config = federation_config(output, f"federation.num_rounds={rounds}", *overrides)
    return run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))


def test_a_registered_strategy_is_a_valid_server_optimizer(toy_strategy):
    assert toy_strategy in strategy_names()


def test_the_factory_builds_a_registered_strategy_with_its_own_setting(tmp_path, toy_strategy):
    strategy = build_strategy(FederationSettings.from_config(_config(tmp_path)))
    assert type(strategy) is PartwayFedAvg
    assert strategy.step == 0.25
    assert strategy.min_train_nodes == 2  # the common sampling arguments reached it


def test_a_round_aggregates_through_the_registered_strategy(tmp_path, toy_strategy):
    initial = GlobalModel(federation_config(tmp_path / "initial")).state_dict()
    fedavg = _run(tmp_path / "fedavg")
    partway = _run(tmp_path / "partway", f"strategy.server_optimizer={TOY}", TOY_STEP)
    moved = [key for key, value in initial.items() if value.is_floating_point()]
    assert moved
    for key in moved:
        # The sites train alike in both runs (their steps depend only on what they were sent).
        expected = initial[key] + 0.25 * (fedavg.arrays[key] - initial[key])
        torch.testing.assert_close(partway.arrays[key], expected)
    saved = load_round_checkpoint(tmp_path / "partway" / "checkpoints" / "latest.pt")
    assert saved.strategy["class"] == "PartwayFedAvg"
    assert saved.strategy["server_state"] == {"steps_taken": 1}


def test_a_strategy_without_vendor_aware_aggregation_refuses_vendor_weights(tmp_path, toy_strategy):
    settings = FederationSettings.from_config(_config(tmp_path, "strategy.vendor_weighting=equal"))
    with pytest.raises(ValueError, match=r"strategy\.server_optimizer=partway builds"):
        build_strategy(settings)


def test_a_name_registered_twice_is_refused(toy_strategy):
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy(TOY)(lambda settings, common: FedAvg(**common))


def test_an_unregistered_name_lists_the_registered_ones(tmp_path):
    with pytest.raises(ValueError, match=r"one of none, fedadam, fedyogi.*got 'partway'"):
        FederationSettings.from_config(_config(tmp_path))


def test_the_server_state_of_a_registered_strategy_survives_a_resume(tmp_path, toy_strategy):
    options = (f"strategy.server_optimizer={TOY}", TOY_STEP)
    with stopped_after(2):
        _run(tmp_path, *options, rounds=3)
    _run(tmp_path, *options, "federation.resume=true", rounds=3)
    saved = load_round_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert saved.server_round == 3
    assert saved.strategy["server_state"] == {"steps_taken": 3}
