"""The study's clinical check on the tiny synthetic set: a segmenter trained on the internal
centres, every method's phenotypes of the held-out cine short-axis stacks."""

import json

import pytest

from cardiomm.cohort.data_root import load_partition
from simulations.study.clinical import CLINICAL_COLUMNS, SEGMENTER_FOLDER, clinical_check
from simulations.study.composition import load_study_config
from simulations.study.outcome import ExperimentOutcome
from tests.builders import TINY_CLASSICAL, write_consortium
from tests.simulations.test_study_scoring import _checkpoint

FOLD = "held-out=Center003+Center004"
HELD_OUT = ("Center003", "Center004")
MASKS = {"Uniform8", "ktGaussian16", "ktRadial24"}


def _config(*extra):
    return load_study_config(
        [
            "data.synthetic_preset=tiny",
            f"data.hold_out=[{','.join(HELD_OUT)}]",
            "model=tiny",
            "text=none",
            "study.clinical.segmenter_size=tiny",
            "study.clinical.segmenter_steps=5",
            "masks.reference_matrix=null",  # the ACS as acquired: ESPIRiT needs 8 x 8
            *TINY_CLASSICAL,
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def config():
    return _config()


@pytest.fixture(scope="module")
def manifest(config):
    return load_partition(config.data, int(config.seed), show_progress=False)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    checkpoint = _checkpoint(folder / "global.pt", "none", 1)
    return ExperimentOutcome(
        FOLD, "fedavg", "federated", 0, {"global": checkpoint}, folder, None, 1.0, 1
    )


@pytest.fixture(scope="module")
def checked(config, manifest, outcome, tmp_path_factory):
    output = tmp_path_factory.mktemp("clinical")
    return output, clinical_check([outcome], config, manifest, output, FOLD)


def test_every_method_setting_and_held_out_scan_has_a_row(checked):
    _, check = checked
    assert check.note == "" and check.skipped == []
    seen = {(row["experiment"], row["mask"], row["centre"]) for row in check.rows}
    assert seen == {
        (experiment, mask, centre)
        for experiment in ("zero-filled", "best-classical", "fedavg")
        for mask in MASKS
        for centre in HELD_OUT
    }
    assert all(set(row) == set(CLINICAL_COLUMNS) for row in check.rows)


def test_every_method_is_read_at_the_references_frames_of_the_same_scan(checked):
    _, check = checked
    by_file = {}
    for row in check.rows:
        frames = (row["ed_frame"], row["es_frame"], row["reference_lv_edv_ml"])
        assert by_file.setdefault(row["file"], frames) == frames


def test_the_phantoms_true_volumes_come_with_every_row(checked):
    _, check = checked
    assert all(row["true_lv_edv_ml"] > row["true_lv_esv_ml"] > 0 for row in check.rows)


def test_the_segmenter_is_trained_on_internal_centres_and_scored_on_both(checked, manifest):
    output, check = checked
    metrics = json.loads((output / SEGMENTER_FOLDER / "segmenter_metrics.json").read_text())
    assert metrics["settings"]["steps"] == 5 and metrics["images"] == check.segmenter["images"]
    assert set(metrics["held_out_dice"]) == {"lv_blood", "lv_myocardium", "rv_blood"}


def test_a_rerun_reuses_the_segmenter_and_gives_the_same_rows(checked, config, manifest, outcome):
    output, check = checked
    checkpoint = output / SEGMENTER_FOLDER / "segmenter.pt"
    modified = checkpoint.stat().st_mtime_ns
    again = clinical_check([outcome], config, manifest, output, FOLD)
    assert checkpoint.stat().st_mtime_ns == modified
    assert again.rows == check.rows


def test_other_segmenter_settings_train_a_new_segmenter(checked, manifest, tmp_path):
    output, _ = checked
    folder = tmp_path / "clinical"
    (folder / SEGMENTER_FOLDER).mkdir(parents=True)
    for name in ("segmenter.pt", "segmenter_metrics.json"):
        (folder / SEGMENTER_FOLDER / name).write_bytes(
            (output / SEGMENTER_FOLDER / name).read_bytes()
        )
    check = clinical_check([], _config("study.clinical.segmenter_steps=2"), manifest, folder, FOLD)
    assert check.segmenter["settings"]["steps"] == 2


def test_a_segmenter_of_an_older_checkpoint_version_is_trained_again(
    checked, config, manifest, tmp_path
):
    output, _ = checked
    folder = tmp_path / "clinical" / SEGMENTER_FOLDER
    folder.mkdir(parents=True)
    (folder / "segmenter.pt").write_bytes((output / SEGMENTER_FOLDER / "segmenter.pt").read_bytes())
    metrics = json.loads((output / SEGMENTER_FOLDER / "segmenter_metrics.json").read_text())
    del metrics["settings"]["checkpoint_version"]  # as a version-1 study wrote it
    (folder / "segmenter_metrics.json").write_text(json.dumps(metrics))
    modified = (folder / "segmenter.pt").stat().st_mtime_ns
    check = clinical_check([], config, manifest, tmp_path / "clinical", FOLD)
    assert (folder / "segmenter.pt").stat().st_mtime_ns != modified
    assert check.segmenter["settings"]["checkpoint_version"] == 2


def test_held_out_centres_without_labelled_cine_stacks_are_named_as_the_reason(tmp_path):
    root = tmp_path / "consortium"
    write_consortium(root)  # hand-made k-space files: no labels, no geometry
    config = load_study_config(
        [f"data.root={root}", "data.synthetic_preset=null", "data.hold_out=[Center003]"]
    )
    manifest = load_partition(config.data, int(config.seed), show_progress=False)
    check = clinical_check([], config, manifest, tmp_path / "clinical", "held-out=Center003")
    assert check.rows == [] and "no held-out cine short-axis file" in check.note


def test_a_failing_check_becomes_a_note_and_never_stops_the_study(
    config, manifest, monkeypatch, tmp_path
):
    from cardiomm.cohort.manifest import write_manifest
    from simulations.study import clinical, runner
    from simulations.study.plan import Fold
    from simulations.study.settings import StudySettings

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(clinical, "clinical_check", broken)
    fold = Fold(HELD_OUT, ("Center001", "Center002"))
    path = write_manifest(manifest, tmp_path / "manifest.json")
    checks = runner._clinical(
        config, StudySettings.from_config(config), [fold], {fold: path}, [], tmp_path, False
    )
    (check,) = checks.values()
    assert check.rows == [] and check.note == "the check failed (disk full)"
