"""A DP-SGD round handed to a site worker is charged to the site's privacy ledger once, by
whoever trains it: the worker charges only while its ClientApp still waits and has agreed,
and a ClientApp that gave up on its worker first charges the round it does itself."""

import signal
import socket

import pytest

from cardiomm.privacy.ledger import PrivacyLedger
from client.site_task import TRAIN, SiteTask, scalar_values
from client.tasks import run_task
from client.worker import ClientAppGoneError, TaskLink
from federation.protocol import SITE_FAILURE
from tests.builders import write_consortium
from tests.client.messages import train_content
from tests.client.stand_in_worker import worker_process
from tests.client.test_dp_sgd_site import LOCAL_STEPS, _metrics, _rounds
from tests.client.test_privacy_policy_site import _overrides, _policy
from tests.deadline import deadline
from tests.federation_fakes import operator_context

SILENCE = 0.3  # the ClientApp's and the worker's timeout in these tests


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


def _task(overrides) -> SiteTask:
    """The train task of round 1 (two local steps, so two DP-SGD steps) of run 7."""
    context = operator_context(overrides, {"partition-id": 0})
    content = train_content(overrides)
    return SiteTask(
        kind=TRAIN,
        run_config=scalar_values(context.run_config),
        node_config=scalar_values(context.node_config),
        request=scalar_values(content["config"]),
        arrays={name: array.numpy() for name, array in content["arrays"].items()},
        run_id=str(context.run_id),
    )


def test_a_worker_round_whose_clientapp_gave_up_charges_nothing(data_overrides, tmp_path):
    def gave_up():
        raise ClientAppGoneError("the ClientApp on worker.sock gave up on the task")

    outcome = run_task(_task(_overrides(data_overrides, _policy(tmp_path))), confirm_charge=gave_up)
    assert outcome.error_code == SITE_FAILURE and "gave up on the task" in outcome.reason
    assert PrivacyLedger(tmp_path / "ledger.json").run("7") is None


def test_a_worker_round_is_charged_once_its_clientapp_agrees(data_overrides, tmp_path):
    asked = []
    task = _task(_overrides(data_overrides, _policy(tmp_path)))
    outcome = run_task(task, confirm_charge=lambda: asked.append(True))
    assert outcome.error_code == 0, outcome.reason
    assert asked == [True]
    assert PrivacyLedger(tmp_path / "ledger.json").run("7").steps == 2


def test_the_worker_is_not_let_charge_once_its_clientapp_closed_the_connection():
    worker_end, clientapp_end = socket.socketpair()
    with worker_end:
        clientapp_end.close()  # the ClientApp timed out and did the round itself
        link = TaskLink(worker_end, "worker.sock", keep_alive=1.0, timeout=SILENCE)
        with deadline(5), pytest.raises(ClientAppGoneError, match="nothing is charged"):
            link.confirm_charge()


def test_the_worker_is_not_let_charge_when_its_clientapp_does_not_answer():
    worker_end, clientapp_end = socket.socketpair()
    with worker_end, clientapp_end:  # open, but the ClientApp is stopped
        link = TaskLink(worker_end, "worker.sock", keep_alive=1.0, timeout=SILENCE)
        with deadline(5), pytest.raises(ClientAppGoneError, match=r"no answer within 0\.3 s"):
            link.confirm_charge()


def test_the_fall_back_for_a_stopped_worker_charges_the_round_once(data_overrides, tmp_path):
    folder = tmp_path / "worker"
    node_config = {"partition-id": 0, "site-worker": str(folder), "site-worker-timeout": SILENCE}
    overrides = _overrides(data_overrides, _policy(tmp_path))
    with worker_process(folder) as process, deadline(60):
        process.send_signal(signal.SIGSTOP)
        _, (reply,) = _rounds(overrides, 1, node_config)
    assert _metrics(reply)["site-worker"] == 0.0
    assert PrivacyLedger(tmp_path / "ledger.json").run("7").steps == LOCAL_STEPS
