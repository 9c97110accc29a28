"""A deployment's weights travel packed: the same federation as per-array weights, and a
site whose packed weights do not fit what it was sent is refused."""

import numpy as np
import torch
from flwr.app import Array, MessageType

from server.deployed_grid import PackedArraysGrid
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)


def _run(output, packed=True, app=None):
    grid = InProcessGrid(app or fake_site_app(), simulation_node_configs(3))
    config = federation_config(output, "federation.num_rounds=2")
    return run_federation(config, PackedArraysGrid(grid) if packed else grid), grid


def test_a_packed_federation_ends_with_the_same_weights_as_a_per_array_one(tmp_path):
    packed, grid = _run(tmp_path / "packed")
    plain, _ = _run(tmp_path / "plain", packed=False)
    assert packed.arrays.keys() == plain.arrays.keys()
    assert all(torch.equal(packed.arrays[key], plain.arrays[key]) for key in plain.arrays)
    train = next(m for m in grid.sent if m.metadata.message_type == MessageType.TRAIN)
    assert list(train.content["arrays"].keys()) == ["packed.float32"]


def test_a_site_whose_packed_weights_do_not_fit_is_refused_and_the_round_goes_on(tmp_path):
    honest = fake_site_app()

    def truncating(msg, context):
        reply = honest(msg, context)
        first_site = int(context.node_config["partition-id"]) == 0
        if first_site and msg.metadata.message_type == MessageType.TRAIN:
            flat = reply.content["arrays"]["packed.float32"].numpy()
            reply.content["arrays"]["packed.float32"] = Array(np.ascontiguousarray(flat[:-1]))
        return reply

    result, _ = _run(tmp_path, app=truncating)
    for record in result.history:
        refused = [entry for entry in record.rejected if entry["node-id"] == 1001]
        assert refused and "keys differ from the global model" in refused[0]["reason"], record
        assert {"Center002", "Center003"} <= set(record.sites)
