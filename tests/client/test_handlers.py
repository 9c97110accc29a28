"""The ClientApp's message handlers: what a site sends back, and how it fails."""

import h5py
import numpy as np
import pytest
from flwr.app import ConfigRecord, MessageType, RecordDict

from federation.protocol import SITE_FAILURE
from tests.builders import write_consortium
from tests.client.messages import call, global_arrays, train_content


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


def test_a_train_reply_holds_weights_metrics_and_the_site_only(overrides):
    reply = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    assert not reply.has_error()
    assert set(reply.content.keys()) == {"arrays", "metrics", "site"}
    assert reply.content["metrics"]["slices-seen"] == 2.0
    assert reply.content["metrics"]["num-examples"] > 2.0  # the site's training slices
    assert reply.content["site"]["site-id"] == "Center001"
    assert reply.content["site"]["vendor"] == "Siemens"


def test_the_weights_sent_back_are_the_network_state_and_nothing_else(overrides):
    reply = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    sent = reply.content["arrays"].to_torch_state_dict()
    assert sent.keys() == global_arrays(overrides).to_torch_state_dict().keys()
    assert not any(tensor.is_complex() for tensor in sent.values())


def test_a_site_whose_data_cannot_be_read_replies_with_an_error_naming_it(overrides, tmp_path):
    node_config = {"site-id": "Center007", "data-path": str(tmp_path / "missing")}
    reply = call(MessageType.TRAIN, train_content(overrides), node_config, overrides)
    assert reply.has_error()
    assert reply.error.code == SITE_FAILURE
    assert "missing is not a directory" in reply.error.reason


def test_an_evaluate_reply_holds_metrics_and_the_site_only(overrides):
    content = RecordDict(
        {"arrays": global_arrays(overrides), "config": ConfigRecord({"server-round": 1})}
    )
    reply = call(MessageType.EVALUATE, content, {"partition-id": 0}, overrides)
    assert set(reply.content.keys()) == {"metrics", "site"}
    assert reply.content["metrics"]["num-examples"] > 0
    assert reply.content["metrics"]["psnr"] > 0


def test_an_unexpected_exception_becomes_an_error_reply_naming_site_and_type(
    overrides, monkeypatch
):
    def broken(*args, **kwargs):
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr("client.tasks.SiteRound.train", broken)
    reply = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    assert reply.has_error()
    assert reply.error.code == SITE_FAILURE
    assert reply.error.reason.startswith("site Center001: TypeError: 'NoneType'")


def test_a_site_whose_images_are_all_unusable_says_so_with_the_reason(tmp_path):
    root = tmp_path / "consortium"
    write_consortium(root)
    for path in (root / "MultiCoil").rglob("*.mat"):
        if "Center001" not in str(path):
            continue
        with h5py.File(path, "r+") as handle:
            handle["kspace_full"][...] = np.zeros(
                handle["kspace_full"].shape, handle["kspace_full"].dtype
            )
    overrides = f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"
    reply = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    assert reply.has_error()
    assert reply.error.reason.startswith("site Center001: ")
    assert "unreadable" in reply.error.reason and "all-zero k-space" in reply.error.reason


def test_the_roll_call_reply_is_the_site_record_with_its_role(overrides):
    content = RecordDict({"config": ConfigRecord({"server-round": 1})})
    training = call(MessageType.QUERY, content, {"partition-id": 0}, overrides)
    assert set(training.content.keys()) == {"site"}
    assert training.content["site"]["role"] == "train"
    node_config = {"site-id": "Center002", "data-path": _root(overrides), "role": "evaluate"}
    evaluating = call(MessageType.QUERY, content, node_config, overrides)
    assert evaluating.content["site"]["role"] == "evaluate"


def test_an_evaluation_only_site_refuses_to_train(overrides):
    node_config = {"site-id": "Center002", "data-path": _root(overrides), "role": "evaluate"}
    reply = call(MessageType.TRAIN, train_content(overrides), node_config, overrides)
    assert reply.has_error()
    assert "evaluation-only site (role=evaluate): it does not train" in reply.error.reason


def test_an_evaluation_only_site_scores_all_of_its_images_per_group(overrides):
    content = RecordDict(
        {"arrays": global_arrays(overrides), "config": ConfigRecord({"server-round": 1})}
    )
    node_config = {"site-id": "Center002", "data-path": _root(overrides), "role": "evaluate"}
    reply = call(MessageType.EVALUATE, content, node_config, overrides)
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == sum(
        value for key, value in metrics.items() if key.startswith("images/")
    )
    assert reply.content["site"]["role"] == "evaluate"


def _root(overrides):
    return overrides.split()[0].split("=", 1)[1]


def _cross_site_content(overrides):
    config = ConfigRecord({"server-round": 2, "cross-site-model": "global"})
    return RecordDict({"arrays": global_arrays(overrides), "config": config})


def test_a_cross_site_request_is_scored_on_the_sites_test_split(overrides):
    reply = call(
        MessageType.EVALUATE, _cross_site_content(overrides), {"partition-id": 0}, overrides
    )
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] > 0  # Center001's test patient
    assert any(key.startswith("psnr/") for key in metrics)


def test_a_site_whose_file_declines_cross_site_evaluation_says_so(overrides, tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(f"data: {{root: {_root(overrides)}, synthetic_preset: null}}\n"
                         "sharing: {cross_site_evaluation: false}\n")  # fmt: skip
    node_config = {"partition-id": 0, "site-config": str(site_file)}
    reply = call(MessageType.EVALUATE, _cross_site_content(overrides), node_config, overrides)
    assert reply.has_error() and reply.error.code == 3
    assert "does not score other models" in reply.error.reason


def test_a_reply_says_where_the_sites_time_went_before_its_work(overrides):
    reply = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    metrics = reply.content["metrics"]
    for key in ("process-seconds", "import-seconds", "setup-seconds", "build-seconds"):
        assert metrics[key] >= 0.0, key
    again = call(MessageType.TRAIN, train_content(overrides), {"partition-id": 0}, overrides)
    # The same process serving a second message is warm: no start-up to report again.
    assert again.content["metrics"]["process-seconds"] == 0.0
    assert again.content["metrics"]["import-seconds"] == 0.0
