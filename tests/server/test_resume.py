"""Resume: a run interrupted after round 2 and resumed ends bitwise where an uninterrupted
one does, with FedAdam's server state checkpointed and restored."""

import numpy as np
import pytest
import torch

from federation.records import history_to_json
from server.checkpoints import load_round_checkpoint
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


def _run(output, rounds, *overrides):
    config = federation_config(output, f"federation.num_rounds={rounds}", *overrides)
    return run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))


@pytest.mark.parametrize("strategy", ["fedavg", "fedadam"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, strategy):
    # Sampling 2 of 3 sites per round also checks that resumed rounds sample the same sites.
    options = [f"strategy={strategy}", "federation.fraction_train=0.67"]
    straight = _run(tmp_path / "straight", 4, *options)
    first = _run(tmp_path / "resumed", 2, *options)
    assert first.rounds == [1, 2]
    resumed = _run(tmp_path / "resumed", 4, *options, "federation.resume=true")
    assert resumed.rounds == [3, 4]
    assert [record["round"] for record in history_to_json(resumed.history)] == [1, 2, 3, 4]
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key
    sites = [sorted(record["sites"]) for record in history_to_json(straight.history)]
    assert sites == [sorted(record["sites"]) for record in history_to_json(resumed.history)]


def test_fedadam_moments_are_checkpointed(tmp_path):
    _run(tmp_path, 2, "strategy=fedadam")
    saved = load_round_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert saved.strategy["class"] == "FedAdam"
    assert set(saved.strategy["m_t"]) == set(saved.arrays)
    assert all(value.abs().sum() > 0 for value in saved.strategy["v_t"].values())


def test_fedadam_state_is_restored_on_resume(tmp_path, monkeypatch):
    _run(tmp_path, 2, "strategy=fedadam")
    saved = load_round_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    restored = {}

    import server.rounds as rounds

    original = rounds.restore_strategy_state

    def spy(strategy, state):
        original(strategy, state)
        restored["m_t"] = dict(strategy.m_t)

    monkeypatch.setattr(rounds, "restore_strategy_state", spy)
    _run(tmp_path, 3, "strategy=fedadam", "federation.resume=true")
    for key, value in saved.strategy["m_t"].items():
        np.testing.assert_array_equal(restored["m_t"][key], value.numpy())


def test_resume_with_another_strategy_is_refused(tmp_path):
    _run(tmp_path, 1, "strategy=fedadam")
    with pytest.raises(ValueError, match="same strategy settings"):
        _run(tmp_path, 2, "strategy=fedavg", "federation.resume=true")


def test_completed_run_resumes_to_nothing_new(tmp_path):
    _run(tmp_path, 2)
    again = _run(tmp_path, 2, "federation.resume=true")
    assert again.rounds == []
    assert len(history_to_json(again.history)) == 2


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_intact_round(tmp_path, caplog):
    straight = _run(tmp_path / "straight", 3)
    _run(tmp_path / "resumed", 2)
    (tmp_path / "resumed" / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 100)
    resumed = _run(tmp_path / "resumed", 3, "federation.resume=true")
    assert resumed.rounds == [3]
    assert "resuming from" in caplog.text and "round-002.pt" in caplog.text
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key


def test_resume_with_another_model_names_the_differing_setting(tmp_path):
    _run(tmp_path, 1)
    with pytest.raises(ValueError, match=r"model\.num_cascades: checkpoint 2, this run 3"):
        _run(tmp_path, 2, "model.num_cascades=3", "federation.resume=true")
