"""The ServerApp's round loop with the project's real ClientApp, in-process, on three small
centres: real local training, global evaluation, bitwise resume, a usable final model."""

import pytest
import torch

from federation.records import history_to_json
from server.rounds import run_federation
from simulations.checkpoint_evaluation import build_methods
from tests.builders import write_consortium
from tests.federation_fakes import (
    InProcessGrid,
    federation_config,
    simulation_node_configs,
    stopped_after,
)

client_app = pytest.importorskip("client.app").app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return [f"data.root={root}", "data.synthetic_preset=null", "data.val_fraction=0.2"]


def _run(output, data, rounds, *overrides, site=()):
    config = federation_config(
        output,
        *data,
        f"federation.num_rounds={rounds}",
        "federation.local_steps=1",
        *overrides,
    )
    # The sites compose the same config from the run config's overrides, as under Flower.
    site_overrides = " ".join(["model=tiny", "text=none", *data, *site])
    grid = InProcessGrid(client_app, simulation_node_configs(3), {"overrides": site_overrides})
    return run_federation(config, grid)


def test_real_sites_train_and_the_server_evaluates_globally(tmp_path, data):
    result = _run(
        tmp_path,
        data,
        1,
        "federation.global_evaluation=true",
        "federation.eval_splits=[test]",
        "federation.max_eval_items=2",
    )
    record = history_to_json(result.history)[0]
    assert record["errors"] == []
    assert sorted(record["sites"]) == ["Center001", "Center002", "Center003"]
    assert record["sites"]["Center001"]["vendor"] == "Siemens"
    assert record["global"]["test/images"] == 2
    assert 10 < record["global"]["test/psnr"] < 80
    # `cardiomm evaluate` and `cardiomm reconstruct` load the final model.
    (method,) = build_methods([str(result.final_checkpoint)], [], None)
    assert method.name == "cardiomm-fedavg"


def test_resume_with_real_sites_is_bitwise_equal(tmp_path, data):
    straight = _run(tmp_path / "straight", data, 4)
    with stopped_after(2):
        _run(tmp_path / "resumed", data, 4)
    resumed = _run(tmp_path / "resumed", data, 4, "federation.resume=true")
    assert resumed.rounds == [3, 4]
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key


class _GridWithDyingNode(InProcessGrid):
    """A node that answers round 1 and never again, as a site whose process died."""

    def __init__(self, *args, dying_node: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.dying_node = dying_node

    def push_messages(self, messages):
        messages = list(messages)
        for message in messages:
            config = message.content.get("config")
            if config is not None and int(config.get("server-round", 0)) >= 2:
                self.silent_nodes.add(self.dying_node)
        return super().push_messages(messages)


def test_an_unreadable_site_and_a_site_that_dies_leave_the_run_to_the_others(tmp_path, data):
    config = federation_config(
        tmp_path, *data, "federation.num_rounds=3", "federation.local_steps=1"
    )
    node_configs = [
        *simulation_node_configs(3),
        {"site-id": "Center009", "data-path": str(tmp_path / "unreadable")},
    ]
    site_overrides = " ".join(["model=tiny", "text=none", *data])
    dying = 1002  # the second node: Center002
    grid = _GridWithDyingNode(
        client_app, node_configs, {"overrides": site_overrides}, dying_node=dying
    )
    result = run_federation(config, grid)
    assert [record["round"] for record in history_to_json(result.history)] == [1, 2, 3]
    assert sorted(history_to_json(result.history)[0]["sites"]) == [
        "Center001",
        "Center002",
        "Center003",
    ]
    assert sorted(history_to_json(result.history)[2]["sites"]) == ["Center001", "Center003"]
    last_errors = " | ".join(
        error["reason"] for error in history_to_json(result.history)[2]["errors"]
    )
    assert "Center009" in last_errors and "unreadable is not a directory" in last_errors
    assert {"node-id": dying, "reason": "no reply before timeout"}.items() <= next(
        error for error in history_to_json(result.history)[2]["errors"] if error["node-id"] == dying
    ).items()
    assert result.final_checkpoint.is_file()


def test_sites_whose_own_file_asks_for_two_devices_train_data_parallel(tmp_path, data, monkeypatch):
    # train.devices is the site's: it comes from the operator's site file (tests'
    # operator_site_file takes the site-owned overrides), the batch from the coordinator.
    import cardiomm.train.loop as loop

    launched = []

    def spy(run):
        launched.append(run.config.devices)
        return launch(run)

    launch = loop.train_data_parallel
    monkeypatch.setattr(loop, "train_data_parallel", spy)
    site = ["train.devices=2", "train.distributed_backend=gloo", "train.batch_size=2"]
    result = _run(tmp_path, data, 1, site=[*site, "train.num_threads=1"])
    record = history_to_json(result.history)[0]
    assert record["errors"] == [] and record["rejected"] == []
    assert launched == [2, 2, 2]  # every site, over its two processes
    assert all(site["train"]["slices-seen"] == 2 for site in record["sites"].values())
