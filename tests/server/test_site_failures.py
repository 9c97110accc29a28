"""A site that fails or never answers is recorded, and the round completes without it."""

from flwr.app import MessageType

from federation.records import history_to_json
from server.rounds import run_federation
from tests.federation_fakes import (
    FIRST_NODE_ID,
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


def test_failing_site_is_recorded_and_the_round_goes_on(tmp_path):
    config = federation_config(tmp_path, "federation.num_rounds=2")
    grid = InProcessGrid(fake_site_app(failing_sites=["Center002"]), simulation_node_configs(3))
    result = run_federation(config, grid)
    assert result.rounds == [1, 2]
    for record in history_to_json(result.history):
        assert sorted(record["sites"]) == ["Center001", "Center003"]
        assert record["aggregation"]["train"] == "ok"
        train_errors = [error for error in record["errors"] if error["phase"] == "train"]
        assert train_errors == [
            {
                "phase": "train",
                "node-id": FIRST_NODE_ID + 1,
                "code": 1,
                "reason": "site Center002: no readable data",
            }
        ]
        # Aggregated over the two sites that trained (examples 4 and 12 per round).
        assert record["train"]["num-examples"] == 4 * 20 / 2 + 12 * 20 / 2


def test_a_site_silent_in_training_is_recorded_as_missing(tmp_path):
    config = federation_config(tmp_path, "federation.num_rounds=1")
    grid = InProcessGrid(
        fake_site_app(),
        simulation_node_configs(3),
        silent_nodes=[FIRST_NODE_ID + 2],
        silent_types=[MessageType.TRAIN, MessageType.EVALUATE],
    )
    record = history_to_json(run_federation(config, grid).history)[0]
    assert sorted(record["sites"]) == ["Center001", "Center002"]
    assert {
        "phase": "train",
        "node-id": FIRST_NODE_ID + 2,
        "code": -1,
        "reason": "no reply before timeout",
    } in record["errors"]


def test_round_without_any_site_keeps_the_previous_model(tmp_path):
    config = federation_config(tmp_path, "federation.num_rounds=1", "federation.min_sites=2")
    everyone = ["Center001", "Center002"]
    grid = InProcessGrid(fake_site_app(failing_sites=everyone), simulation_node_configs(2))
    result = run_federation(config, grid)
    record = history_to_json(result.history)[0]
    assert record["aggregation"]["train"] == "no site trained (2 failed, 0 refused)"
    assert record["sites"] == {}
    initial = run_federation(
        federation_config(tmp_path / "fresh", "federation.num_rounds=1"),
        InProcessGrid(fake_site_app(failing_sites=everyone), simulation_node_configs(2)),
    )
    for key, value in result.arrays.items():
        assert value.equal(initial.arrays[key])


def test_global_evaluation_without_data_is_turned_off(tmp_path):
    config = federation_config(
        tmp_path,
        "federation.num_rounds=1",
        "federation.global_evaluation=true",
        f"data.root={tmp_path / 'absent'}",
        "data.synthetic_preset=null",
    )
    result = run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(2)))
    record = history_to_json(result.history)[0]
    assert "global" not in record


def test_a_site_silent_in_the_roll_call_gets_no_training_and_is_asked_again(tmp_path):
    config = federation_config(tmp_path, "federation.num_rounds=2")
    grid = InProcessGrid(
        fake_site_app(), simulation_node_configs(3), silent_nodes=[FIRST_NODE_ID + 2]
    )
    history = history_to_json(run_federation(config, grid).history)
    for record in history:
        assert sorted(record["sites"]) == ["Center001", "Center002"]
        assert record["errors"] == [
            {
                "phase": "roll-call",
                "node-id": FIRST_NODE_ID + 2,
                "code": -1,
                "reason": "no reply before timeout",
            }
        ]
    trained = {int(m.metadata.dst_node_id) for m in grid.sent if m.metadata.message_type == "train"}
    assert FIRST_NODE_ID + 2 not in trained
