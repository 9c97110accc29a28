"""Secure aggregation through Flower's real SecAgg+ protocol, in-process.

The sites run behind client/secure_aggregation_mod.py's mod (Flower's ``secaggplus_mod`` inside)
and the server runs Flower's ``SecAggPlusWorkflow`` (server/secure_rounds.py). Every
comparison is against the plain path (server/rounds.py) on the same deterministic sites, with
a tolerance computed from the clipping range, the quantisation range and the number of
summed sites: each site's scaled update is quantised with a step 2c/Q and stochastic rounding
moves it by less than one step, so the mean is off by less than sites x 2c/Q / (sum k / Q);
the weights, sent as integers k = round(w Q), are off by at most 1/2Q each.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MessageType, RecordDict
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.quantization import quantize
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from mlflow.tracking import MlflowClient

from cardiomm.model.checkpoint import read_checkpoint
from client.secure_aggregation_mod import secure_aggregation_mod
from federation.mlflow_store import embedded_uri
from federation.records import history_to_json
from server.app import app as server_app
from server.model import GlobalModel
from server.rounds import run_federation
from server.secure_aggregation_config import check_secure_aggregation_config
from server.secure_rounds import run_secure_federation
from strategies.vendor_weights import vendor_balanced_weights
from tests.builders import write_consortium
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    make_message,
    simulation_node_configs,
    stopped_after,
)

SECURE = ("privacy=secagg", "federation.validation.enabled=false")
LOCAL_STEPS = 2
# Vendors of the three fake sites (fake_site_app trains 2 x number x local-steps examples:
# 4, 8, 12): vendor-balanced weights (1/2, 1/5, 3/10) differ from FedAvg's (1/6, 1/3, 1/2).
VENDORS = {0: "Philips", 1: "Siemens", 2: "Siemens"}


class RecordingGrid(InProcessGrid):
    """An in-process grid that keeps every reply the server receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.replies = []

    def pull_messages(self, message_ids):
        replies = list(super().pull_messages(message_ids))
        self.replies.extend(replies)
        return replies


class DropoutGrid(RecordingGrid):
    """A node that trains, then never answers again from SecAgg+'s collect stage on."""

    def __init__(self, *args, dying_node: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.dying_node = dying_node

    def push_messages(self, messages):
        messages = list(messages)
        for message in messages:
            secagg = message.content.config_records.get(RECORD_KEY_CONFIGS)
            if secagg is not None and secagg.get(Key.STAGE) == Stage.COLLECT_MASKED_VECTORS:
                self.silent_nodes.add(self.dying_node)
        return super().push_messages(messages)


def vendor_sites():
    """fake_site_app with the vendors above (deterministic training, protocol-true replies)."""
    base = fake_site_app()

    def app(msg, context):
        reply = base(msg, context)
        if reply.has_content() and "site" in reply.content.config_records:
            reply.content["site"]["vendor"] = VENDORS[int(context.node_config["partition-id"])]
        return reply

    return app


def behind_secure_mod(app):
    """The ClientApp as client/app.py deploys it: the secure-aggregation mod around it."""
    return lambda msg, context: secure_aggregation_mod(msg, context, app)


def configure(output, *overrides, secure=True):
    return federation_config(
        output,
        "federation.num_rounds=1",
        f"federation.local_steps={LOCAL_STEPS}",
        *(SECURE if secure else ()),
        *overrides,
    )


def site_updates(grid, initial):
    """Per site id: its examples, vendor and update, from the plain run's train replies."""
    sites = {}
    for reply in grid.replies:
        content = reply.content if reply.has_content() else None
        if content is None or "arrays" not in content.array_records:
            continue
        trained = content["arrays"].to_torch_state_dict()
        sites[str(content["site"]["site-id"])] = {
            "examples": float(content["metrics"]["num-examples"]),
            "vendor": str(content["site"]["vendor"]),
            "update": {key: trained[key].double() - initial[key].double() for key in initial},
        }
    return sites


def example_weights(sites):
    """FedAvg's weights: each site's share of the examples."""
    total = sum(site["examples"] for site in sites.values())
    return {name: site["examples"] / total for name, site in sites.items()}


def tolerance(sites, weights, integer_weights, settings, reference):
    """Per value: the quantisation bound, the integer weights' rounding, float32 rounding.

    ``settings`` is the run's ``privacy.secure_aggregation`` block.
    """
    total = sum(integer_weights.values())
    step = 2.0 * settings.clipping_range / settings.quantization_range
    quantisation = len(integer_weights) * step * settings.quantization_range / total
    bound = {}
    for key, value in reference.items():
        weight_error = sum(
            abs(integer_weights[site] / total - weights[site]) * sites[site]["update"][key].abs()
            for site in integer_weights
        )
        bound[key] = quantisation + weight_error + 2.0**-21 * value.double().abs()
    return quantisation, bound


def assert_within(secure, plain, bound):
    for key, value in plain.items():
        difference = (secure[key].double() - value.double()).abs()
        assert bool((difference <= bound[key]).all()), (key, float(difference.max()))


def integer_weights_of(weights, quantization_range):
    return {site: round(weight * quantization_range) for site, weight in weights.items()}


def run_pair(tmp_path, sites_app, *overrides, node_configs=None, secure_grid=None):
    """The plain and the secure path on the same sites; returns both results and grids."""
    nodes = node_configs or simulation_node_configs(3)
    plain_grid = RecordingGrid(sites_app, nodes)
    plain = run_federation(configure(tmp_path / "plain", *overrides, secure=False), plain_grid)
    grid = secure_grid or RecordingGrid(behind_secure_mod(sites_app), nodes)
    config = configure(tmp_path / "secure", *overrides)
    secure = run_secure_federation(config, grid)
    return config, plain, plain_grid, secure, grid


@pytest.fixture(scope="module")
def fedavg(tmp_path_factory):
    output = tmp_path_factory.mktemp("fedavg")
    config, plain, plain_grid, secure, grid = run_pair(output, vendor_sites())
    initial = GlobalModel(config).state_dict()
    return config, plain, secure, grid, site_updates(plain_grid, initial), initial


def test_secure_fedavg_equals_plain_fedavg_within_the_quantisation_bound(fedavg):
    config, plain, secure, _, sites, initial = fedavg
    settings = config.privacy.secure_aggregation
    weights = example_weights(sites)
    integer = integer_weights_of(weights, settings.quantization_range)
    quantisation, bound = tolerance(sites, weights, integer, settings, plain.arrays)
    assert quantisation == pytest.approx(3 * 2 * 1.0 / 2**22, rel=1e-5)
    record = history_to_json(secure.history)[0]["secure-aggregation"]
    assert record["status"] == "ok"
    assert record["sites"] == ["Center001", "Center002", "Center003"]
    assert record["integer-weights"] == integer
    assert record["clipped-values"] == {"Center001": 0, "Center002": 0, "Center003": 0}
    assert_within(secure.arrays, plain.arrays, bound)
    # Not vacuous: the round moved the model by far more than the tolerance.
    moved = max(float((plain.arrays[k] - initial[k]).abs().max()) for k in initial)
    assert moved > 100 * quantisation


def test_the_server_receives_masked_vectors_and_never_a_sites_weights(fedavg):
    config, _, secure, grid, sites, _ = fedavg
    settings = config.privacy.secure_aggregation
    levels = settings.quantization_range
    masked = {}
    for reply in grid.replies:
        assert reply.has_content(), reply.error
        for record in reply.content.array_records.values():
            assert len(record) == 0  # no weights, no update: only config and metrics
        secagg = reply.content.config_records.get(RECORD_KEY_CONFIGS)
        if secagg is not None and Key.MASKED_PARAMETERS in secagg:
            arrays = [bytes_to_ndarray(item) for item in secagg[Key.MASKED_PARAMETERS]]
            masked[int(reply.metadata.src_node_id)] = np.concatenate(
                [array.reshape(-1) for array in arrays[1:]]
            )
    assert sorted(masked) == [1001, 1002, 1003]
    # An unmasked quantised update sits around the middle level (updates are small next to
    # the clipping range); a masked one is uniform over [0, 2**32).
    near_middle = (levels // 2 - levels // 64, levels // 2 + levels // 64)
    weights = history_to_json(secure.history)[0]["secure-aggregation"]["weights"]
    for node, vector in masked.items():
        site = f"Center{node - 1000:03d}"
        update = np.concatenate(
            [value.numpy().reshape(-1) for value in sites[site]["update"].values()]
        )
        (unmasked,) = quantize([update * weights[site]], settings.clipping_range, levels)
        assert np.mean((unmasked >= near_middle[0]) & (unmasked <= near_middle[1])) > 0.99
        assert np.mean((vector >= near_middle[0]) & (vector <= near_middle[1])) < 0.01
        assert vector.max() > 2**31  # values far above the quantisation range: masked


def test_secure_vendor_balanced_equals_plain_vendor_balanced_within_the_bound(tmp_path, fedavg):
    config, plain, _, secure, _ = run_pair(tmp_path, vendor_sites(), "strategy=vendor_balanced")
    _, _, secure_fedavg, _, sites, _ = fedavg
    settings = config.privacy.secure_aggregation
    names = sorted(sites)
    weights = dict(
        zip(
            names,
            vendor_balanced_weights(
                [sites[name]["vendor"] for name in names],
                [sites[name]["examples"] for name in names],
                "equal",
            ),
            strict=True,
        )
    )
    assert weights == pytest.approx({"Center001": 0.5, "Center002": 0.2, "Center003": 0.3})
    integer = integer_weights_of(weights, settings.quantization_range)
    assert history_to_json(secure.history)[0]["secure-aggregation"]["integer-weights"] == integer
    quantisation, bound = tolerance(sites, weights, integer, settings, plain.arrays)
    assert_within(secure.arrays, plain.arrays, bound)
    # The vendor weights matter: the secure FedAvg model is far outside the tolerance.
    apart = max(
        float((secure.arrays[k] - secure_fedavg.arrays[k]).abs().max()) for k in secure.arrays
    )
    assert apart > 100 * quantisation


def test_secure_fedadam_equals_plain_fedadam_within_the_propagated_bound(tmp_path, fedavg):
    config, plain, _, secure, _ = run_pair(tmp_path, vendor_sites(), "strategy=fedadam")
    _, plain_fedavg, _, _, sites, _ = fedavg
    settings = config.privacy.secure_aggregation
    weights = example_weights(sites)
    integer = integer_weights_of(weights, settings.quantization_range)
    _, bound = tolerance(sites, weights, integer, settings, plain_fedavg.arrays)
    # Round 1 of Adam from zero moments moves each value by a(d) = eta_norm (1 - beta_1) d /
    # (sqrt(1 - beta_2) |d| + tau): a function of the aggregate's change d with slope at most
    # eta_norm (1 - beta_1) / tau, so the aggregate's error reaches the model scaled by that.
    strategy = config.strategy
    eta_norm = (
        strategy.server_learning_rate * np.sqrt(1 - strategy.beta_2**2) / (1 - strategy.beta_1**2)
    )
    slope = eta_norm * (1 - strategy.beta_1) / strategy.tau
    propagated = {
        key: slope * value + 2.0**-21 * plain.arrays[key].double().abs()
        for key, value in bound.items()
    }
    assert_within(secure.arrays, plain.arrays, propagated)
    assert any(not torch.equal(secure.arrays[k], plain_fedavg.arrays[k]) for k in secure.arrays)


def test_a_site_dropping_out_mid_protocol_leaves_the_others_weighted_mean(tmp_path):
    app = vendor_sites()
    survivors = [simulation_node_configs(3)[0], simulation_node_configs(3)[2]]
    grid = DropoutGrid(behind_secure_mod(app), simulation_node_configs(3), dying_node=1002)
    # FedAvg's own weights: without the share cap, which the plain run of two sites of two
    # vendors would apply (the secure run fixed its weights for three sites).
    config, plain, plain_grid, secure, _ = run_pair(
        tmp_path,
        app,
        "federation.replies.max_site_share=1.0",
        node_configs=survivors,
        secure_grid=grid,
    )
    record = history_to_json(secure.history)[0]["secure-aggregation"]
    assert record["status"] == "ok"
    assert record["sites"] == ["Center001", "Center003"]
    assert record["dropped"] == ["Center002"]
    assert any(
        error.get("site") == "Center002" and error["phase"] == "secure-aggregation"
        for error in history_to_json(secure.history)[0]["errors"]
    )
    settings = config.privacy.secure_aggregation
    sites = site_updates(plain_grid, GlobalModel(config).state_dict())
    # The weights were set for three sites (4, 8, 12 examples) and renormalise over the two
    # summed ones: exactly FedAvg over the survivors (4, 12).
    full = {"Center001": 4 / 24, "Center003": 12 / 24}
    integer = integer_weights_of(full, settings.quantization_range)
    weights = {"Center001": 0.25, "Center003": 0.75}
    _, bound = tolerance(sites, weights, integer, settings, plain.arrays)
    assert_within(secure.arrays, plain.arrays, bound)


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["strategy=median"], ["strategy.reducer=median"]),
        (["strategy=trimmed_mean"], ["strategy.reducer=trimmed_mean"]),
        (["strategy=vendor_personalised"], ["strategy.personalised"]),
        (["federation.validation.enabled=true"], ["federation.validation.enabled=true"]),
        (["privacy.central_dp.enabled=true"], ["privacy.central_dp.side=server"]),
        (
            ["privacy.central_dp.enabled=true", "privacy.central_dp.side=client"],
            ["privacy.central_dp.side=client"],
        ),
        (["federation.min_sites=1"], ["federation.min_sites=1"]),
    ],
)
def test_combinations_that_cannot_work_are_refused_naming_both_settings(tmp_path, overrides, names):
    config = configure(tmp_path, *overrides)
    with pytest.raises(ValueError) as refused:
        check_secure_aggregation_config(config)
    message = str(refused.value)
    for name in [*names, "secure_aggregation.enabled=true"]:
        assert name in message, message


def test_the_secure_path_refuses_before_contacting_any_site(tmp_path):
    grid = RecordingGrid(behind_secure_mod(vendor_sites()), simulation_node_configs(3))
    with pytest.raises(ValueError, match=r"strategy\.reducer=median"):
        run_secure_federation(configure(tmp_path, "strategy=median"), grid)
    assert grid.sent == []


def test_server_optimisers_fedprox_vendor_weights_and_dp_sgd_are_accepted(tmp_path):
    for overrides in (
        ["strategy=fedadam", "strategy.vendor_weighting=sqrt"],
        ["strategy=fedyogi"],
        ["strategy=fedprox"],
        ["privacy.dp_sgd.enabled=true"],
    ):
        check_secure_aggregation_config(configure(tmp_path, *overrides))


def test_a_site_under_secure_aggregation_refuses_a_plain_train_request():
    context = Context(
        run_id=7,
        node_id=1001,
        node_config={"partition-id": 0, "num-partitions": 3},
        state=RecordDict(),
        run_config={"overrides": "privacy=secagg"},
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": torch.zeros(3)}),
            "config": ConfigRecord({"server-round": 1}),
        }
    )
    trained = []
    reply = secure_aggregation_mod(
        make_message(content, MessageType.TRAIN, 1001),
        context,
        lambda msg, _: trained.append(msg),
    )
    assert reply.has_error()
    assert "privacy.secure_aggregation.enabled is true" in reply.error.reason
    assert trained == []


def test_a_resumed_secure_run_is_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    def run(output, rounds, *overrides):
        grid = InProcessGrid(behind_secure_mod(vendor_sites()), simulation_node_configs(3))
        config = configure(output, f"federation.num_rounds={rounds}", *overrides)
        return run_secure_federation(config, grid)

    # Different global NumPy states (where Flower's stochastic rounding draws from): the
    # sites seed the rounding per (seed, round, site), so the result must not depend on them.
    saved = np.random.get_state()
    try:
        np.random.seed(1)
        straight = run(tmp_path / "straight", 2)
        np.random.seed(2)
        with stopped_after(1):
            run(tmp_path / "resumed", 2)
        np.random.seed(3)
        resumed = run(tmp_path / "resumed", 2, "federation.resume=true")
    finally:
        np.random.set_state(saved)
    assert resumed.rounds == [2]
    for key, value in straight.arrays.items():
        assert torch.equal(value, resumed.arrays[key]), key


def test_a_secure_run_is_tracked_in_mlflow_like_a_plain_one(tmp_path):
    grid = InProcessGrid(behind_secure_mod(vendor_sites()), simulation_node_configs(3))
    config = federation_config(
        tmp_path, *SECURE, "federation.num_rounds=1", "federation.local_steps=1", tracking=True
    )
    result = run_secure_federation(config, grid)
    client = MlflowClient(tracking_uri=embedded_uri(tmp_path))
    mlflow_run = client.get_run(result.tracking_run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["privacy.secure_aggregation.enabled"] == "True"
    for key in ("train/loss", "site/Center001/loss", "timing/secure-aggregation-seconds"):
        assert key in mlflow_run.data.metrics, key
    artifacts = {item.path for item in client.list_artifacts(result.tracking_run_id)}
    assert {"model", "history.json"} <= artifacts


def test_the_server_app_runs_two_secure_rounds_with_the_real_client_app(tmp_path):
    client_app = pytest.importorskip("client.app").app
    root = tmp_path / "consortium"
    write_consortium(root)
    data = f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2"
    site_overrides = f"model=tiny text=none {data} privacy=secagg"
    overrides = (
        f"{site_overrides} output_dir={tmp_path / 'run'} federation.num_rounds=2 "
        "federation.local_steps=1 federation.global_evaluation=false tracking.enabled=false "
        "federation.validation.enabled=false"
    )
    grid = RecordingGrid(client_app, simulation_node_configs(3), {"overrides": site_overrides})
    context = Context(
        run_id=7, node_id=1, node_config={}, state=RecordDict(), run_config={"overrides": overrides}
    )
    server_app(grid, context)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["round"] for record in history] == [1, 2]
    for record in history:
        assert record["errors"] == []
        assert record["secure-aggregation"]["status"] == "ok"
        assert record["secure-aggregation"]["sites"] == ["Center001", "Center002", "Center003"]
        assert sum(record["secure-aggregation"]["clipped-values"].values()) == 0
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "final.pt")
    assert final["extra"]["secure_aggregation"] is True
    assert final["extra"]["rounds"] == 2
    assert all(
        len(record) == 0
        for reply in grid.replies
        if reply.has_content()
        for record in reply.content.array_records.values()
    )
