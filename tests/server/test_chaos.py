"""A hostile site in a running federation: every attack in turn, one per round.

Three honest sites and one hostile one (Center004) train together; each round the hostile
site sends one attack (or several at once) in both its train and its evaluate reply. Every
attack must be refused: the final model is then bit for bit the model of the three honest
sites alone (same seed), the ServerApp plays every round, and each refusal is recorded in
the round's history with the site and the reason.
"""

import json
import math

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, MessageType

from federation.records import history_to_json
from server.rounds import run_federation
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    simulation_node_configs,
)

HOSTILE_NODE = 1004


def _metric(key, value):
    def attack(content):
        content["metrics"][key] = value

    return attack


def _site_field(key, value):
    def attack(content):
        content["site"][key] = value

    return attack


def _arrays(change):
    def attack(content):
        if "arrays" not in content.array_records:
            return
        arrays = content["arrays"]
        values = {key: arrays[key].numpy().copy() for key in arrays}
        content["arrays"] = ArrayRecord(
            {key: Array(np.asarray(value)) for key, value in change(values).items()}
        )

    return attack


def _nan_weights(values):
    first = next(key for key, value in values.items() if value.dtype.kind == "f")
    values[first].flat[0] = np.nan
    return values


def _wrong_shape(values):
    first = next(iter(values))
    values[first] = np.zeros((*values[first].shape, 2), values[first].dtype)
    return values


def _wrong_dtype(values):
    first = next(key for key, value in values.items() if value.dtype.kind == "f")
    values[first] = values[first].astype(np.float64)
    return values


def _missing_key(values):
    del values[next(iter(values))]
    return values


def _scaled(values):
    return {
        key: value * 1000 if value.dtype.kind == "f" else value for key, value in values.items()
    }


def _no_site_record(content):
    del content["site"]


def _crash(content):
    raise TypeError("'NoneType' object is not subscriptable")


def _both(*attacks):
    def attack(content):
        for one in attacks:
            one(content)

    return attack


# (attack, what the refusal's reason says): one per round, in this order.
ATTACKS = [
    (_metric("num-examples", math.nan), "'num-examples' is NaN"),
    (_metric("num-examples", math.inf), "'num-examples' is infinite"),
    (_metric("num-examples", -1e6), "'num-examples' is -1e+06"),
    (_metric("num-examples", 1e15), "'num-examples' is 1e+15"),
    (_metric("num-examples", [1.0, 2.0]), "must be a number"),
    (_metric("weight-boost", 100.0), "unknown metric(s) 'weight-boost'"),
    (_metric("val-ssim", 7.0), "'val-ssim' is 7"),
    (_site_field("site-id", "Center001"), "node 1004 speaks for site Center004, not Center001"),
    (_site_field("vendor", "GE"), "site Center004 is of vendor Siemens, not GE"),
    (_site_field("site-id", "<img src=x onerror=alert(1)>"), "site-record field 'site-id'"),
    (_no_site_record, "no 'site' record"),
    (_arrays(_nan_weights), "NaN or infinite"),
    (_arrays(_wrong_shape), "has shape"),
    (_arrays(_wrong_dtype), "has dtype float64"),
    (_arrays(_missing_key), "keys differ from the global model"),
    (_arrays(_scaled), "update norm"),
    (_crash, "TypeError"),
    (
        _both(_metric("num-examples", math.nan), _site_field("site-id", "Center002")),
        "'num-examples' is NaN",
    ),
    (_both(_arrays(_scaled), _metric("num-examples", 1e6)), "update norm"),
]


def hostile_app(attacks, roll_call_attack=None):
    """The fake site app, with partition 3 (Center004) sending round r's attack in its train
    and evaluate replies (and ``roll_call_attack``, if any, in its roll-call reply)."""
    honest = fake_site_app()

    def app(msg, context):
        if int(context.node_config["partition-id"]) != 3:
            return honest(msg, context)
        if msg.metadata.message_type == MessageType.QUERY:
            reply = honest(msg, context)
            if roll_call_attack is not None:
                roll_call_attack(reply.content)
            return reply
        attack, _ = attacks[int(msg.content["config"]["server-round"]) - 1]
        reply = honest(msg, context)
        attack(reply.content)
        return reply

    return app


# The consortium as the coordinator knows it: a site cannot pass for another vendor even
# before its first accepted reply (without the list, that reply would define its vendor).
CONSORTIUM = (
    "++federation.sites={Center001:Siemens,Center002:Siemens,Center003:Siemens,Center004:Siemens}"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    output = tmp_path_factory.mktemp("chaos")
    options = [f"federation.num_rounds={len(ATTACKS)}", "federation.local_steps=1", CONSORTIUM]
    honest = run_federation(
        federation_config(output / "honest", *options),
        InProcessGrid(fake_site_app(), simulation_node_configs(3)),
    )
    attacked = run_federation(
        federation_config(output / "attacked", *options),
        InProcessGrid(hostile_app(ATTACKS), simulation_node_configs(4)),
    )
    return honest, attacked


def test_the_server_plays_every_round_through_the_attacks(runs):
    _, attacked = runs
    assert attacked.rounds == list(range(1, len(ATTACKS) + 1))


def test_the_final_model_is_the_honest_sites_model_bit_for_bit(runs):
    honest, attacked = runs
    assert attacked.arrays.keys() == honest.arrays.keys()
    for key, value in honest.arrays.items():
        assert torch.equal(attacked.arrays[key], value), key


@pytest.mark.parametrize(
    ("round_number", "reason"), [(i + 1, r) for i, (_, r) in enumerate(ATTACKS)]
)
def test_every_attack_is_recorded_with_the_node_and_the_reason(runs, round_number, reason):
    _, attacked = runs
    record = history_to_json(attacked.history)[round_number - 1]
    from_hostile = [
        entry
        for entry in [*record["rejected"], *record["errors"]]
        if entry["node-id"] == HOSTILE_NODE and entry["phase"] == "train"
    ]
    assert from_hostile, record
    assert any(reason in entry["reason"] for entry in from_hostile), from_hostile
    # The honest sites' replies are never lost to the attacker's (e.g. a spoofed site id).
    assert {"Center001", "Center002", "Center003"} <= set(record["sites"])


def test_free_text_from_a_site_reaches_the_history_sanitised_and_capped(tmp_path):
    junk = [
        {"path": f"/other/<script>{index}</script>.mat", "reason": "x" * 999}
        for index in range(500)
    ]

    def markup(content):
        content["site"]["scanner"] = "<b onclick=steal()>Vida</b>"
        content["site"]["bad-files-json"] = json.dumps(junk)

    result = run_federation(
        federation_config(tmp_path, "federation.num_rounds=1", "federation.local_steps=1"),
        InProcessGrid(hostile_app([(markup, "")]), simulation_node_configs(4)),
    )
    site = history_to_json(result.history)[0]["sites"]["Center004"]
    assert "<" not in site["scanner"] and ">" not in site["scanner"]
    assert len(site["bad-files"]) == 101
    assert site["bad-files"][-1]["reason"] == "400 more skipped file(s) not listed"
    assert all(
        "<" not in entry["path"] and len(entry["reason"]) <= 256 for entry in site["bad-files"]
    )


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (_site_field("role", "coordinator"), "site-record field 'role' must be one of"),
        (_no_site_record, "no 'site' record"),
    ],
)
def test_a_hostile_roll_call_reply_is_refused_and_its_node_gets_no_training(
    tmp_path, attack, reason
):
    result = run_federation(
        federation_config(tmp_path, "federation.num_rounds=1", "federation.local_steps=1"),
        InProcessGrid(
            hostile_app([(lambda content: None, "")], attack), simulation_node_configs(4)
        ),
    )
    record = history_to_json(result.history)[0]
    refused = [entry for entry in record["rejected"] if entry["phase"] == "roll-call"]
    assert [entry["node-id"] for entry in refused] == [HOSTILE_NODE]
    assert reason in refused[0]["reason"]
    assert set(record["sites"]) == {"Center001", "Center002", "Center003"}


def test_a_site_id_two_nodes_claim_in_the_roll_call_is_bound_to_neither(tmp_path):
    result = run_federation(
        federation_config(tmp_path, "federation.num_rounds=2", "federation.local_steps=1"),
        InProcessGrid(
            hostile_app([(lambda content: None, "")] * 2, _site_field("site-id", "Center001")),
            simulation_node_configs(4),
        ),
    )
    # No first come, first bound: the hostile node cannot take the honest site's name, but
    # while it keeps claiming it, the honest site is kept out too (the coordinator sees
    # both nodes refused, every round, and removes the hostile one).
    for record in history_to_json(result.history):
        contested = [entry for entry in record["rejected"] if entry["phase"] == "roll-call"]
        assert {entry["node-id"] for entry in contested} == {1001, HOSTILE_NODE}
        assert all("several nodes claim site Center001" in entry["reason"] for entry in contested)
        assert set(record["sites"]) == {"Center002", "Center003"}
