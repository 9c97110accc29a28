"""From per-file scores to results: grids over seeds and files, the verdict, and choices made
on internal validation only."""

import json

import pytest

from simulations.study.design import StudyDesign
from simulations.study.outcome import ExperimentOutcome
from simulations.study.report import write_report
from simulations.study.results import (
    MET,
    MET_ON_MEAN,
    MISSED,
    Selection,
    score_grid,
    select_on_validation,
    verdict_rows,
)

FOLD = "held-out=Center003"
HELD_OUT = Selection("held-out", "full", "ranking", "Uniform8")


def _row(experiment, seed, model, file, psnr):
    return {
        "fold": FOLD,
        "experiment": experiment,
        "kind": "federated",
        "seed": seed,
        "model": model,
        "split": "held-out",
        "metadata": "full",
        "view": "ranking",
        "centre": "Center003",
        "vendor": "GE",
        "modality": "cine",
        "mask": "Uniform8",
        "file": file,
        "images": 6,
        "psnr": psnr,
        "ssim": 0.9,
        "nmse": 0.01,
    }


def test_a_grid_has_a_row_per_seed_and_a_column_per_file_averaged_over_site_models():
    rows = [
        _row("local-only", "0", "Center001", "a.mat", 28.0),
        _row("local-only", "0", "Center002", "a.mat", 30.0),
        _row("local-only", "1", "Center001", "a.mat", 27.0),
        _row("local-only", "1", "Center002", "a.mat", 29.0),
        _row("local-only", "0", "Center001", "b.mat", 31.0),
        _row("local-only", "0", "Center002", "b.mat", 33.0),
        _row("local-only", "1", "Center001", "b.mat", 30.0),
        _row("local-only", "1", "Center002", "b.mat", 32.0),
    ]
    grid = score_grid(rows, "local-only", HELD_OUT)
    assert grid.seeds == ("0", "1") and grid.files == ("a.mat", "b.mat")
    assert grid.values["psnr"].tolist() == [[29.0, 32.0], [28.0, 31.0]]


def test_a_grid_keeps_only_the_files_every_seed_was_scored_on():
    rows = [
        _row("fedavg", "0", "global", "a.mat", 30.0),
        _row("fedavg", "0", "global", "b.mat", 31.0),
        _row("fedavg", "1", "global", "a.mat", 30.5),
    ]
    assert score_grid(rows, "fedavg", HELD_OUT).files == ("a.mat",)


def _comparison(difference, low, high, a="fedavg", b="best-classical"):
    return {
        "a": a,
        "b": b,
        "metric": "psnr",
        "view": "ranking",
        "split": "held-out",
        "mask": "Uniform8",
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": 0.01,
    }


@pytest.mark.parametrize(
    ("difference", "low", "verdict"),
    [(1.6, 1.2, MET), (1.3, 0.4, MET_ON_MEAN), (0.8, 0.1, MISSED)],
)
def test_a_goal_is_met_only_when_its_interval_clears_the_margin(difference, low, verdict):
    (row,) = verdict_rows([_comparison(difference, low, 2.0)])
    assert row["goal"] == "FedAvg at least 1 dB above the best classical method"
    assert row["verdict"] == verdict


def test_goals_whose_experiments_were_not_run_are_left_out():
    assert verdict_rows([_comparison(1.0, 0.5, 1.5, a="fedprox")]) == []


def test_the_best_validation_score_is_chosen():
    assert select_on_validation({"a": 30.0, "b": 31.5, "c": 31.0}) == ("b", 31.5)


def test_a_tie_goes_to_the_first_candidate_and_nan_is_never_chosen():
    assert select_on_validation({"a": float("nan"), "b": 30.0, "c": 30.0}) == ("b", 30.0)


def test_a_choice_without_any_validation_score_is_refused():
    with pytest.raises(ValueError, match="no candidate has a finite validation score"):
        select_on_validation({"a": float("nan")})


def test_a_tuning_study_chooses_on_validation_whatever_the_held_out_centres_say(tmp_path):
    outcomes = []
    for name, validation in (("eta-small", 32.0), ("eta-large", 30.0)):
        history = tmp_path / name / "history.json"
        history.parent.mkdir()
        history.write_text(json.dumps([{"round": 1, "evaluate": {"psnr": validation}}]))
        outcomes.append(
            ExperimentOutcome(
                FOLD, name, "federated", 0, {"global": tmp_path / "x.pt"}, tmp_path, history, 1.0, 1
            )
        )
    # On the held-out centres the other candidate is far better: it must not matter.
    rows = [_row("eta-small", "0", "global", "a.mat", 20.0)]
    rows += [_row("eta-large", "0", "global", "a.mat", 35.0)]
    design = StudyDesign(title="t", selection_groups={"eta": ["eta-small", "eta-large"]})
    text = write_report(tmp_path, rows, outcomes, design)["report"].read_text()
    assert "chosen on internal validation: **eta-small** (32.00 dB" in text


def test_a_model_with_non_finite_scores_gets_nan_means_and_no_comparison_not_a_crash():
    import math

    from simulations.study.results import Comparison, comparison_rows, result_rows

    rows = [
        _row("fedavg", "0", "global", "a.mat", 28.0),
        _row("fedavg", "0", "global", "b.mat", 30.0),
        _row("central-dp", "0", "global", "a.mat", float("nan")),
        _row("central-dp", "0", "global", "b.mat", 12.0),
    ]
    results = {(row["experiment"], row["centre"]): row for row in result_rows(rows, FOLD)}
    assert math.isnan(results[("central-dp", "all")]["psnr"])
    assert results[("fedavg", "all")]["psnr"] == 29.0
    comparisons = comparison_rows(rows, FOLD, [Comparison("central-dp", "fedavg")])
    assert [row["metric"] for row in comparisons] == ["ssim"]  # PSNR: nothing to compare
