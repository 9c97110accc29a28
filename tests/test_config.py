import pytest

from cardiomm.config import CONFIG_DIR_VARIABLE, config_dir, load_config


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
