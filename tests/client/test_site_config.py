"""A site takes the coordinator's training recipe and keeps its own paths, device and budget."""

import logging

import pytest

from client.site_config import (
    SITE_CONFIG_VARIABLE,
    SiteConfigError,
    compose_site_config,
    decided_by,
    site_owned_settings,
    split_overrides,
)
from federation.config import compose_overrides


def _site_file(tmp_path, text):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("train.learning_rate", "coordinator"),
        ("model", "coordinator"),
        ("privacy", "coordinator"),
        ("privacy.dp_sgd.enabled", "coordinator"),
        ("data.remove_oversampling", "coordinator"),
        ("data.root", "site"),
        ("data", "site"),
        ("train.device", "site"),
        ("train.devices", "site"),
        ("train.distributed_backend", "site"),
        ("text.path", "site"),
        ("privacy.dp_sgd.epsilon_budget", "site"),
        ("shell", "nobody"),
    ],
)
def test_each_key_is_decided_by_the_coordinator_or_the_site(key, owner):
    assert decided_by(key) == owner


def test_a_site_takes_only_the_overrides_a_coordinator_may_set():
    taken, left = split_overrides(
        ["train.learning_rate=1e-3", "data.root=/elsewhere", "privacy=dp_sgd", "+shell=rm"]
    )
    assert taken == ["train.learning_rate=1e-3", "privacy=dp_sgd"]
    assert left == ["data.root=/elsewhere", "+shell=rm"]


def test_the_site_file_decides_the_data_root_whatever_the_run_config_says(tmp_path, caplog):
    site_file = _site_file(tmp_path, f"data:\n  root: {tmp_path / 'mine'}\n")
    run_config = {"overrides": "data.root=/coordinator/wants/this train.learning_rate=0.01"}
    with caplog.at_level(logging.WARNING, logger="client.site_config"):
        config = compose_site_config(run_config, {"site-config": str(site_file)})
    assert config.data.root == str(tmp_path / "mine")
    assert config.train.learning_rate == 0.01
    assert "data.root is the site's to set" in caplog.text


def test_the_site_owns_its_dp_sgd_budget(tmp_path):
    site_file = _site_file(tmp_path, "privacy:\n  dp_sgd:\n    epsilon_budget: 4.0\n")
    run_config = {"overrides": "privacy=dp_sgd privacy.dp_sgd.epsilon_budget=1000"}
    config = compose_site_config(run_config, {"site-config": str(site_file)})
    assert config.privacy.dp_sgd.enabled is True  # the coordinator's request stands
    assert config.privacy.dp_sgd.epsilon_budget == 4.0


def test_the_environment_names_the_site_file_when_the_node_config_does_not(tmp_path, monkeypatch):
    site_file = _site_file(tmp_path, "train:\n  num_threads: 3\n")
    monkeypatch.setenv(SITE_CONFIG_VARIABLE, str(site_file))
    assert compose_site_config({}, {}).train.num_threads == 3


def test_a_site_file_setting_a_coordinator_key_is_refused_by_name(tmp_path):
    site_file = _site_file(tmp_path, "model:\n  num_cascades: 9\n")
    with pytest.raises(SiteConfigError, match=r"model\.num_cascades is not the site's to set"):
        compose_site_config({}, {"site-config": str(site_file)})


def test_a_missing_site_file_is_named(tmp_path):
    with pytest.raises(SiteConfigError, match="no such file"):
        compose_site_config({}, {"site-config": str(tmp_path / "absent.yaml")})


def test_the_site_owned_part_of_a_config_holds_no_coordinator_key():
    owned = site_owned_settings(compose_overrides("privacy=dp_sgd"))
    assert "remove_oversampling" not in owned["data"]
    assert "enabled" not in owned["privacy"]["dp_sgd"]
    assert owned["privacy"]["dp_sgd"]["delta"] == 1e-5
