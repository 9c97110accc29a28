"""The study report's privacy section: epsilon spent per private experiment, its cost against
FedAvg, the verdict on the privacy goals and the privacy-utility figure (rows made by hand)."""

from pathlib import Path

from simulations.study.outcome import ExperimentOutcome
from simulations.study.privacy import (
    privacy_section,
    privacy_utility_figure,
    privacy_verdict_rows,
    private_experiments,
)
from simulations.study.results import MET, MET_ON_MEAN, MISSED

FOLD = "held-out=Center005"


def _outcome(experiment, seed=0, **details):
    return ExperimentOutcome(
        FOLD, experiment, "federated", seed, {}, Path("."), None, 1.0, 10, details
    )


def _comparison(a, difference, low, high, mask="ktRadial24"):
    return {
        "a": a, "b": "fedavg", "metric": "psnr", "view": "ranking", "split": "held-out",
        "mask": mask, "difference": difference, "ci_low": low, "ci_high": high,
    }  # fmt: skip


def _result(experiment, psnr, mask="ktRadial24"):
    return {
        "experiment": experiment, "mask": mask, "split": "held-out", "metadata": "full",
        "view": "ranking", "centre": "all", "psnr": psnr, "psnr_ci_low": psnr - 1,
        "psnr_ci_high": psnr + 1,
    }  # fmt: skip


OUTCOMES = [
    _outcome("fedavg"),
    _outcome("dp-eps8-a", dp_epsilon=7.9, dp_target_epsilon=8.0, dp_unit="patient"),
    _outcome("dp-eps8-a", seed=1, dp_epsilon=7.95, dp_target_epsilon=8.0, dp_unit="patient"),
    _outcome("dp-eps8-b", dp_epsilon=7.9, dp_target_epsilon=8.0, dp_unit="patient"),
    _outcome("dp-eps1", dp_epsilon=0.99, dp_target_epsilon=1.0, dp_unit="patient"),
    _outcome("central", central_dp_epsilon=3.2),
]


def test_private_experiments_report_the_largest_epsilon_over_seeds_and_their_mechanism():
    private = private_experiments(OUTCOMES)
    assert list(private) == ["dp-eps8-a", "dp-eps8-b", "dp-eps1", "central"]
    assert private["dp-eps8-a"]["epsilon"] == 7.95
    assert private["central"]["mechanism"] == "central DP"


def test_the_best_private_experiment_of_a_target_is_judged_against_its_allowed_loss():
    comparisons = [
        _comparison("dp-eps8-a", -3.0, -4.0, -2.0),
        _comparison("dp-eps8-b", -0.5, -0.8, -0.2),
        _comparison("dp-eps1", -2.5, -3.5, -1.5),
    ]
    verdicts = {
        row["goal"]: row for row in privacy_verdict_rows(comparisons, private_experiments(OUTCOMES))
    }
    eight = verdicts["epsilon 8: at most 1 dB below FedAvg"]
    assert (eight["best"], eight["verdict"]) == ("dp-eps8-b", MET)
    assert verdicts["epsilon 1: at most 3 dB below FedAvg"]["verdict"] == MET_ON_MEAN


def test_a_private_experiment_losing_more_than_allowed_misses_the_goal():
    comparisons = [_comparison("dp-eps1", -6.0, -7.0, -5.0)]
    (verdict,) = privacy_verdict_rows(comparisons, private_experiments(OUTCOMES))
    assert verdict["verdict"] == MISSED


def test_a_study_without_private_experiments_has_no_privacy_section():
    assert privacy_section([_result("fedavg", 20.0)], [], [_outcome("fedavg")]) == []


def test_the_section_lists_epsilon_spent_and_the_cost_against_fedavg():
    results = [_result("fedavg", 20.0), _result("dp-eps1", 15.0)]
    comparisons = [_comparison("dp-eps1", -5.0, -6.0, -4.0)]
    text = "\n".join(privacy_section(results, comparisons, OUTCOMES))
    assert "| dp-eps1 | DP-SGD | patient | 1 | 0.99 | -5.00 [-6.00, -4.00] |" in text
    assert "#### Verdict: privacy with utility" in text


def test_the_privacy_utility_figure_is_drawn(tmp_path):
    results = [_result("fedavg", 20.0), _result("best-classical", 16.0), _result("dp-eps1", 15.0)]
    path = privacy_utility_figure(results, OUTCOMES, tmp_path / "privacy.png")
    assert path.read_bytes().startswith(b"\x89PNG")
