"""A tiny held-out-centre study end to end: 2 internal sites (Siemens, UIH) + 1 held-out
centre, 2 rounds of 2 local steps, the tiny model without text encoder; local-only,
centralised, FedAvg and vendor-balanced, the federations through the real `flwr run .`;
then the evaluation, the report and MLflow, and a resumed invocation.

The tests share one study (module fixture) and run in file order; the resume test, which
rewrites the report, comes last.
"""

import csv
import json
import math
import sqlite3
from contextlib import closing

import pytest

from simulations.study import processes
from simulations.study.composition import load_study_config
from simulations.study.outcome import ExperimentOutcome
from simulations.study.runner import run_study
from tests.builders import TINY_CLASSICAL, write_consortium

pytestmark = pytest.mark.slow

ROUNDS, LOCAL_STEPS = 2, 2
SITES = ["Center001", "Center002"]
EXPERIMENTS = ["local-only", "centralised", "fedavg", "vendor_balanced"]
FEDERATED = ["fedavg", "vendor_balanced"]
MASKS = ["Uniform8", "ktGaussian16", "ktRadial24"]
FOLD = "held-out=Center003"
FOLD_DIR = "held-out-Center003"


def study_config(root, output, *extra):
    return load_study_config(
        [
            f"data.root={root}",
            "data.synthetic_preset=null",
            "data.hold_out=[Center003]",
            "model=tiny",
            "text=none",  # no text encoder to load in every process: the fastest model
            f"study.rounds={ROUNDS}",
            f"study.local_steps={LOCAL_STEPS}",
            f"study.experiments=[{','.join(EXPERIMENTS)}]",
            "study.max_eval_items=2",
            "study.curve_eval_items=2",
            "study.experiment_timeout=300",
            "masks.reference_matrix=null",  # the ACS as acquired: ESPIRiT needs 8 x 8
            *TINY_CLASSICAL,
            f"output_dir={output}",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)  # Center001 Siemens (5 patients), Center002 UIH, Center003 Siemens
    output = tmp_path_factory.mktemp("study")
    result = run_study(study_config(root, output), show_progress=False)
    return root, output, result


def label(experiment):
    return f"{FOLD} / {experiment} / seed 0"


def run_dir(output, experiment):
    return output / FOLD_DIR / experiment / "seed-0"


def outcome(output, experiment):
    return ExperimentOutcome.read(run_dir(output, experiment) / "outcome.json")


def test_every_experiment_finishes(study):
    _, output, result = study
    assert result.failed == {}, result.failed
    assert result.ran == [label(name) for name in EXPERIMENTS]
    assert result.skipped == []
    kinds = {"local-only": "local", "centralised": "centralised"}
    for name in EXPERIMENTS:
        finished = outcome(output, name)
        assert finished.kind == kinds.get(name, "federated")
        assert finished.fold == FOLD
        assert finished.seed == 0
        assert finished.wall_seconds > 0
        assert all(path.is_file() for path in finished.checkpoints.values())
    assert sorted(outcome(output, "local-only").checkpoints) == SITES


def test_every_experiment_gets_the_same_total_steps(study):
    _, output, _ = study
    per_site = ROUNDS * LOCAL_STEPS
    total = len(SITES) * per_site
    local = outcome(output, "local-only")
    assert local.steps_per_site == per_site
    assert local.details["steps_taken"] == dict.fromkeys(SITES, per_site)
    centralised = outcome(output, "centralised")
    assert centralised.steps_per_site == total
    assert centralised.details["steps_taken"] == {"pooled": total}
    for name in FEDERATED:
        federated = outcome(output, name)
        assert federated.steps_per_site == per_site
        assert federated.details["steps_taken"] == dict.fromkeys(SITES, per_site)
    for name in EXPERIMENTS:
        assert outcome(output, name).details["total_steps"] == total


def test_federations_ran_through_flower_and_left_no_process(study):
    _, output, _ = study
    for name in FEDERATED:
        folder = run_dir(output, name)
        log = (folder / "flwr.log").read_text()
        assert "Starting Flower Simulation" in log and "federation done" in log, log[-3000:]
        history = json.loads((folder / "history.json").read_text())
        assert [record["round"] for record in history] == [1, 2]
        for record in history:
            assert sorted(record["sites"]) == SITES and not record["errors"]
            # The server never reads the held-out centres: the study scores them after, and
            # they score themselves as evaluation-only sites (after the last round).
            assert "held-out/psnr" not in record.get("global", {})
        assert "zero-shot" not in history[0]
        assert history[-1]["zero-shot"]["Center003"]["num-examples"] > 0
        details = outcome(output, name).details
        assert details["strategy"] == name
        # `flwr run` leaves its SuperLink running: the runner found and stopped it.
        assert details["processes_stopped"] >= 1
        assert processes.marked(str(folder)) == []
    # Vendor-balanced: Siemens and UIH count the same, whatever their sizes.
    weights = json.loads((run_dir(output, "vendor_balanced") / "history.json").read_text())
    assert weights[-1]["aggregation"]["weights"] == pytest.approx(dict.fromkeys(SITES, 0.5))


def _csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_results_hold_finite_means_with_intervals_for_every_experiment_and_mask(study):
    _, output, _ = study
    held_out = [
        row
        for row in _csv(output / "results.csv")
        if row["split"] == "held-out" and row["metadata"] == "full" and row["view"] == "ranking"
    ]
    for experiment in [*EXPERIMENTS, "zero-filled", "best-classical"]:
        for mask in MASKS:
            found = [r for r in held_out if r["experiment"] == experiment and r["mask"] == mask]
            assert {row["centre"] for row in found} == {"Center003", "all"}, (experiment, mask)
            for row in found:
                for metric in ("psnr", "psnr_ci_low", "psnr_ci_high", "ssim", "nmse"):
                    assert math.isfinite(float(row[metric])), (experiment, mask, metric, row)


def test_file_scores_name_every_site_model_of_local_only_training(study):
    _, output, result = study
    rows = _csv(output / "file_scores.csv")
    assert len(rows) == len(result.rows)
    local = {row["model"] for row in rows if row["experiment"] == "local-only"}
    assert local == set(SITES)


def test_learning_curves_score_the_round_checkpoints(study):
    _, output, _ = study
    curves = _csv(output / "curves.csv")
    steps = {int(row["steps"]) for row in curves if row["experiment"] == "fedavg"}
    assert steps == {ROUNDS * LOCAL_STEPS * len(SITES) // 2, ROUNDS * LOCAL_STEPS * len(SITES)}
    assert {row["experiment"] for row in curves} >= {"zero-filled", "best-classical", "centralised"}


def test_report_and_figures_are_written(study):
    _, output, result = study
    report = (output / "report.md").read_text()
    for name in EXPERIMENTS:
        assert name in report
    assert "CPU cores" in report and "study wall time" in report
    assert "### Zero-shot scores reported by the held-out sites" in report
    assert (output / "zero_shot.csv").is_file()
    figures = [path for path in result.report.values() if path.suffix == ".png"]
    assert figures
    for path in figures:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    assert result.report["report"] == output / "report.md"


def test_the_report_and_study_json_say_how_long_each_phase_took(study):
    _, output, result = study
    phases = json.loads((output / "study.json").read_text())["phase_seconds"]
    assert list(phases)[:3] == ["data", "training", "evaluation"]
    assert {"learning curves", "clinical check", "report"} <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values())
    # The experiments ran in this invocation: their phase is part of its wall time.
    assert phases["training"] <= result.wall_seconds
    assert "before the report (data " in (output / "report.md").read_text()


def test_the_clinical_section_names_why_these_files_cannot_be_measured(study):
    _, output, _ = study
    report = (output / "report.md").read_text()
    # Hand-made k-space files: no segmentation labels and no geometry sidecar.
    assert "### Clinical measurements" in report
    assert "Nothing measured: no held-out cine short-axis file" in report
    assert (output / "clinical.csv").is_file()


def test_mlflow_has_a_parent_run_and_a_child_per_experiment(study):
    _, output, _ = study
    state = json.loads((output / "study.json").read_text())
    parent = state["mlflow_parent_run_id"]
    with closing(sqlite3.connect(output / "mlflow.db")) as db:
        runs = dict(db.execute("SELECT run_uuid, status FROM runs").fetchall())
        children = {
            run: name
            for run, name in db.execute(
                "SELECT p.run_uuid, n.value FROM tags p JOIN tags n ON p.run_uuid = n.run_uuid "
                "WHERE p.key = 'mlflow.parentRunId' AND p.value = ? "
                "AND n.key = 'mlflow.runName'",
                (parent,),
            )
        }
        metrics = {
            (run, key) for run, key in db.execute("SELECT DISTINCT run_uuid, key FROM metrics")
        }
    assert runs[parent] == "FINISHED"
    assert sorted(children.values()) == sorted(label(name) for name in EXPERIMENTS)
    for run, name in children.items():
        assert runs[run] == "FINISHED", name
        assert (run, "held-out/psnr") in metrics, name
        for mask in MASKS:
            assert (run, f"held-out/{mask}/ssim") in metrics, name
        if name.endswith(tuple(FEDERATED)):
            assert (run, "train/loss") in metrics, name  # logged by the ServerApp, per round
    assert (parent, "study-wall-seconds") in metrics


def test_fedavg_ends_with_the_cross_site_matrix_including_the_local_only_models(study):
    _, output, _ = study
    with open(run_dir(output, "fedavg") / "cross_site.csv") as handle:
        rows = list(csv.DictReader(handle))
    models = list(dict.fromkeys(row["model"] for row in rows))
    assert models[0] == "global" and {"local-Center001", "local-Center002"} <= set(models)
    for model in models:
        cells = {row["site"]: row for row in rows if row["model"] == model}
        assert set(cells) == {*SITES, "Center003"}
        assert cells["Center003"]["role"] == "evaluate" and cells["Center003"]["status"] == "ok"


def test_cross_site_eval_makes_the_matrix_of_a_finished_run_without_training(study):
    from simulations.cross_site_run import cross_site_again

    _, output, _ = study
    folder = run_dir(output, "vendor_balanced")
    history = (folder / "history.json").read_text()
    matrix = cross_site_again(folder, {}, timeout=300)
    with open(matrix) as handle:
        rows = list(csv.DictReader(handle))
    assert {row["site"] for row in rows if row["model"] == "global"} == {*SITES, "Center003"}
    assert (folder / "history.json").read_text() == history  # no round was played


def test_a_changed_definition_is_refused_before_anything_runs(study):
    root, output, _ = study
    before = (output / "study.json").read_text()
    with pytest.raises(ValueError, match=r"outcome.json records an experiment defined differently"):
        run_study(study_config(root, output, "study.rounds=3"), show_progress=False)
    assert (output / "study.json").read_text() == before


def test_a_failed_federation_is_reported_and_its_processes_stopped(study, tmp_path):
    """The ServerApp stops at start-up (a personalisation pattern matching no parameter):
    `flwr run` still exits 0, so the runner judges by the outputs, records the failure with
    the reason from the log, goes on, and leaves no Flower or Ray process behind."""
    root, _, _ = study
    overrides = "['strategy=vendor_personalised','strategy.personalised=[x.*]']"
    bad = f"{{kind:federated,overrides:{overrides}}}"
    config = study_config(
        root, tmp_path / "study", f"+study.catalogue.bad={bad}", "study.experiments=[bad]"
    )
    result = run_study(config, show_progress=False)
    (error,) = result.failed.values()
    assert "pattern 'x.*' matches no parameter" in error.splitlines()[0]
    assert result.ran == [] and result.outcomes == []
    folder = run_dir(tmp_path / "study", "bad")
    assert "matches no parameter" in (folder / "error.txt").read_text()
    assert not (folder / "outcome.json").exists()
    assert processes.marked(str(folder)) == []
    assert "bad" in (tmp_path / "study" / "report.md").read_text()  # named as failed


def test_resume_skips_finished_experiments_and_trains_only_what_is_missing(study):
    """Last: it rewrites the report. An interrupted local-only experiment (no outcome, one
    site trained) is finished; FedAvg, finished before, is skipped without a Flower run."""
    root, output, _ = study
    local = run_dir(output, "local-only")
    (local / "outcome.json").unlink()
    kept = local / "Center001" / "checkpoints" / "final.pt"
    kept_time = kept.stat().st_mtime_ns
    retrained = local / "Center002" / "checkpoints" / "final.pt"
    retrained.unlink()
    fedavg_log = (run_dir(output, "fedavg") / "flwr.log").stat().st_mtime_ns
    config = study_config(root, output, "study.experiments=[local-only,fedavg]")
    result = run_study(config, show_progress=False)
    assert result.failed == {}
    assert result.ran == [label("local-only")]
    assert result.skipped == [label("fedavg")]
    assert kept.stat().st_mtime_ns == kept_time
    assert retrained.is_file()
    assert (run_dir(output, "fedavg") / "flwr.log").stat().st_mtime_ns == fedavg_log
    assert (local / "outcome.json").is_file()
    assert {row["experiment"] for row in result.rows} >= {"local-only", "fedavg"}
