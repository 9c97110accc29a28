"""The study's clinical numbers: agreement grids, intervals, paired LVEF comparisons, the
verdict on the LVEF goal and the report's clinical section (rows made by hand)."""

import math

import numpy as np
import pytest

from simulations.study.clinical import ClinicalCheck
from simulations.study.clinical_report import clinical_section, clinical_tables
from simulations.study.clinical_results import (
    FULLY_SAMPLED,
    clinical_comparison_rows,
    clinical_result_rows,
    clinical_verdict_rows,
    measurement_chain_rows,
    paired_grid,
)
from simulations.study.results import MET, MET_ON_MEAN, MISSED, Comparison
from simulations.study.statistics import bootstrap_mean, bootstrap_statistic

FOLD = "held-out=Center005"
FIELDS = ("lv_edv_ml", "lv_esv_ml", "lv_ef_percent", "lv_mass_g", "rv_edv_ml", "rv_esv_ml")
FIELDS += ("rv_ef_percent",)


def _row(
    experiment, file, lvef, reference_lvef=60.0, *, seed="0", model="global", mask="ktRadial24"
):
    row = {
        "fold": FOLD,
        "experiment": experiment,
        "kind": "reference" if seed == "-" else "federated",
        "seed": seed,
        "model": model,
        "centre": "Center005",
        "vendor": "GE",
        "mask": mask,
        "file": file,
        "ed_frame": 0,
        "es_frame": 5,
        "true_lv_edv_ml": 120.0,
        "true_lv_esv_ml": 50.0,
        "true_lv_ef_percent": 58.0,
        "dice_lv_blood": 0.9,
        "dice_lv_myocardium": 0.8,
        "dice_rv_blood": 0.85,
    }
    for name in FIELDS:
        row[f"recon_{name}"] = 100.0
        row[f"reference_{name}"] = 100.0
    row["recon_lv_ef_percent"] = lvef
    row["reference_lv_ef_percent"] = reference_lvef
    return row


def _method(experiment, errors, seed="0", mask="ktRadial24"):
    """One row per scan with LVEF = reference + error."""
    return [
        _row(experiment, f"scan{index}.mat", 60.0 + error, seed=seed, mask=mask)
        for index, error in enumerate(errors)
    ]


def test_a_statistic_of_one_grid_bootstraps_like_the_mean():
    grid = np.random.default_rng(1).normal(size=(3, 7))
    mean = bootstrap_mean(grid, resamples=500, seed=4)
    same = bootstrap_statistic([grid], lambda values: values.mean(axis=1), resamples=500, seed=4)
    assert (same.mean, same.ci_low, same.ci_high) == pytest.approx(
        (mean.mean, mean.ci_low, mean.ci_high)
    )


def test_a_local_only_cell_averages_each_site_models_own_error():
    rows = [
        _row("local-only", "scan0.mat", 62.0, model="Center001"),
        _row("local-only", "scan0.mat", 58.0, model="Center002"),
    ]
    grid = paired_grid(rows, "local-only", "ktRadial24", "lv_ef_percent", "reference")
    assert grid.absolute_error.tolist() == [[2.0]]  # not |mean(62, 58) - 60| = 0
    assert grid.measured.tolist() == [[60.0]]


def test_a_scan_without_a_value_is_left_out_and_counted():
    rows = [*_method("fedavg", [1.0, 2.0]), _row("fedavg", "scan9.mat", math.nan)]
    grid = paired_grid(rows, "fedavg", "ktRadial24", "lv_ef_percent", "reference")
    assert grid.files == ("scan0.mat", "scan1.mat")
    assert grid.unmeasured == 1


def test_the_results_give_error_bias_limits_and_correlation_of_every_phenotype():
    rows = _method("fedavg", [1.0, -3.0, 2.0, 0.0])
    results = clinical_result_rows(rows, FOLD)
    lvef = {
        row["statistic"]: row
        for row in results
        if row["quantity"] == "lv_ef_percent" and row["against"] == "reference"
    }
    assert lvef["mae"]["value"] == pytest.approx(1.5)
    assert lvef["bias"]["value"] == pytest.approx(0.0)
    spread = np.std([1.0, -3.0, 2.0, 0.0], ddof=1)
    assert lvef["loa_high"]["value"] == pytest.approx(1.96 * spread)
    assert lvef["mae"]["ci_low"] <= 1.5 <= lvef["mae"]["ci_high"]
    assert {row["quantity"] for row in results} >= set(FIELDS) | {"dice_lv_blood"}


def test_the_fully_sampled_images_are_set_against_the_phantoms_truth():
    results = clinical_result_rows(_method("fedavg", [1.0, 1.0]), FOLD)
    fully_sampled = [
        row for row in results if row["experiment"] == FULLY_SAMPLED and row["statistic"] == "mae"
    ]
    assert {row["against"] for row in fully_sampled} == {"true"}
    lvef = next(row for row in fully_sampled if row["quantity"] == "lv_ef_percent")
    assert lvef["value"] == pytest.approx(2.0)  # reference 60 against the truth's 58


def test_comparisons_pair_the_absolute_lvef_errors_of_the_same_scans():
    rows = _method("fedavg", [1.0, -1.0, 0.5]) + _method(
        "best-classical", [3.0, 4.0, -2.0], seed="-"
    )
    (row,) = clinical_comparison_rows(rows, FOLD, [Comparison("fedavg", "best-classical")])
    assert row["difference"] == pytest.approx((2.5 - 9.0) / 3)
    assert row["files"] == 3 and not row["paired_seeds"]


def _verdicts(fedavg_errors, sense_errors):
    rows = _method("fedavg", fedavg_errors) + _method("best-classical", sense_errors, seed="-")
    results = clinical_result_rows(rows, FOLD)
    comparisons = clinical_comparison_rows(rows, FOLD, [Comparison("fedavg", "best-classical")])
    return clinical_verdict_rows(results, comparisons, "fedavg")


def test_an_lvef_error_whose_interval_is_below_one_point_meets_the_goal():
    below, better = _verdicts([0.2, -0.3, 0.1, 0.2], [3.0, -4.0, 2.0, 5.0])
    assert below["verdict"] == MET and better["verdict"] == MET


def test_an_lvef_error_below_one_point_on_the_mean_only_is_said_so():
    below, _ = _verdicts([0.1, 0.1, 0.1, 3.5], [3.0, -4.0, 2.0, 5.0])
    assert below["value"] < 1 and below["verdict"] == MET_ON_MEAN


def test_an_lvef_error_above_senses_misses_the_goal():
    below, better = _verdicts([3.0, -2.0, 4.0, 2.0], [0.5, 0.2, -0.1, 0.3])
    assert below["verdict"] == MISSED and better["verdict"] == MISSED


def test_a_verdict_needs_the_goal_setting_to_be_measured():
    rows = _method("fedavg", [0.1, 0.2], mask="Uniform8")
    assert clinical_verdict_rows(clinical_result_rows(rows, FOLD), [], "fedavg") == []


def test_the_section_says_when_the_check_was_not_run():
    tables = clinical_tables({}, [], "fedavg")
    lines = clinical_section(None, tables, FOLD, [], "fedavg")
    assert any("--no-clinical" in line for line in lines)


def test_the_section_says_why_nothing_was_measured():
    check = ClinicalCheck([], {}, [("a/cine_sax.mat", "no geometry sidecar")], "no labels")
    tables = clinical_tables({FOLD: check}, [], "fedavg")
    text = "\n".join(clinical_section(check, tables, FOLD, [], "fedavg"))
    assert "Nothing measured: no labels." in text
    assert "a/cine_sax.mat (no geometry sidecar)" in text


def test_the_section_has_the_verdict_and_the_lvef_table():
    rows = _method("fedavg", [0.2, -0.3, 0.1]) + _method(
        "best-classical", [3.0, -4.0, 2.0], seed="-"
    )
    segmenter = {"settings": {"size": "tiny", "steps": 3}, "images": 10, "seconds": 1.0}
    check = ClinicalCheck(rows, segmenter, [])
    tables = clinical_tables({FOLD: check}, [], "fedavg")
    text = "\n".join(clinical_section(check, tables, FOLD, ["best-classical", "fedavg"], "fedavg"))
    assert "#### Verdict: LVEF at ktRadial24" in text
    assert "fedavg: mean absolute LVEF error below the best classical method's" in text
    assert "| fedavg | 0.20 [" in text


SEGMENTER = {
    "held_out_dice": {"lv_blood": 0.95, "lv_myocardium": 0.82, "rv_blood": 0.80},
    "held_out_dice_ci": {
        "lv_blood": [0.93, 0.97],
        "lv_myocardium": [0.78, 0.86],
        "rv_blood": [0.76, 0.84],
    },
}


def test_the_measurement_chain_judges_dice_and_lvef_on_the_truth():
    results = clinical_result_rows(_method("fedavg", [1.0, 1.0]), FOLD)
    verdicts = {row["goal"]: row["verdict"] for row in measurement_chain_rows(results, SEGMENTER)}
    assert verdicts == {
        "Dice lv blood": MET,
        "Dice lv myocardium": MET_ON_MEAN,
        "Dice rv blood": MISSED,
        # the fully sampled LVEF is 60 against the truth's 58 on every scan: 2 points
        "LVEF MAE against the truth (points)": MET,
    }


def test_the_section_states_the_measurement_chain_before_the_lvef_verdict():
    rows = _method("fedavg", [0.2, -0.3, 0.1])
    check = ClinicalCheck(rows, {"settings": {}, **SEGMENTER}, [])
    tables = clinical_tables({FOLD: check}, [], "fedavg")
    text = "\n".join(clinical_section(check, tables, FOLD, ["fedavg"], "fedavg"))
    chain = text.index("#### The measurement chain on the fully sampled held-out references")
    assert chain < text.index("#### Verdict: LVEF at ktRadial24")
    assert "| Dice rv blood | 0.80 [0.76, 0.84] | >= 0.85 | missed |" in text
    assert "Not met: Dice lv myocardium; Dice rv blood." in text
