"""The ServerApp entry point composes configs/federation.yaml from the run config."""

from flwr.app import Context, RecordDict

from federation.config import compose_run_config
from server.app import app
from tests.federation_fakes import InProcessGrid, fake_site_app, simulation_node_configs


def test_run_config_overrides_reach_the_composed_config():
    config = compose_run_config({"overrides": "strategy=fedprox federation.num_rounds=5"})
    assert config.strategy.name == "fedprox"
    assert config.federation.num_rounds == 5


def test_server_app_runs_the_federation(tmp_path):
    overrides = (
        f"model=tiny text=none output_dir={tmp_path} federation.num_rounds=1 "
        "federation.global_evaluation=false tracking.enabled=false"
    )
    context = Context(
        run_id=7, node_id=1, node_config={}, state=RecordDict(), run_config={"overrides": overrides}
    )
    app(InProcessGrid(fake_site_app(), simulation_node_configs(2)), context)
    assert (tmp_path / "checkpoints" / "round-001.pt").is_file()
    assert (tmp_path / "checkpoints" / "final.pt").is_file()
