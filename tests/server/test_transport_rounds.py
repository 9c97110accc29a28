"""Lighter transport through whole rounds with the project's real ClientApp, in-process:
half precision halves the bytes and keeps the model, the frozen part travels once, a site
that lost it gets it again, and secure aggregation refuses it."""

import pytest
import torch

from federation.records import history_to_json
from federation.transport import FROZEN_RECORD
from server.rounds import run_federation
from server.secure_aggregation_config import check_secure_aggregation_config
from tests.builders import write_consortium
from tests.federation_fakes import (
    FIRST_NODE_ID,
    InProcessGrid,
    federation_config,
    simulation_node_configs,
)

client_app = pytest.importorskip("client.app").app
FINE_TUNE = "train.trainable=[data_consistency]"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return [f"data.root={root}", "data.synthetic_preset=null", "data.val_fraction=0.2"]


class _ForgetfulGrid(InProcessGrid):
    """Clears one node's ``context.state`` before round 2, as a restarted SuperNode."""

    def push_messages(self, messages):
        messages = list(messages)
        for message in messages:
            config = message.content.get("config")
            if config is not None and int(config.get("server-round", 0)) == 2:
                self.contexts[FIRST_NODE_ID].state = type(self.contexts[FIRST_NODE_ID].state)()
        return super().push_messages(messages)


def _run(output, data, rounds, *overrides, grid_type=InProcessGrid):
    config = federation_config(
        output, *data, f"federation.num_rounds={rounds}", "federation.local_steps=1", *overrides
    )
    site_overrides = " ".join(["model=tiny", "text=none", *data, *overrides])
    grid = grid_type(client_app, simulation_node_configs(3), {"overrides": site_overrides})
    return run_federation(config, grid), grid


def _traffic(result):
    return [record["traffic"] for record in history_to_json(result.history)]


def test_bfloat16_sends_half_the_bytes_and_keeps_the_model_close(tmp_path, data):
    plain, _ = _run(tmp_path / "float32", data, 2)
    half, _ = _run(tmp_path / "bf16", data, 2, "federation.transport.precision=bfloat16")
    assert _traffic(half)[1]["bytes-per-site"] == _traffic(plain)[1]["bytes-per-site"] // 2
    assert all(not r["errors"] and not r["rejected"] for r in history_to_json(half.history))
    for key, value in plain.arrays.items():
        if value.is_floating_point():
            torch.testing.assert_close(half.arrays[key], value, rtol=0.05, atol=2e-3)


def test_the_frozen_part_travels_once_and_stays_as_it_was(tmp_path, data):
    result, grid = _run(tmp_path, data, 2, "federation.transport.trainable_only=true", FINE_TUNE)
    assert all(not r["errors"] and not r["rejected"] for r in history_to_json(result.history))
    trains = [m for m in grid.sent if m.metadata.message_type == "train"]
    assert all(FROZEN_RECORD in m.content.array_records for m in trains[:3])
    assert not any(FROZEN_RECORD in m.content.array_records for m in trains[3:])
    first, second = _traffic(result)
    assert second["bytes-per-site"] < first["bytes-per-site"] / 10
    # float32 transport: the frozen record holds the master's frozen arrays as they were.
    frozen = trains[0].content.array_records[FROZEN_RECORD]
    assert all(".data_consistency." not in key for key in frozen)
    for key, array in frozen.items():
        assert torch.equal(result.arrays[key], torch.from_numpy(array.numpy())), key


def test_a_site_that_lost_the_frozen_part_fails_once_and_gets_it_again(tmp_path, data):
    result, _ = _run(
        tmp_path,
        data,
        3,
        "federation.transport.trainable_only=true",
        FINE_TUNE,
        grid_type=_ForgetfulGrid,
    )
    records = history_to_json(result.history)
    assert [error["node-id"] for error in records[1]["errors"]] == [FIRST_NODE_ID]
    assert "does not hold" in records[1]["errors"][0]["reason"]
    assert records[2]["errors"] == [] and len(records[2]["sites"]) == 3


def test_secure_aggregation_refuses_the_lighter_transport(tmp_path):
    config = federation_config(
        tmp_path, "privacy=secagg", "federation.transport.precision=bfloat16"
    )
    with pytest.raises(ValueError, match=r"federation\.transport .* cannot work with"):
        check_secure_aggregation_config(config)


def test_vendor_personalised_copies_travel_in_half_precision_too(tmp_path, data):
    result, _ = _run(
        tmp_path,
        data,
        2,
        "strategy=vendor_personalised",
        "strategy.personalised=[*.data_consistency.*]",
        "federation.transport.precision=float16",
    )
    records = history_to_json(result.history)
    assert all(not r["errors"] and not r["rejected"] for r in records)
    float32_bytes = sum(value.numel() * value.element_size() for value in result.arrays.values())
    assert records[1]["traffic"]["bytes-per-site"] == float32_bytes // 2
    assert records[1]["sites"]["Center003"]["bytes-received"] == float32_bytes // 2
