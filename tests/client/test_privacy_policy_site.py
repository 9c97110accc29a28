"""A site's own privacy policy and ledger through the real ClientApp: refusals the coordinator
cannot override, the budget kept across a restarted node and across runs, the reply's
total."""

import json

import pytest
from flwr.app import RecordDict

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.ledger import PrivacyLedger
from client.site_config import decided_by
from client.site_task import TRAIN, SiteTask
from client.tasks import run_task
from federation.protocol import PRIVACY_BUDGET_SPENT, PRIVACY_POLICY_REFUSED, SITE_FAILURE
from tests.builders import write_consortium
from tests.client.test_dp_sgd_site import (
    LOCAL_STEPS,
    _global_arrays,
    _metrics,
    _rounds,
    _train,
)
from tests.deadline import deadline
from tests.federation_fakes import operator_context

POLICY = """\
max_epsilon_per_run: {per_run}
max_epsilon_total: {total}
delta: 1.0e-5
min_noise_multiplier: 0.8
allowed_mechanisms: [dp_sgd, secure_aggregation]
required_mechanisms: [dp_sgd]
ledger: ledger.json
"""


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


def _policy(folder, per_run=100.0, total=1000.0):
    path = folder / "policy.yaml"
    path.write_text(POLICY.format(per_run=per_run, total=total))
    return path


def _overrides(data_overrides, policy, *extra):
    return " ".join([data_overrides, "privacy=dp_sgd", f"privacy.policy={policy}", *extra])


def test_a_site_refuses_a_run_without_the_dp_sgd_its_policy_requires(data_overrides, tmp_path):
    policy = _policy(tmp_path)
    _, (reply,) = _rounds(f"{data_overrides} privacy.policy={policy}", 1)
    assert reply.has_error() and reply.error.code == PRIVACY_POLICY_REFUSED
    assert "refuses the run" in reply.error.reason and "requires dp_sgd" in reply.error.reason
    assert not (tmp_path / "ledger.json").exists()


def test_a_site_refuses_a_run_whose_noise_is_below_its_policy(data_overrides, tmp_path):
    overrides = _overrides(data_overrides, _policy(tmp_path), "privacy.dp_sgd.noise_multiplier=0.5")
    _, (reply,) = _rounds(overrides, 1)
    assert reply.has_error() and reply.error.code == PRIVACY_POLICY_REFUSED
    assert "below the minimum 0.8" in reply.error.reason


def test_the_coordinator_cannot_set_the_policy():
    assert decided_by("privacy.policy") == "site"


def test_the_ledger_keeps_a_runs_steps_when_the_node_restarts(data_overrides, tmp_path):
    overrides = _overrides(data_overrides, _policy(tmp_path))
    _, (first,) = _rounds(overrides, 1)
    # A restarted SuperNode: the same run, an empty context.state.
    restarted = operator_context(overrides, {"partition-id": 0}, state=RecordDict())
    second = _train(restarted, 2, _global_arrays(overrides))
    assert _metrics(first)["dp-steps"] == 3.0
    assert _metrics(second)["dp-steps"] == 6.0
    assert PrivacyLedger(tmp_path / "ledger.json").run("7").steps == 6


def test_the_reply_reports_the_total_over_every_run_and_the_caps(data_overrides, tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    earlier = SiteAccountant()
    earlier.step(1.0, 0.05, 40)
    ledger.record("earlier-run", earlier)
    _, (reply,) = _rounds(_overrides(data_overrides, _policy(tmp_path, per_run=50.0)), 1)
    metrics = _metrics(reply)
    assert metrics["dp-epsilon-total"] > metrics["dp-epsilon"] > 0
    assert metrics["dp-epsilon-total"] == ledger.total_epsilon(1e-5)
    assert (metrics["dp-epsilon-run-cap"], metrics["dp-epsilon-total-cap"]) == (50.0, 1000.0)


def test_a_site_whose_earlier_runs_spent_its_total_trains_no_more(data_overrides, tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    earlier = SiteAccountant()
    earlier.step(1.0, 0.05, 40)
    ledger.record("earlier-run", earlier)
    total = ledger.total_epsilon(1e-5)
    _, (reply,) = _rounds(_overrides(data_overrides, _policy(tmp_path, total=total)), 1)
    assert reply.has_error() and reply.error.code == PRIVACY_BUDGET_SPENT
    assert "the site's total over every run" in reply.error.reason
    assert ledger.run("7") is None  # nothing trained, nothing charged


def test_the_policys_per_run_cap_stops_a_run_the_site_file_would_let_go_on(
    data_overrides, tmp_path
):
    overrides = _overrides(data_overrides, _policy(tmp_path, per_run=1e-3))
    _, (reply,) = _rounds(overrides, 1)
    assert reply.has_error() and reply.error.code == PRIVACY_BUDGET_SPENT
    assert "of 0.001" in reply.error.reason


def test_a_site_worker_charges_the_same_ledger_under_the_runs_id(data_overrides, tmp_path, worker):
    node_config = {"partition-id": 0, "site-worker": str(worker.folder)}
    _, (reply,) = _rounds(_overrides(data_overrides, _policy(tmp_path)), 1, node_config)
    assert _metrics(reply)["site-worker"] == 1.0
    assert PrivacyLedger(tmp_path / "ledger.json").run("7").steps == 3


def test_noise_calibrated_below_the_policys_minimum_is_refused(data_overrides, tmp_path):
    overrides = _overrides(data_overrides, _policy(tmp_path), "privacy.dp_sgd.target_epsilon=500.0")
    _, (reply,) = _rounds(overrides, 1)
    assert reply.has_error() and reply.error.code == PRIVACY_POLICY_REFUSED
    assert "below the minimum 0.8" in reply.error.reason


def test_a_ledger_entry_with_a_nan_noise_multiplier_is_an_error_reply_not_a_hang(
    data_overrides, tmp_path
):
    path = tmp_path / "ledger.json"
    entry = {"noise-multiplier": [float("nan")], "sample-rate": [0.05], "steps": [40]}
    path.write_text(
        json.dumps({"format": "cardiomm-privacy-ledger", "version": 1, "runs": {"old": entry}})
    )
    with deadline(120):
        _, (reply,) = _rounds(_overrides(data_overrides, _policy(tmp_path)), 1)
    assert reply.has_error() and reply.error.code == SITE_FAILURE
    assert f"privacy ledger {path}, run old: entry 0: noise-multiplier nan" in reply.error.reason
    assert "\n" not in reply.error.reason


def test_a_site_whose_ledger_was_deleted_refuses_to_train(data_overrides, tmp_path):
    overrides = _overrides(data_overrides, _policy(tmp_path))
    _rounds(overrides, 1)
    (tmp_path / "ledger.json").unlink()
    _, (reply,) = _rounds(overrides, 1)
    assert reply.has_error() and reply.error.code == SITE_FAILURE
    assert "is missing but its journal" in reply.error.reason
    assert not (tmp_path / "ledger.json").exists()


def test_a_round_that_fails_after_its_charge_stays_charged(data_overrides, tmp_path):
    overrides = _overrides(data_overrides, _policy(tmp_path))
    context = operator_context(overrides, {"partition-id": 0})

    def broken_build(config, coil_batching=None):
        raise RuntimeError("the GPU fell off")

    task = SiteTask(
        kind=TRAIN,
        run_config=dict(context.run_config),
        node_config=dict(context.node_config),
        request={
            "server-round": 1,
            "local-steps": LOCAL_STEPS,
            "learning-rate": 1e-3,
            "proximal-mu": 0.0,
            "seed": 0,
        },
        arrays={name: array.numpy() for name, array in _global_arrays(overrides).items()},
        run_id="7",
    )
    outcome = run_task(task, build=broken_build)
    assert outcome.error_code == SITE_FAILURE and "the GPU fell off" in outcome.reason
    assert outcome.history is None  # the node keeps no steps, the ledger keeps them all
    assert PrivacyLedger(tmp_path / "ledger.json").run("7").steps == LOCAL_STEPS
