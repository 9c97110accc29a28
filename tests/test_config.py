import pytest

import federation.config  # noqa: F401  registers the schema configs/federation.yaml selects
from cardiomm.config import CONFIG_DIR_VARIABLE, ConfigError, config_dir, load_config


def test_root_config_composes_the_mask_settings():
    config = load_config()
    assert list(config.masks.patterns) == ["Uniform", "ktGaussian", "ktRadial"]
    assert list(config.masks.accelerations) == [4, 8, 16, 24]
    assert config.masks.acs_width == 20


def test_command_line_overrides_replace_config_values():
    config = load_config(["seed=11", "masks.acs_width=24"])
    assert config.seed == 11
    assert config.masks.acs_width == 24


def test_a_missing_config_folder_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        config_dir()


def test_a_mistyped_key_is_one_line_naming_it_and_the_nearest_key():
    with pytest.raises(ConfigError) as caught:
        load_config(["train.lerning_rate=3e-4"])
    message = str(caught.value)
    assert "\n" not in message
    assert "'train.lerning_rate'" in message and "did you mean train.learning_rate" in message


def test_an_unknown_group_option_lists_the_options_and_the_nearest():
    with pytest.raises(ConfigError, match=r"choose one of .*fedavg.*did you mean strategy=fedavg"):
        load_config(["strategy=fedavgg"], config_name="federation")


def test_the_command_line_prints_a_config_error_as_one_line(capsys):
    from cardiomm.cli import main

    assert main(["train", "trian.max_steps=3"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "did you mean train.max_steps" in error
