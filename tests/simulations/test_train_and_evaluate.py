"""`cardiomm train` and `cardiomm evaluate` on a small consortium (tiny model, few steps)."""

import csv
import json

import pytest

from cardiomm.cli import main
from cardiomm.config import load_config
from simulations.checkpoint_evaluation import build_methods, run_evaluation
from simulations.training import TrainingFailedError, run_training
from tests.builders import TINY_CLASSICAL, write_consortium


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return root


def _data(root):
    return [f"data.root={root}", "data.synthetic_preset=null", "data.val_fraction=0.2"]


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    config = load_config([*_data(root), "text=none", "train.max_steps=3", f"output_dir={output}"])
    return output, run_training(config, show_progress=False)


def test_training_writes_checkpoint_metrics_config_and_curves(trained):
    output, _ = trained
    assert (output / "checkpoints" / "final.pt").is_file()
    assert json.loads((output / "metrics.json").read_text())["metrics"]["steps"] == 3.0
    assert (output / "config.yaml").is_file()
    assert (output / "training_curves.png").read_bytes().startswith(b"\x89PNG")


def test_centralised_training_pools_every_internal_site(trained):
    _, summary = trained
    assert summary["sites"] == "Center001, Center002, Center003"


def test_training_on_a_named_site_uses_only_that_site(root, tmp_path):
    config = load_config(
        [
            *_data(root),
            "text=none",
            "train.max_steps=1",
            f"output_dir={tmp_path}",
            "data.sites=[Center002]",
        ]
    )
    summary = run_training(config, show_progress=False)
    assert summary["sites"] == "Center002"
    assert summary["train_images"] == 2 * 2 * 3  # 2 patients x 2 frames x 3 slices


def test_training_on_an_unknown_site_is_refused_with_the_internal_sites(root, tmp_path):
    config = load_config([*_data(root), f"output_dir={tmp_path}", "data.sites=[Center009]"])
    with pytest.raises(ValueError, match=r"Center009.*Center001, Center002, Center003"):
        run_training(config, show_progress=False)


def test_a_failing_step_keeps_the_last_good_weights_and_names_them(root, tmp_path, monkeypatch):
    config = load_config([*_data(root), "text=none", "train.max_steps=2", f"output_dir={tmp_path}"])

    def out_of_memory(output, target, l1):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("cardiomm.train.loop.reconstruction_loss", out_of_memory)
    with pytest.raises(TrainingFailedError, match=r"step 1 on .*frame.*interrupted\.pt") as caught:
        run_training(config, show_progress=False)
    assert "RuntimeError: out of memory" in str(caught.value)
    assert (tmp_path / "checkpoints" / "interrupted.pt").is_file()


def test_a_missing_real_data_root_is_named(tmp_path):
    config = load_config(
        [f"data.root={tmp_path / 'absent'}", "data.synthetic_preset=null", f"output_dir={tmp_path}"]
    )
    with pytest.raises(FileNotFoundError, match=r"absent: no such data directory"):
        run_training(config, show_progress=False)


def test_evaluation_scores_every_method_at_every_mask(root, trained, tmp_path):
    _, summary = trained
    config = load_config(
        [
            *_data(root),
            f"checkpoints=[{summary['checkpoint']}]",
            "baselines=[zero-filled]",
            "split=train",
            f"output_dir={tmp_path}",
        ],
        config_name="evaluate",
    )
    result = run_evaluation(config, show_progress=False)
    pairs = {(row["method"], row["mask"]) for row in result.summary(["method", "mask"])}
    assert pairs == {
        (method, mask)
        for method in ("cardiomm", "zero-filled")
        for mask in ("Uniform8", "ktGaussian16", "ktRadial24")
    }
    with open(tmp_path / "summary_centre.csv") as handle:
        assert {row["centre"] for row in csv.DictReader(handle)} == {
            "Center001",
            "Center002",
            "Center003",
        }
    assert "## By vendor" in (tmp_path / "summary.md").read_text()


def test_evaluation_of_held_out_centres_uses_only_them(root, tmp_path):
    config = load_config(
        [
            *_data(root),
            "data.hold_out=[Center002]",
            "split=held-out",
            "baselines=[zero-filled]",
            f"output_dir={tmp_path}",
        ],
        config_name="evaluate",
    )
    result = run_evaluation(config, show_progress=False)
    assert {record["centre"] for record in result.records} == {"Center002"}


def test_two_methods_with_one_name_are_refused(trained):
    _, summary = trained
    with pytest.raises(ValueError, match="two methods are called cardiomm"):
        build_methods([summary["checkpoint"]] * 2, [], None)


def test_train_and_evaluate_commands_run_from_the_command_line(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(["train", *_data(root), "text=none", "train.max_steps=1", f"output_dir={run_dir}"])
        == 0
    )
    assert "checkpoint:" in capsys.readouterr().out
    code = main(
        [
            "evaluate",
            *_data(root),
            f"checkpoints=[{run_dir}/checkpoints/final.pt]",
            "baselines=[]",
            "split=train",
            "max_items=2",
            f"output_dir={tmp_path / 'eval'}",
        ]
    )
    assert code == 0
    assert "ktRadial24" in capsys.readouterr().out


def _classical(tmp_path):
    # A two-point grid and few iterations: the tuning machinery, not its figures.
    return [
        f"classical.cache_dir={tmp_path / 'store'}",
        *TINY_CLASSICAL,
        "max_items=2",
        "masks.evaluation=[{pattern: ktRadial, acceleration: 8}]",
    ]


def _classical_evaluation(root, tmp_path, *overrides):
    config = load_config(
        [*_data(root), *_classical(tmp_path), *overrides, f"output_dir={tmp_path / 'eval'}"],
        config_name="evaluate",
    )
    return run_evaluation(config, show_progress=False)


def test_classical_baselines_are_tuned_on_validation_files_and_timed(root, tmp_path):
    result = _classical_evaluation(root, tmp_path, "baselines=[kt-sparse,best-classical]")
    assert {row["method"] for row in result.summary(["method"])} == {"kt-sparse", "best-classical"}
    tuning = json.loads((tmp_path / "eval" / "classical_tuning.json").read_text())
    (choice,) = tuning["choices"].values()
    assert choice["best_method"] in ("cg-sense", "l1-wavelet", "kt-sparse")
    scored = {record["file"] for record in result.records}
    assert tuning["signature"]["files"] and not scored & set(tuning["signature"]["files"])
    assert "(best)" in (tmp_path / "eval" / "classical_tuning.md").read_text()
    with open(tmp_path / "eval" / "classical_seconds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["method"] for row in rows} == {"kt-sparse", "best-classical"}
    assert all(float(row["seconds per image"]) > 0 for row in rows)


def test_the_retired_hand_written_sense_is_refused_with_its_replacement():
    with pytest.raises(ValueError, match="'sense' is retired: use cg-sense"):
        build_methods([], ["sense"], None)


def test_untuned_classical_baselines_run_with_their_defaults(root, tmp_path):
    result = _classical_evaluation(root, tmp_path, "classical.tune=false", "baselines=[cg-sense]")
    assert {row["method"] for row in result.summary(["method"])} == {"cg-sense"}
    assert not (tmp_path / "eval" / "classical_tuning.json").exists()
