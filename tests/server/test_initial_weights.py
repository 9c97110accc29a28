"""Initial global weights: seeded fresh weights, or a given CardioMM checkpoint."""

import pytest
import torch

from cardiomm.model.checkpoint import read_checkpoint
from federation.array_packing import received_weights
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


def _first_sent(output, *overrides):
    grid = InProcessGrid(fake_site_app(), simulation_node_configs(2))
    result = run_federation(federation_config(output, "federation.num_rounds=1", *overrides), grid)
    first_train = next(m for m in grid.sent if m.metadata.message_type == "train")
    sent = received_weights(first_train.content)[0]
    return {key: torch.from_numpy(value.copy()) for key, value in sent.items()}, result


def test_fresh_weights_depend_on_the_seed_only(tmp_path):
    first, _ = _first_sent(tmp_path / "a")
    again, _ = _first_sent(tmp_path / "b")
    other, _ = _first_sent(tmp_path / "c", "seed=1")
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_initial_checkpoint_is_sent_in_round_one(tmp_path):
    _, previous = _first_sent(tmp_path / "a")
    sent, _ = _first_sent(
        tmp_path / "b", f"federation.initial_checkpoint={previous.final_checkpoint}"
    )
    weights = read_checkpoint(previous.final_checkpoint)["state_dict"]
    assert all(torch.equal(sent[key], weights[key]) for key in weights)


def test_initial_checkpoint_of_another_model_is_refused(tmp_path):
    _, previous = _first_sent(tmp_path / "a")
    with pytest.raises(ValueError, match="do not fit the configured model"):
        _first_sent(
            tmp_path / "b",
            "model=small",
            f"federation.initial_checkpoint={previous.final_checkpoint}",
        )
