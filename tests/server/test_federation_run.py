"""A small federation (3 fake sites) over the in-process grid: rounds, checkpoints, MLflow."""

import json
import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from cardiomm.model.checkpoint import network_from_checkpoint, read_checkpoint
from federation.mlflow_store import embedded_uri
from federation.records import history_to_json
from server.checkpoints import load_round_checkpoint
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)

ROUNDS = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    output = tmp_path_factory.mktemp("federation")
    config = federation_config(
        output, f"federation.num_rounds={ROUNDS}", "federation.local_steps=2", tracking=True
    )
    grid = InProcessGrid(fake_site_app(), simulation_node_configs(3))
    return output, grid, run_federation(config, grid)


def test_runs_every_round_with_every_site(run):
    _, _, result = run
    assert result.rounds == [1, 2]
    assert [record["round"] for record in history_to_json(result.history)] == [1, 2]
    for record in history_to_json(result.history):
        assert sorted(record["sites"]) == ["Center001", "Center002", "Center003"]
        assert record["errors"] == []
        assert record["aggregation"] == {"train": "ok", "evaluate": "ok"}
        assert record["sites"]["Center001"]["bad-files"] == []


def test_train_config_follows_the_protocol(run):
    _, grid, _ = run
    configs = grid.sent_configs()
    assert len(configs) == 3 * ROUNDS
    assert sorted(int(config["server-round"]) for config in configs) == [1, 1, 1, 2, 2, 2]
    for config in configs:
        assert int(config["local-steps"]) == 2
        assert int(config["seed"]) == 0
        assert float(config["proximal-mu"]) == 0.0
        assert float(config["learning-rate"]) == pytest.approx(2e-4)


def test_aggregated_metrics_skip_sites_without_validation(run):
    _, _, result = run
    record = history_to_json(result.history)[-1]
    # Weighted by examples (Center001: 4, Center002: 8); Center003 reports NaN, left out.
    assert record["train"]["val-psnr"] == pytest.approx((31 * 4 + 32 * 8) / 12)
    assert record["train"]["num-examples"] == 4 + 8 + 12
    assert record["evaluate"]["psnr"] == pytest.approx((31 * 1 + 32 * 2) / 3)
    assert math.isnan(record["sites"]["Center003"]["evaluate"]["psnr"])


def test_timing_and_traffic_are_recorded(run):
    _, _, result = run
    record = history_to_json(result.history)[0]
    size = sum(value.numel() * value.element_size() for value in result.arrays.values())
    assert record["traffic"]["bytes-per-site"] == size
    assert record["traffic"]["bytes-sent"] == 3 * size
    assert record["sites"]["Center001"]["bytes-received"] == size
    timing = record["timing"]
    assert timing["round-seconds"] >= timing["client-train-seconds-max"] > 0
    assert timing["client-train-seconds-sum"] >= timing["client-train-seconds-max"]
    assert timing["overhead-seconds"] == pytest.approx(
        timing["round-seconds"]
        - timing["client-train-seconds-max"]
        - timing["client-eval-seconds-max"]
    )


def test_checkpoints_every_round_and_a_loadable_final_model(run):
    output, _, result = run
    directory = output / "checkpoints"
    for server_round in (1, 2):
        saved = load_round_checkpoint(directory / f"round-{server_round:03d}.pt")
        assert saved.server_round == server_round
        assert len(saved.history) == server_round
        assert "federation:" in saved.config_yaml
    latest = load_round_checkpoint(directory / "latest.pt")
    assert latest.server_round == ROUNDS
    assert all(torch.equal(latest.arrays[key], result.arrays[key]) for key in result.arrays)
    final = read_checkpoint(result.final_checkpoint)
    assert final["extra"]["rounds"] == ROUNDS
    assert final["extra"]["method"] == "cardiomm-fedavg"
    assert final["extra"]["remove_oversampling"] is True
    network = network_from_checkpoint(final)
    assert all(torch.equal(network.state_dict()[key], result.arrays[key]) for key in result.arrays)
    assert json.loads(result.history_path.read_text())[-1]["round"] == ROUNDS


def test_mlflow_run_holds_params_metrics_and_artifacts(run):
    output, _, result = run
    client = MlflowClient(tracking_uri=embedded_uri(output))
    mlflow_run = client.get_run(result.tracking_run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["strategy.name"] == "fedavg"
    assert mlflow_run.data.params["federation.num_rounds"] == str(ROUNDS)
    metrics = mlflow_run.data.metrics
    for key in (
        "train/loss",
        "evaluate/psnr",
        "site/Center001/loss",
        "site/Center002/eval-psnr",
        "site/Center001/bytes-sent",
        "timing/overhead-seconds",
        "errors",
    ):
        assert key in metrics, key
    assert len(client.get_metric_history(result.tracking_run_id, "train/loss")) == ROUNDS
    artifacts = {item.path for item in client.list_artifacts(result.tracking_run_id)}
    assert {"checkpoints", "model", "history.json", "config.yaml"} <= artifacts
    rounds = {item.path for item in client.list_artifacts(result.tracking_run_id, "checkpoints")}
    assert {"checkpoints/round-001.pt", "checkpoints/round-002.pt"} <= rounds
