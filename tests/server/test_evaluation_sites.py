"""Evaluation-only sites: never trained, they score the global model on all of their data."""

import torch

from federation.records import history_from_json, history_to_json
from server.rounds import run_federation
from server.tracking import round_metrics
from tests.federation_fakes import (
    FIRST_NODE_ID,
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)

EVALUATION_NODE = FIRST_NODE_ID + 3  # Center004
GROUP = "cine.short-axis.Uniform8"


def _run(output, *overrides, evaluation_sites=("Center004",), nodes=4):
    grid = InProcessGrid(
        fake_site_app(evaluation_sites=evaluation_sites), simulation_node_configs(nodes)
    )
    options = ["federation.num_rounds=3", "federation.local_steps=2", *overrides]
    return run_federation(federation_config(output, *options), grid), grid


def _types_sent_to(grid, node):
    return [m.metadata.message_type for m in grid.sent if m.metadata.dst_node_id == node]


def test_an_evaluation_only_site_is_never_sent_training(tmp_path):
    _, grid = _run(tmp_path)
    assert _types_sent_to(grid, EVALUATION_NODE) == ["query", "evaluate", "evaluate", "evaluate"]


def test_training_is_that_of_the_training_sites_alone_bit_for_bit(tmp_path):
    with_evaluation, _ = _run(tmp_path / "with")
    alone, _ = _run(tmp_path / "alone", evaluation_sites=(), nodes=3)
    for key, value in alone.arrays.items():
        assert torch.equal(with_evaluation.arrays[key], value), key


def test_each_round_records_the_evaluation_sites_scores_overall_and_per_group(tmp_path):
    result, _ = _run(tmp_path)
    for record in result.history:
        scores = record.zero_shot["Center004"]
        assert scores["num-examples"] == 4.0
        assert scores[f"psnr/{GROUP}"] == scores["psnr"] + 4
        assert set(record.sites) == {"Center001", "Center002", "Center003"}
        assert record.timing["zero-shot-seconds"] >= 0.0
    # The fake site's PSNR depends on the weights it is sent: each round's model is scored.
    assert len({record.zero_shot["Center004"]["psnr"] for record in result.history}) == 3


def test_zero_shot_every_n_rounds_and_always_after_the_last(tmp_path):
    result, grid = _run(tmp_path, "federation.zero_shot_every=2")
    assert [bool(record.zero_shot) for record in result.history] == [False, True, True]
    assert _types_sent_to(grid, EVALUATION_NODE).count("evaluate") == 2


def test_zero_shot_scores_survive_the_history_file_and_go_to_mlflow_by_site(tmp_path):
    result, _ = _run(tmp_path)
    again = history_from_json(history_to_json(result.history))
    assert again[0].zero_shot == result.history[0].zero_shot
    metrics = round_metrics(result.history[0])
    assert metrics["zero-shot/Center004/psnr"] == result.history[0].zero_shot["Center004"]["psnr"]
    assert f"zero-shot/Center004/images/{GROUP}" in metrics


def test_a_federation_without_evaluation_sites_records_no_zero_shot_phase(tmp_path):
    result, _ = _run(tmp_path, evaluation_sites=(), nodes=3)
    assert all(record.zero_shot == {} for record in result.history)
    assert "zero-shot" not in history_to_json(result.history)[0]


def test_under_secure_aggregation_an_evaluation_site_is_left_out_of_the_secure_sum(tmp_path):
    from client.secure_aggregation_mod import secure_aggregation_mod
    from server.secure_rounds import run_secure_federation

    app = fake_site_app(evaluation_sites=("Center004",))
    grid = InProcessGrid(
        lambda msg, context: secure_aggregation_mod(msg, context, app), simulation_node_configs(4)
    )
    config = federation_config(
        tmp_path,
        "federation.num_rounds=1",
        "federation.local_steps=2",
        "privacy=secagg",
        "federation.validation.enabled=false",
    )
    record = run_secure_federation(config, grid).history[0]
    assert record.secure_aggregation["sites"] == ["Center001", "Center002", "Center003"]
    assert "Center004" in record.zero_shot
    assert "train" not in _types_sent_to(grid, EVALUATION_NODE)
