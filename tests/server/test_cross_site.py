"""The cross-site matrix: every model of a run, scored at every site that allows it."""

import csv

import pytest
import torch

from cardiomm.model.checkpoint import save_checkpoint
from federation.records import RoundRecord
from server.cross_site import best_validation_round
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)

SITES = ["Center001", "Center002", "Center003", "Center004"]
PNG = b"\x89PNG"


def _run(output, *overrides, app=None, tracking=False):
    app = app or fake_site_app(evaluation_sites=["Center004"])
    options = [
        "federation.num_rounds=2",
        "federation.local_steps=1",
        "federation.cross_site.enabled=true",
        *overrides,
    ]
    config = federation_config(output, *options, tracking=tracking)
    return run_federation(config, InProcessGrid(app, simulation_node_configs(4)))


def _matrix(output):
    with open(output / "cross_site.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_final_model_is_scored_at_every_training_and_evaluation_site(tmp_path):
    _run(tmp_path)
    rows = [row for row in _matrix(tmp_path) if row["model"] == "global"]
    assert [row["site"] for row in rows] == SITES
    assert {row["status"] for row in rows} == {"ok"}
    assert [row["role"] for row in rows] == ["train", "train", "train", "evaluate"]
    assert (tmp_path / "cross_site.png").read_bytes().startswith(PNG)


def test_a_site_that_declines_has_its_cells_marked_declined_and_the_run_completes(tmp_path):
    app = fake_site_app(evaluation_sites=["Center004"], declining_sites=["Center002"])
    result = _run(tmp_path, app=app)
    declined = [row for row in _matrix(tmp_path) if row["site"] == "Center002"]
    assert {row["status"] for row in declined} == {"declined"}
    assert declined[0]["psnr"] == "nan" and "declines" in declined[0]["reason"]
    assert result.rounds == [1, 2]


def test_each_vendors_personalised_variant_is_a_model_of_the_matrix(tmp_path):
    app = fake_site_app(
        evaluation_sites=["Center004"], vendors={"Center001": "GE", "Center002": "Siemens"}
    )
    _run(
        tmp_path,
        "strategy=vendor_personalised",
        "strategy.personalised=[*.data_consistency.*]",
        app=app,
    )
    models = list(dict.fromkeys(row["model"] for row in _matrix(tmp_path)))
    assert models[0] == "global"
    assert {"global+GE", "global+Siemens"} <= set(models)


def test_a_checkpoint_the_coordinator_names_joins_the_matrix(tmp_path):
    from cardiomm.model.factory import network_from_config

    network, _ = network_from_config(federation_config(tmp_path / "model"))
    path = save_checkpoint(tmp_path / "local.pt", network, None, 0, extra={})
    _run(tmp_path / "run", f"++federation.cross_site.models={{local-Center001:{path}}}")
    models = {row["model"] for row in _matrix(tmp_path / "run")}
    assert "local-Center001" in models


def test_a_named_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    from cardiomm.model.factory import network_from_config

    other = federation_config(tmp_path / "model", "model.num_cascades=3")
    network, _ = network_from_config(other)
    path = save_checkpoint(tmp_path / "other.pt", network, None, 0, extra={})
    with pytest.raises(ValueError, match=r"federation\.cross_site\.models\.other"):
        _run(tmp_path / "run", f"++federation.cross_site.models={{other:{path}}}")


def test_a_named_checkpoint_that_cannot_be_scored_stops_the_run_before_any_round(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    models = f"++federation.cross_site.models={{bad:{tmp_path / 'bad.pt'}}}"
    with pytest.raises(ValueError, match=r"cross_site\.models\.bad: .*not a readable checkpoint"):
        _run(tmp_path / "run", models)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained first


def test_the_matrix_can_be_made_later_by_resuming_a_finished_run(tmp_path):
    first = _run(tmp_path, "federation.cross_site.enabled=false")
    assert not (tmp_path / "cross_site.csv").exists()
    again = _run(tmp_path, "federation.resume=true")
    assert again.rounds == []  # nothing trained again
    assert [row["site"] for row in _matrix(tmp_path) if row["model"] == "global"] == SITES
    for key, value in first.arrays.items():
        assert torch.equal(again.arrays[key], value)


def test_the_matrix_goes_to_mlflow_by_model_site_and_metric(tmp_path):
    from mlflow.tracking import MlflowClient

    result = _run(tmp_path, tracking=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics = client.get_run(result.tracking_run_id).data.metrics
    assert "cross-site/global/Center004/psnr" in metrics
    artifacts = {item.path for item in client.list_artifacts(result.tracking_run_id, "cross-site")}
    assert artifacts == {"cross-site/cross_site.csv", "cross-site/cross_site.png"}


def test_best_validation_round_is_the_highest_mean_validation_psnr_earliest_on_ties():
    history = [
        RoundRecord(round=1, evaluate={"psnr": 30.0}),
        RoundRecord(round=2, evaluate={"psnr": 31.0}),
        RoundRecord(round=3, evaluate={"psnr": 31.0}),
        RoundRecord(round=4, evaluate={"psnr": float("nan")}),
    ]
    assert best_validation_round(history) == 2
    assert best_validation_round([RoundRecord(round=1)]) is None
