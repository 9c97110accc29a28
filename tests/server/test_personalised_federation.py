"""Vendor-personalised parameters through whole federations: each vendor's sites train and
receive their own copy, the exported model holds every copy, and a resumed run keeps them."""

import pytest
import torch
from flwr.app import MessageType

from cardiomm.model.checkpoint import read_checkpoint
from cardiomm.model.factory import reconstructor_from_checkpoint
from cardiomm.model.vendor_personalised import VENDOR_PARTS_KEY, VendorPartsReconstructor
from server.rounds import run_federation
from tests.federation_fakes import (
    FIRST_NODE_ID,
    InProcessGrid,
    fake_site_app,
    federation_config,
    sent_weights,
    simulation_node_configs,
    stopped_after,
)

VENDORS = {"Center001": "Siemens", "Center002": "Siemens", "Center003": "GE"}
PERSONAL = "cascades.0.data_consistency.step.weight"
OPTIONS = (
    "strategy=vendor_personalised",
    "strategy.personalised=[*.data_consistency.*]",
)


def _run(output, rounds, *overrides):
    config = federation_config(output, f"federation.num_rounds={rounds}", *OPTIONS, *overrides)
    grid = InProcessGrid(fake_site_app(vendors=VENDORS), simulation_node_configs(3))
    return run_federation(config, grid), grid


def _sent(grid, node, message_type=MessageType.TRAIN):
    return [
        sent_weights(message)[PERSONAL].copy()
        for message in grid.sent
        if message.metadata.message_type == message_type and message.metadata.dst_node_id == node
    ]


def test_sites_of_one_vendor_receive_the_same_copy_and_other_vendors_another(tmp_path):
    _, grid = _run(tmp_path, 2)
    siemens_one, siemens_two, ge = (_sent(grid, FIRST_NODE_ID + index) for index in range(3))
    # Round 1: everyone starts from the same weights; round 2: per-vendor copies.
    assert (siemens_one[0] == ge[0]).all()
    assert (siemens_one[1] == siemens_two[1]).all()
    assert not (siemens_one[1] == ge[1]).all()


def test_shared_parameters_are_the_same_for_every_vendor(tmp_path):
    _, grid = _run(tmp_path, 2)
    trains = [m for m in grid.sent if m.metadata.message_type == MessageType.TRAIN][-3:]
    key = next(key for key in sent_weights(trains[0]) if "data_consistency" not in key)
    values = [sent_weights(message)[key] for message in trains]
    assert all((value == values[0]).all() for value in values)


def test_the_exported_model_holds_every_vendors_copy(tmp_path):
    result, _ = _run(tmp_path, 2)
    content = read_checkpoint(result.final_checkpoint)
    parts = content["extra"][VENDOR_PARTS_KEY]
    assert sorted(parts) == ["GE", "Siemens"]
    assert all(PERSONAL in part for part in parts.values())
    assert not torch.equal(parts["GE"][PERSONAL], parts["Siemens"][PERSONAL])
    # The shared weights carry the across-vendor fallback (vendors weighted equally).
    fallback = (parts["GE"][PERSONAL] + parts["Siemens"][PERSONAL]) / 2
    torch.testing.assert_close(content["state_dict"][PERSONAL], fallback)
    assert isinstance(reconstructor_from_checkpoint(content), VendorPartsReconstructor)


def test_a_resumed_personalised_run_equals_an_uninterrupted_one(tmp_path):
    straight, _ = _run(tmp_path / "straight", 3)
    with stopped_after(2):
        _run(tmp_path / "resumed", 3)
    resumed, _ = _run(tmp_path / "resumed", 3, "federation.resume=true")
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key
    straight_parts = read_checkpoint(straight.final_checkpoint)["extra"][VENDOR_PARTS_KEY]
    resumed_parts = read_checkpoint(resumed.final_checkpoint)["extra"][VENDOR_PARTS_KEY]
    for vendor, part in straight_parts.items():
        assert torch.equal(part[PERSONAL], resumed_parts[vendor][PERSONAL])


def test_a_pattern_matching_no_parameter_stops_the_run_before_any_round(tmp_path):
    with pytest.raises(ValueError, match="matches no parameter"):
        _run(tmp_path, 1, "strategy.personalised=[*.batchnorm.*]")


def test_fine_tuning_rounds_start_every_vendor_from_the_shared_model(tmp_path):
    _, grid = _run(tmp_path, 3, "strategy.personalise_from_round=3")
    siemens, _, ge = (_sent(grid, FIRST_NODE_ID + index) for index in range(3))
    # Rounds 1 and 2 share everything (FedAvg); round 3's replies make the vendor copies,
    # so the evaluation after round 3 is the first to send vendors different copies.
    assert all((s == g).all() for s, g in zip(siemens, ge, strict=True))
    evaluated = [_sent(grid, FIRST_NODE_ID + i, MessageType.EVALUATE)[-1] for i in (0, 2)]
    assert not (evaluated[0] == evaluated[1]).all()


def test_a_first_personalised_round_after_the_last_round_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"personalise_from_round must be a round of the run"):
        _run(tmp_path, 2, "strategy.personalise_from_round=3")
