"""A DP-SGD site through the real ClientApp handlers, with one Context kept across rounds as a
SuperNode keeps it: cumulative epsilon, Opacus' numbers, the budget stop, evaluation."""

import math

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, MessageType, RecordDict
from opacus.accountants import RDPAccountant

from cardiomm.data.builders import training_dataset
from cardiomm.model.factory import network_from_config
from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.dp_sgd import sample_rate
from client.app import app
from client.privacy_state import ACCOUNTANT_RECORD
from client.site import resolve_site
from federation.config import compose_overrides
from federation.protocol import PRIVACY_BUDGET_SPENT
from tests.builders import write_consortium
from tests.client.protocol import DP_METRICS, PROTOCOL_METRICS, STARTUP_METRICS
from tests.federation_fakes import make_message, operator_context

DELTA = 1e-5
NOISE = 1.0
LOCAL_STEPS = 3


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


@pytest.fixture(scope="module")
def rate(data_overrides):
    """The sampling rate the accountant should see: 1 slice of Center001's training slices."""
    config = compose_overrides(data_overrides)
    site = resolve_site({"partition-id": 0}, config)
    return sample_rate(
        int(config.train.batch_size), len(training_dataset(site.train_files, config, 0))
    )


def _context(overrides, node_config=None):
    return operator_context(overrides, node_config or {"partition-id": 0})


def _global_arrays(overrides):
    torch.manual_seed(0)
    network, _ = network_from_config(compose_overrides(overrides))
    return ArrayRecord(network.state_dict())


def _train(context, server_round, arrays):
    config = ConfigRecord(
        {
            "server-round": server_round,
            "local-steps": LOCAL_STEPS,
            "learning-rate": 1e-3,
            "proximal-mu": 0.0,
            "seed": 0,
        }
    )
    message = make_message(
        RecordDict({"arrays": arrays, "config": config}), MessageType.TRAIN, dst_node_id=1001
    )
    message.metadata.__dict__["_message_id"] = f"instruction-{server_round}"
    return app(message, context)


def _rounds(overrides, count, node_config=None):
    context, arrays, replies = _context(overrides, node_config), _global_arrays(overrides), []
    for server_round in range(1, count + 1):
        replies.append(_train(context, server_round, arrays))
        if not replies[-1].has_error():
            arrays = replies[-1].content["arrays"]  # a one-site federation
    return context, replies


@pytest.fixture(scope="module")
def three_rounds(data_overrides):
    return _rounds(f"{data_overrides} privacy=dp_sgd", 3)


def _metrics(reply):
    assert not reply.has_error(), reply.error.reason
    return reply.content["metrics"]


def test_epsilon_grows_monotonically_over_three_rounds(three_rounds):
    _, replies = three_rounds
    epsilons = [_metrics(reply)["dp-epsilon"] for reply in replies]
    assert 0 < epsilons[0] < epsilons[1] < epsilons[2]
    assert [_metrics(reply)["dp-steps"] for reply in replies] == [3.0, 6.0, 9.0]
    assert all(_metrics(reply)["dp-budget-exhausted"] == 0.0 for reply in replies)


def test_the_reported_epsilon_is_opacus_rdp_accountant_for_the_same_steps(three_rounds, rate):
    _, replies = three_rounds
    reference = RDPAccountant()
    for reply in replies:
        for _ in range(LOCAL_STEPS):
            reference.step(noise_multiplier=NOISE, sample_rate=rate)
        assert _metrics(reply)["dp-epsilon"] == reference.get_epsilon(delta=DELTA)
        assert _metrics(reply)["dp-delta"] == DELTA


def test_the_accountant_history_is_kept_in_context_state(three_rounds, rate):
    context, _ = three_rounds
    record = context.state[ACCOUNTANT_RECORD]
    assert record["noise-multiplier"] == [NOISE]
    assert record["sample-rate"] == [rate]
    assert record["steps"] == [3 * LOCAL_STEPS]


def test_a_dp_reply_keeps_the_protocol_keys_and_withholds_the_training_loss(three_rounds):
    _, replies = three_rounds
    metrics = _metrics(replies[0])
    assert set(metrics) == PROTOCOL_METRICS | DP_METRICS | STARTUP_METRICS
    assert math.isnan(metrics["loss"]) and math.isnan(metrics["final-loss"])
    assert metrics["slices-seen"] == LOCAL_STEPS
    assert metrics["val-psnr"] > 0


def test_a_site_trains_the_affordable_steps_then_stops_and_says_so(data_overrides, rate):
    five, six = SiteAccountant(), SiteAccountant()
    five.step(NOISE, rate, 5)
    six.step(NOISE, rate, 6)
    budget = (five.epsilon(DELTA) + six.epsilon(DELTA)) / 2
    overrides = f"{data_overrides} privacy=dp_sgd privacy.dp_sgd.epsilon_budget={budget!r}"
    context, replies = _rounds(overrides, 3)
    first, second = _metrics(replies[0]), _metrics(replies[1])
    assert (first["steps"], first["dp-budget-exhausted"]) == (3.0, 0.0)
    assert (second["steps"], second["slices-seen"]) == (2.0, 2.0)
    assert second["dp-budget-exhausted"] == 1.0
    assert second["dp-epsilon"] == five.epsilon(DELTA) <= budget
    stopped = replies[2]
    assert stopped.has_error()
    assert stopped.error.code == PRIVACY_BUDGET_SPENT
    assert "site Center001: privacy budget spent" in stopped.error.reason
    assert f"epsilon {five.epsilon(DELTA):.4g} of {budget:.4g}" in stopped.error.reason
    assert context.state[ACCOUNTANT_RECORD]["steps"] == [5]


def test_the_global_model_evaluates_at_a_dp_sgd_site(data_overrides):
    overrides = f"{data_overrides} privacy=dp_sgd"
    content = RecordDict(
        {"arrays": _global_arrays(overrides), "config": ConfigRecord({"server-round": 1})}
    )
    message = make_message(content, MessageType.EVALUATE, dst_node_id=1001)
    message.metadata.__dict__["_message_id"] = "instruction-1"
    reply = app(message, _context(overrides))
    assert not reply.has_error(), reply.error.reason
    assert reply.content["metrics"]["psnr"] > 0


def test_dp_sgd_trains_a_network_that_runs_coils_one_by_one(data_overrides):
    config = compose_overrides(f"{data_overrides} privacy=dp_sgd")
    assert config.model.coil_batching  # the preset leaves the model config alone...
    network, _ = network_from_config(config, coil_batching=False)
    assert not network.sensitivity_net.coil_batching  # ...the site turns it off to train
    assert network.state_dict().keys() == network_from_config(config)[0].state_dict().keys()


def test_a_site_without_dp_sgd_reports_no_privacy_numbers_and_keeps_no_state(data_overrides):
    context, replies = _rounds(data_overrides, 1)
    metrics = _metrics(replies[0])
    assert set(metrics) == PROTOCOL_METRICS | STARTUP_METRICS
    assert math.isfinite(metrics["loss"])
    assert ACCOUNTANT_RECORD not in context.state


def test_a_site_worker_charges_the_same_epsilon_and_keeps_the_history_in_context_state(
    data_overrides, three_rounds, worker
):
    node_config = {"partition-id": 0, "site-worker": str(worker.folder)}
    context, replies = _rounds(f"{data_overrides} privacy=dp_sgd", 2, node_config)
    _, here = three_rounds
    assert [_metrics(reply)["site-worker"] for reply in replies] == [1.0, 1.0]
    assert [_metrics(reply)["dp-epsilon"] for reply in replies] == [
        _metrics(reply)["dp-epsilon"] for reply in here[:2]
    ]
    assert context.state[ACCOUNTANT_RECORD]["steps"] == [2 * LOCAL_STEPS]


def test_a_patient_level_site_is_charged_at_its_patient_rate(data_overrides):
    from cardiomm.privacy.patient_dp import patient_groups

    overrides = f"{data_overrides} privacy=dp_sgd privacy.dp_sgd.unit=patient"
    _, (reply,) = _rounds(f"{overrides} privacy.dp_sgd.patients_per_step=1.0", 1)
    config = compose_overrides(overrides)
    site = resolve_site({"partition-id": 0}, config)
    patients = len(patient_groups(training_dataset(site.train_files, config, 0)))
    reference = RDPAccountant()
    for _ in range(LOCAL_STEPS):
        reference.step(noise_multiplier=NOISE, sample_rate=1.0 / patients)
    assert _metrics(reply)["dp-epsilon"] == reference.get_epsilon(delta=DELTA)


def test_a_target_epsilon_sets_the_noise_so_the_planned_rounds_spend_it(data_overrides):
    overrides = (
        f"{data_overrides} privacy=dp_sgd privacy.dp_sgd.unit=patient "
        "privacy.dp_sgd.target_epsilon=4.0 federation.num_rounds=2"
    )
    _, replies = _rounds(overrides, 2)
    last = _metrics(replies[1])
    assert last["dp-steps"] == 2 * LOCAL_STEPS  # the planned steps, none cut
    assert 3.9 <= last["dp-epsilon"] <= 4.0
