"""In a federation, a site sending a broken or hostile update is left out and named; the
global model is the one the honest sites make."""

import torch

from federation.records import history_to_json
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


def _nan(state):
    return {key: torch.full_like(value, float("nan")) for key, value in state.items()}


def _scaled(state):
    return {key: 1000.0 * value for key, value in state.items()}


def _run(tmp_path, sites, tamper=None, *overrides):
    config = federation_config(tmp_path, "federation.num_rounds=2", *overrides)
    grid = InProcessGrid(fake_site_app(tamper=tamper), simulation_node_configs(sites))
    return run_federation(config, grid)


def test_rejected_sites_are_named_with_the_reason_every_round(tmp_path):
    result = _run(tmp_path, 5, {"Center004": _nan, "Center005": _scaled})
    for record in history_to_json(result.history):
        reasons = {entry["site"]: entry["reason"] for entry in record["rejected"]}
        assert sorted(reasons) == ["Center004", "Center005"]
        assert "NaN" in reasons["Center004"]
        assert "median" in reasons["Center005"]
        assert record["aggregation"]["train"] == "ok"


def test_the_global_model_equals_the_honest_sites_federation(tmp_path):
    attacked = _run(tmp_path / "attacked", 5, {"Center004": _nan, "Center005": _scaled})
    honest = _run(tmp_path / "honest", 3)
    for key, value in honest.arrays.items():
        assert torch.equal(attacked.arrays[key], value), key


def test_without_validation_a_nan_site_poisons_the_model(tmp_path):
    result = _run(tmp_path, 3, {"Center003": _nan}, "federation.validation.enabled=false")
    assert any(torch.isnan(value).any() for value in result.arrays.values())


def test_too_few_accepted_updates_keep_the_previous_model(tmp_path):
    result = _run(
        tmp_path,
        3,
        {"Center003": _nan},
        "federation.validation.min_accepted=3",
        "federation.num_rounds=1",
    )
    record = history_to_json(result.history)[0]
    assert "fewer than federation.validation.min_accepted=3" in record["aggregation"]["train"]
    untouched = _run(
        tmp_path / "none", 2, {"Center001": _nan, "Center002": _nan}, "federation.num_rounds=1"
    )
    for key, value in untouched.arrays.items():
        assert torch.equal(result.arrays[key], value), key
