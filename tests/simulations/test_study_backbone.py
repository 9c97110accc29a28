"""The study's public backbone: trained once on a synthetic set no study site is in, reused on
resume, and the start of the federations that ask for it."""

import pytest

from simulations.study.backbone import BACKBONE_FOLDER, backbone_overrides, public_backbone
from simulations.study.composition import load_study_config
from simulations.study.settings import StudySettings

ENTRY = (
    "+study.catalogue.fedavg-ft={kind:federated,public_backbone:true,overrides:['strategy=fedavg']}"
)


def _config(tmp_path, *extra):
    return load_study_config(
        [
            "model=tiny",
            "text=none",
            "study.experiments=[fedavg-ft]",
            ENTRY,
            f"output_dir={tmp_path}",
            *extra,
        ]
    )


def test_an_experiment_starting_from_the_backbone_needs_one_named(tmp_path):
    with pytest.raises(ValueError, match=r"study\.public_backbone is null"):
        StudySettings.from_config(_config(tmp_path))


def test_the_backbone_trains_on_its_own_synthetic_set_without_the_studys_manifest(tmp_path):
    config = _config(tmp_path, "study.public_backbone={preset:tiny,steps:2}")
    overrides = backbone_overrides(config, "tiny", 2, tmp_path / BACKBONE_FOLDER)
    assert "data.synthetic_preset=tiny" in overrides and "data.manifest=null" in overrides
    # The study holds out Center005 and Center006, which the tiny set does not have.
    assert "data.hold_out=[]" in overrides
    assert any(item.startswith("data.root=") and "synthetic-tiny" in item for item in overrides)


def test_the_backbone_is_trained_once_and_reused(tmp_path):
    config = _config(tmp_path, "study.public_backbone={preset:tiny,steps:2}")
    settings = StudySettings.from_config(config)
    checkpoint = public_backbone(config, settings, tmp_path)
    assert checkpoint.is_file()
    modified = checkpoint.stat().st_mtime_ns
    assert public_backbone(config, settings, tmp_path) == checkpoint
    assert checkpoint.stat().st_mtime_ns == modified


def test_a_study_without_backbone_experiments_trains_none(tmp_path):
    config = load_study_config(
        ["model=tiny", "text=none", "study.public_backbone={preset:tiny,steps:2}"]
    )
    assert public_backbone(config, StudySettings.from_config(config), tmp_path) is None


def test_the_backbone_leaves_out_the_centres_named_like_the_held_out_ones(tmp_path):
    config = _config(
        tmp_path, "study.public_backbone={preset:tiny,steps:2}", "data.hold_out=[Center003]"
    )
    overrides = backbone_overrides(config, "tiny", 2, tmp_path / BACKBONE_FOLDER)
    assert "data.hold_out=[Center003]" in overrides
