"""A site's round: finding its data from the node config, training, evaluating."""

import math

import pytest
import torch
from flwr.app import MetricRecord, RecordDict

from cardiomm.data.builders import training_dataset
from cardiomm.model.factory import network_from_config
from cardiomm.site_round import RoundInstructions, SiteRound
from client.local import score_metrics, train_metrics, validation_metrics
from client.site import SiteDataError, resolve_site
from federation.config import compose_overrides
from federation.protocol import METRICS, SITE_RECORD, SiteRecord
from federation.reply_checks import ReplyLimits, check_reply
from tests.builders import write_consortium
from tests.client.protocol import PROTOCOL_METRICS


def _consortium_overrides(root) -> str:
    """The written consortium, Center003 held out, no text encoder."""
    return (
        f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 "
        "data.hold_out=[Center003] text=none"
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return compose_overrides(_consortium_overrides(root))


def _reply(site, metrics):
    record = SiteRecord(site.site_id, site.vendor, role=site.role).to_record()
    return RecordDict({METRICS: MetricRecord(metrics), SITE_RECORD: record})


def _train(site, state, instructions, config):
    """(new weights, the reply's metrics, skipped files) of a site's plain training round."""
    trained = SiteRound(site, config).train(state, instructions)
    return trained.state, train_metrics(site.field_strengths, trained), trained.skipped


def _global_state(config):
    torch.manual_seed(0)
    network, _ = network_from_config(config)
    return {key: value.clone() for key, value in network.state_dict().items()}


def test_simulated_nodes_play_the_internal_sites_in_name_order(config):
    assert resolve_site({"partition-id": 0}, config).site_id == "Center001"
    assert resolve_site({"partition-id": 1}, config).site_id == "Center002"


def test_simulated_nodes_beyond_the_internal_sites_play_the_held_out_centres_evaluating_only(
    config,
):
    site = resolve_site({"partition-id": 2}, config)
    assert (site.site_id, site.role) == ("Center003", "evaluate")
    assert site.train_files == () and len(site.evaluation_files) == 1


def test_a_partition_id_beyond_every_centre_is_refused(config):
    with pytest.raises(SiteDataError, match="2 internal sites and 1 held-out centres"):
        resolve_site({"partition-id": 3}, config)


def test_a_deployed_evaluation_site_evaluates_on_all_of_its_files(config):
    node_config = {"site-id": "Center001", "data-path": config.data.root, "role": "evaluate"}
    site = resolve_site(node_config, config)
    assert site.role == "evaluate"
    assert len(site.evaluation_files) == 5  # every patient, whatever its split


def test_a_deployed_site_with_an_unknown_role_is_refused(config):
    node_config = {"site-id": "Center001", "data-path": config.data.root, "role": "observer"}
    with pytest.raises(SiteDataError, match="role='observer'"):
        resolve_site(node_config, config)


def test_a_deployed_site_finds_its_data_by_id_and_path(config):
    site = resolve_site({"site-id": "Center002", "data-path": config.data.root}, config)
    assert (site.site_id, site.vendor) == ("Center002", "UIH")
    assert all("Center002" in str(path) for path in site.train_files)


def test_a_deployed_site_with_an_unknown_id_is_told_the_centres_found(config):
    with pytest.raises(SiteDataError, match=r"Center009 not found.*Center001, Center002"):
        resolve_site({"site-id": "Center009", "data-path": config.data.root}, config)


def test_a_deployed_site_with_a_missing_data_path_is_named(config, tmp_path):
    with pytest.raises(SiteDataError, match="absent is not a directory"):
        resolve_site({"site-id": "Center001", "data-path": str(tmp_path / "absent")}, config)


def test_a_node_without_site_configuration_is_told_how_to_give_it(config):
    with pytest.raises(SiteDataError, match="site-id"):
        resolve_site({}, config)


def test_local_training_reports_the_protocol_metrics_and_new_weights(config):
    site = resolve_site({"partition-id": 0}, config)
    state = _global_state(config)
    instructions = RoundInstructions(
        server_round=1, local_steps=2, learning_rate=1e-3, proximal_mu=0.0, seed=0
    )
    new_state, metrics, skipped = _train(site, state, instructions, config)
    assert set(metrics) == PROTOCOL_METRICS
    assert metrics["num-examples"] == len(training_dataset(list(site.train_files), config, 0))
    assert metrics["slices-seen"] == 2.0
    assert metrics["field-strength"] == 3.0
    assert new_state.keys() == state.keys()
    assert any(not torch.equal(new_state[k], state[k]) for k in state)
    assert skipped == []


def test_local_training_is_reproducible_for_seed_round_and_site(config):
    site = resolve_site({"partition-id": 1}, config)
    instructions = RoundInstructions(2, 2, 1e-3, 0.0, 7)
    first, _, _ = _train(site, _global_state(config), instructions, config)
    second, _, _ = _train(site, _global_state(config), instructions, config)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_site_without_validation_patients_reports_nan_scores(config):
    site = resolve_site({"partition-id": 1}, config)  # Center002 has 2 patients, no val
    assert site.val_files == ()
    metrics = validation_metrics(SiteRound(site, config).evaluate(_global_state(config)))
    assert metrics["num-examples"] == 0.0
    assert math.isnan(metrics["psnr"])


def test_evaluation_scores_the_global_model_on_the_validation_split(config):
    site = resolve_site({"partition-id": 0}, config)  # Center001: 5 patients, 1 in val
    metrics = validation_metrics(SiteRound(site, config).evaluate(_global_state(config)))
    assert metrics["num-examples"] > 0
    assert metrics["psnr"] > 0


def test_an_evaluation_site_scores_every_image_per_modality_view_and_setting(config):
    site = resolve_site({"partition-id": 2}, config)  # Center003, held out: one patient
    scores = SiteRound(site, config).score(site.evaluation_files, _global_state(config))
    metrics, skipped = score_metrics(scores), scores.skipped
    groups = [key.split("/", 1)[1] for key in metrics if key.startswith("images/")]
    assert groups and all(group.startswith("cine.short-axis.") for group in groups)
    assert sum(metrics[f"images/{group}"] for group in groups) == metrics["num-examples"]
    assert metrics["psnr"] > 0 and skipped == []
    check_reply(_reply(site, metrics), "zero-shot", ReplyLimits())  # the server accepts it


@pytest.fixture(scope="module")
def window_config(config):
    """The consortium with the frame-window network (each frame from its neighbours)."""
    return compose_overrides(f"{_consortium_overrides(config.data.root)} model=tiny_window")


def test_a_site_trains_the_frame_window_network_on_windows_of_its_cines(window_config):
    site = resolve_site({"partition-id": 0}, window_config)
    state = _global_state(window_config)
    instructions = RoundInstructions(1, 2, 1e-3, 0.0, 0)
    new_state, metrics, skipped = _train(site, state, instructions, window_config)
    assert set(metrics) == PROTOCOL_METRICS and metrics["slices-seen"] == 2.0
    assert any(not torch.equal(new_state[k], state[k]) for k in state)
    assert skipped == []


def test_a_site_scores_the_frame_window_network_on_every_image(window_config):
    site = resolve_site({"partition-id": 2}, window_config)  # Center003, held out
    scores = SiteRound(site, window_config).score(
        site.evaluation_files, _global_state(window_config)
    )
    metrics = score_metrics(scores)
    assert metrics["num-examples"] > 0 and metrics["psnr"] > 0 and scores.skipped == []
    check_reply(_reply(site, metrics), "zero-shot", ReplyLimits())
