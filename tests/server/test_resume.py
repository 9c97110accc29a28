"""Resume: a run interrupted after round 2 and resumed ends bitwise where an uninterrupted
one does, with FedAdam's server state checkpointed and restored; a resume that would change
the training recipe (seed, local steps, rounds, learning rate, masks, split, strategy,
model...) is refused, naming each setting with its old and new value."""

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
    stopped_after,
)


def _run(output, rounds, *overrides):
    config = federation_config(output, f"federation.num_rounds={rounds}", *overrides)
    return run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))


@pytest.mark.parametrize("strategy", ["fedavg", "fedadam"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, strategy):
    # Sampling 2 of 3 sites per round also checks that resumed rounds sample the same sites.
    options = [f"strategy={strategy}", "federation.fraction_train=0.67"]
    straight = _run(tmp_path / "straight", 4, *options)
    with stopped_after(2):
        _run(tmp_path / "resumed", 4, *options)
    latest = tmp_path / "resumed" / "checkpoints" / "latest.pt"
    assert load_round_checkpoint(latest).server_round == 2
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
    with stopped_after(2):
        _run(tmp_path, 3, "strategy=fedadam")
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
    with stopped_after(1):
        _run(tmp_path, 2, "strategy=fedadam")
    with pytest.raises(ValueError, match=r"strategy\.server_optimizer: checkpoint 'fedadam'"):
        _run(tmp_path, 2, "strategy=fedavg", "federation.resume=true")


def test_completed_run_resumes_to_nothing_new(tmp_path):
    _run(tmp_path, 2)
    again = _run(tmp_path, 2, "federation.resume=true")
    assert again.rounds == []
    assert len(history_to_json(again.history)) == 2


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_intact_round(tmp_path, caplog):
    straight = _run(tmp_path / "straight", 3)
    with stopped_after(2):
        _run(tmp_path / "resumed", 3)
    (tmp_path / "resumed" / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 100)
    resumed = _run(tmp_path / "resumed", 3, "federation.resume=true")
    assert resumed.rounds == [3]
    assert "resuming from" in caplog.text and "round-002.pt" in caplog.text
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key


def test_resume_with_another_model_names_the_differing_setting(tmp_path):
    with stopped_after(1):
        _run(tmp_path, 2)
    with pytest.raises(ValueError, match=r"model\.num_cascades: checkpoint 2, this run 3"):
        _run(tmp_path, 2, "model.num_cascades=3", "federation.resume=true")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("seed=1", "seed: checkpoint 0, this run 1"),
        ("federation.local_steps=3", "federation.local_steps: checkpoint 2, this run 3"),
        ("train.learning_rate=0.001", "train.learning_rate: checkpoint 0.0002, this run 0.001"),
        ("train.batch_size=2", "train.batch_size: checkpoint 1, this run 2"),
        ("masks.accelerations=[4]", "masks.accelerations: checkpoint [4, 8, 16, 24], this run [4]"),
        ("data.val_fraction=0.3", "data.val_fraction: checkpoint 0.1, this run 0.3"),
        ("federation.fraction_train=0.67", "federation.fraction_train: checkpoint 1.0"),
        ("privacy=dp_sgd", "privacy.dp_sgd.enabled: checkpoint False, this run True"),
    ],
)
def test_resume_with_another_recipe_is_refused_naming_the_setting(tmp_path, override, named):
    with stopped_after(1):
        _run(tmp_path, 2, "federation.local_steps=2")
    with pytest.raises(ValueError, match="another training recipe") as refused:
        _run(tmp_path, 2, "federation.local_steps=2", override, "federation.resume=true")
    assert named in str(refused.value)


def test_a_refused_resume_names_every_differing_setting(tmp_path):
    with stopped_after(1):
        _run(tmp_path, 2)
    with pytest.raises(ValueError) as refused:
        _run(tmp_path, 2, "seed=3", "federation.local_steps=5", "federation.resume=true")
    message = str(refused.value)
    assert "seed: checkpoint 0, this run 3" in message
    assert "train.seed: checkpoint 0, this run 3" in message
    assert "federation.local_steps: checkpoint 20, this run 5" in message


@pytest.mark.parametrize("rounds", [3, 1])
def test_resume_with_other_rounds_is_refused_saying_what_it_means(tmp_path, rounds):
    _run(tmp_path, 2)  # finished: 2 of 2 rounds
    with pytest.raises(ValueError) as refused:
        _run(tmp_path, rounds, "federation.resume=true")
    message = str(refused.value)
    assert f"federation.num_rounds: checkpoint 2, this run {rounds}" in message
    assert "planned for 2 rounds" in message
    assert f"federation.initial_checkpoint={tmp_path / 'checkpoints' / 'final.pt'}" in message


def test_a_refused_resume_leaves_the_checkpoints_as_they_were(tmp_path):
    _run(tmp_path, 2)
    files = sorted((tmp_path / "checkpoints").iterdir())
    before = {path: path.read_bytes() for path in files}
    with pytest.raises(ValueError, match="another training recipe"):
        _run(tmp_path, 3, "federation.resume=true")
    assert {path: path.read_bytes() for path in files} == before


@pytest.mark.parametrize(
    "override",
    [
        "federation.timeout=10",
        "train.num_threads=1",
        "federation.cross_site.enabled=true",
        "tracking.experiment=elsewhere",
        "method=renamed",
    ],
)
def test_resume_may_change_how_the_run_runs_and_reports(tmp_path, override):
    with stopped_after(1):
        _run(tmp_path, 2)
    assert _run(tmp_path, 2, override, "federation.resume=true").rounds == [2]
