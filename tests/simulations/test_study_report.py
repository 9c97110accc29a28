"""The study's report: the CSV files, report.md's verdict and tables, and the figures, from
hand-made per-file scores, histories and example images (the evaluation that makes them is
tested on its own)."""

import csv
import dataclasses
import json
import logging

import numpy as np
import pytest

from simulations.study import figures
from simulations.study.csv_files import read_file_scores
from simulations.study.design import StudyDesign
from simulations.study.outcome import (
    COMPARISON_COLUMNS,
    FILE_COLUMNS,
    RESULT_COLUMNS,
    ExperimentOutcome,
)
from simulations.study.report import write_report
from simulations.study.results import Comparison
from simulations.study.scoring import ExampleImage, save_example

FOLD = "held-out=Center003"
MASKS = ("Uniform8", "ktRadial24")
PNG = b"\x89PNG\r\n\x1a\n"
FILES = [f"Center003/P00{number}/cine_sax.mat" for number in range(1, 7)]
# Held-out PSNR per (experiment, model) on the first file; every later file adds 0.5 dB, and
# seed 1 adds 0.2 dB; unknown metadata costs 1 dB.
PSNR = {
    ("zero-filled", "-"): 25.0,
    ("best-classical", "-"): 27.0,
    ("local-only", "Center001"): 28.0,
    ("local-only", "Center002"): 30.0,
    ("centralised", "global"): 31.5,
    ("fedavg", "global"): 31.0,
}
KINDS = {
    "zero-filled": "reference",
    "best-classical": "reference",
    "local-only": "local",
    "centralised": "centralised",
    "fedavg": "federated",
}
COMPARISONS = (
    Comparison("fedavg", "best-classical"),
    Comparison("fedavg", "zero-filled"),
    Comparison("fedavg", "centralised"),
    Comparison("fedavg", "local-only"),
)


def _row(experiment, model, seed, split, centre, mask, file, psnr, metadata="full", view="ranking"):
    values = {
        "fold": FOLD,
        "experiment": experiment,
        "kind": KINDS[experiment],
        "seed": seed,
        "model": model,
        "split": split,
        "metadata": metadata,
        "view": view,
        "centre": centre,
        "vendor": "Siemens",
        "modality": "cine",
        "mask": mask,
        "file": file,
        "images": 6,
        "psnr": psnr,
        "ssim": psnr / 40,
        "nmse": 0.01,
    }
    return {column: values[column] for column in FILE_COLUMNS}


def _rows():
    rows = []
    for (experiment, model), base in PSNR.items():
        seeds = ["-"] if KINDS[experiment] == "reference" else ["0", "1"]
        for seed in seeds:
            offset = 0.2 if seed == "1" else 0.0
            for mask in MASKS:
                for view in ("ranking", "full"):
                    common = {"view": view}
                    rows.append(
                        _row(
                            experiment,
                            model,
                            seed,
                            "internal-test",
                            "Center001",
                            mask,
                            "Center001/P009/cine_sax.mat",
                            base + offset,
                            **common,
                        )
                    )
                    for number, file in enumerate(FILES):
                        psnr = base + offset + 0.5 * number
                        rows.append(
                            _row(
                                experiment,
                                model,
                                seed,
                                "held-out",
                                "Center003",
                                mask,
                                file,
                                psnr,
                                **common,
                            )
                        )
                        if KINDS[experiment] != "reference":
                            rows.append(
                                _row(
                                    experiment,
                                    model,
                                    seed,
                                    "held-out",
                                    "Center003",
                                    mask,
                                    file,
                                    psnr - 1.0,
                                    "unknown",
                                    view,
                                )
                            )
    return rows


def _history(rounds=3):
    return [
        {
            "round": number,
            "train": {"loss": 0.5 / number},
            "evaluate": {"psnr": 30.0 + number, "ssim": 0.8},
            "timing": {
                "round-seconds": 3.0,
                "client-train-seconds-max": 1.2,
                "client-eval-seconds-max": 0.3,
                "overhead-seconds": 1.5,
            },
            "traffic": {"bytes-per-site": 720_000},
            # The held-out centre, an evaluation-only site, scored rounds 2 and 3.
            **(
                {
                    "zero-shot": {
                        "Center003": {
                            "num-examples": 12.0,
                            "psnr": 25.0 + number,
                            "ssim": 0.7,
                            "nmse": 0.05,
                            "psnr/cine.short-axis.Uniform8": 26.0 + number,
                            "ssim/cine.short-axis.Uniform8": 0.75,
                            "nmse/cine.short-axis.Uniform8": 0.04,
                            "images/cine.short-axis.Uniform8": 12.0,
                        }
                    }
                }
                if number >= 2
                else {}
            ),
        }
        for number in range(1, rounds + 1)
    ]


def _outcomes(folder, history=True):
    path = folder / "fedavg" / "history.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_history()))
    outcomes = []
    for seed in (0, 1):
        outcomes += [
            ExperimentOutcome(
                FOLD,
                "local-only",
                "local",
                seed,
                {"Center001": folder / "l1.pt", "Center002": folder / "l2.pt"},
                folder,
                None,
                20.0,
                100,
            ),
            ExperimentOutcome(
                FOLD,
                "centralised",
                "centralised",
                seed,
                {"global": folder / "c.pt"},
                folder,
                None,
                25.0,
                120,
            ),
            ExperimentOutcome(
                FOLD,
                "fedavg",
                "federated",
                seed,
                {"global": folder / "f.pt"},
                folder,
                path if history else None,
                12.0,
                60,
                {"strategy": "fedavg"},
            ),
        ]
    return outcomes


def _curves():
    rows = [
        {
            "fold": FOLD,
            "experiment": name,
            "seed": "-",
            "steps": 0,
            "mask": mask,
            "images": 4,
            "psnr": psnr,
            "ssim": 0.5,
        }
        for name, psnr in (("zero-filled", 25.0), ("best-classical", 27.0))
        for mask in MASKS
    ]
    for experiment in ("centralised", "fedavg"):
        for seed in ("0", "1"):
            for steps in (0, 40, 80, 120):
                for mask in MASKS:
                    rows.append(
                        {
                            "fold": FOLD,
                            "experiment": experiment,
                            "seed": seed,
                            "steps": steps,
                            "mask": mask,
                            "images": 4,
                            "psnr": 25 + steps / 20,
                            "ssim": 0.6,
                        }
                    )
    return rows


def _save_examples(folder):
    target = np.outer(np.hanning(24), np.hanning(16)).astype(np.float32)
    for experiment, model in PSNR:
        noise = np.random.default_rng(len(experiment)).normal(0, 0.05, target.shape)
        example = ExampleImage(
            FOLD,
            experiment,
            KINDS[experiment],
            model,
            "Center003",
            "Uniform8",
            "cine_sax.mat",
            0,
            1,
            target,
            (target + noise).astype(np.float32),
            True,
        )
        save_example(folder / "examples" / "held-out_Center003", example)


TUNING_TABLE = (
    "| mask | method | lambda |\n|---|---|---|\n| Uniform8 | kt-sparse (best) | 0.003 |\n"
)
SECONDS_TABLE = (
    "| method | mask | seconds per image |\n|---|---|---|\n| kt-sparse | Uniform8 | 0.8125 |\n"
)
DESIGN = StudyDesign(
    title="Study",
    machine_note="2-core CPU VM",
    accelerations=({"setting": "Uniform8", "nominal R": 8, "true R, held-out files": "4.90"},),
    comparisons=COMPARISONS,
    classical_tuning={FOLD: TUNING_TABLE},
    classical_seconds={FOLD: SECONDS_TABLE},
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    _save_examples(folder)
    _save_cross_site_matrix(folder)
    return write_report(folder, _rows(), _outcomes(folder), DESIGN, _curves())


def _save_cross_site_matrix(folder):
    """What the server's cross-site phase leaves in a federation's folder."""
    rows = [
        ("global", "Center001", "train", "ok", 10, 30.5, 0.81),
        ("global", "Center003", "evaluate", "ok", 12, 27.25, 0.7),
        ("local-Center001", "Center001", "train", "ok", 10, 31.0, 0.82),
        ("local-Center001", "Center003", "evaluate", "declined", "", "nan", "nan"),
    ]
    with open(folder / "cross_site.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["model", "site", "role", "status", "images", "psnr", "ssim", "nmse", "reason"]
        )
        writer.writerows([[*row, 0.01, ""] for row in rows])
    (folder / "cross_site.png").write_bytes(PNG + b"matrix")


def _table_lines(text, heading):
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_csv_has_its_columns(written):
    for name, columns in (
        ("file_scores", FILE_COLUMNS),
        ("results", RESULT_COLUMNS),
        ("comparisons", COMPARISON_COLUMNS),
    ):
        with open(written[name], newline="") as handle:
            assert tuple(next(csv.reader(handle))) == columns


def test_every_mean_in_results_has_its_interval(written):
    for row in _csv(written["results"]):
        for metric in ("psnr", "ssim", "nmse"):
            low, mean, high = (float(row[f"{metric}{end}"]) for end in ("_ci_low", "", "_ci_high"))
            assert low <= mean + 1e-9 and mean <= high + 1e-9


def _held_out_uniform8(rows, experiment):
    (row,) = [
        row
        for row in rows
        if row["experiment"] == experiment
        and (row["split"], row["metadata"], row["view"], row["mask"], row["centre"])
        == ("held-out", "full", "ranking", "Uniform8", "all")
    ]
    return row


def test_a_result_is_the_mean_over_seeds_files_and_site_models(written):
    rows = _csv(written["results"])
    fedavg = _held_out_uniform8(rows, "fedavg")
    assert float(fedavg["psnr"]) == pytest.approx(31.0 + 0.1 + 0.5 * 2.5)
    assert (fedavg["seeds"], fedavg["files"]) == ("2", "6")
    local = _held_out_uniform8(rows, "local-only")
    assert float(local["psnr"]) == pytest.approx(29.0 + 0.1 + 0.5 * 2.5)


def test_the_verdict_judges_every_goal_at_every_mask(written):
    text = written["report"].read_text()
    lines = _table_lines(text, "### Verdict")
    assert len(lines) == 4 * len(MASKS)
    # FedAvg is 4 dB above the best classical method on every file: met; 0.5 dB below
    # centralised: missed.
    assert any(
        "above the best classical method" in line and line.endswith("| met |") for line in lines
    )
    assert any("centralised" in line and line.endswith("| missed |") for line in lines)
    assert "Missed: FedAvg within 0.3 dB of centralised" in text


def test_paired_comparisons_give_the_difference_with_its_interval(written):
    rows = _csv(written["comparisons"])
    (row,) = [
        r
        for r in rows
        if r["comparison"] == "fedavg - best-classical"
        and r["view"] == "ranking"
        and r["mask"] == "Uniform8"
        and r["metric"] == "psnr"
    ]
    assert float(row["difference"]) == pytest.approx(4.1)
    assert row["paired_seeds"] == "False"  # a classical method trains nothing
    (paired,) = [
        r
        for r in rows
        if r["comparison"] == "fedavg - centralised"
        and r["view"] == "ranking"
        and r["mask"] == "Uniform8"
        and r["metric"] == "psnr"
    ]
    assert paired["paired_seeds"] == "True"
    assert float(paired["ci_low"]) == pytest.approx(-0.5) == float(paired["ci_high"])


def test_the_report_has_a_row_per_experiment_in_the_held_out_table(written):
    lines = _table_lines(written["report"].read_text(), "### Held-out centres (ranking view)")
    assert [line.split(" | ")[0].strip("| ") for line in lines] == [
        "zero-filled",
        "best-classical",
        "local-only",
        "centralised",
        "fedavg",
    ]
    assert all("[" in line for line in lines)  # every cell carries its interval


def test_the_report_has_the_full_image_view_and_the_undersampling_table(written):
    text = written["report"].read_text()
    assert _table_lines(text, "### Held-out centres, full-image view")
    assert "| Uniform8 | 8 | 4.90 |" in text


def test_the_design_shows_the_classical_settings_chosen_on_internal_validation(written):
    text = written["report"].read_text()
    heading = "#### The classical reference: settings chosen on internal validation"
    assert heading in text
    design = text[text.index("### Design") : text.index("### Held-out centres")]
    assert heading in design and "| Uniform8 | kt-sparse (best) | 0.003 |" in design


def test_the_design_shows_each_classical_methods_seconds_per_image(written):
    text = written["report"].read_text()
    design = text[text.index("### Design") : text.index("### Held-out centres")]
    assert "#### The classical methods' seconds per image" in design
    assert "| kt-sparse | Uniform8 | 0.8125 |" in design


def test_a_fold_without_a_tuning_record_has_no_classical_settings_section(tmp_path):
    design = dataclasses.replace(DESIGN, classical_tuning={})
    written = write_report(tmp_path, _rows(), _outcomes(tmp_path, history=False), design)
    assert "The classical reference: settings chosen" not in written["report"].read_text()


def test_metadata_cost_table_gives_unknown_minus_full(written):
    lines = _table_lines(written["report"].read_text(), "missing metadata costs")
    fedavg = [line for line in lines if line.startswith("| fedavg | Uniform8")]
    assert fedavg and fedavg[0].endswith("| -1.00 |")


def test_internal_validation_is_reported_per_run(written):
    lines = _table_lines(written["report"].read_text(), "### Internal validation")
    assert "| fedavg | 0 | 33.00 |" in "\n".join(lines)


def test_cost_table_has_round_time_compute_overhead_and_traffic(written):
    lines = _table_lines(written["report"].read_text(), "### Training cost")
    fedavg = next(line for line in lines if line.startswith("| fedavg | 0 |"))
    assert "| 3.00 | 1.20 | 0.30 | 1.50 | 0.720 |" in fedavg


def test_every_figure_is_written_as_a_png_and_linked(written):
    text = written["report"].read_text()
    for name in ("learning_curves", "paired_differences", "per_centre_psnr", "examples_Center003"):
        assert written[name].read_bytes().startswith(PNG)
        assert f"({written[name].name})" in text


def test_the_held_out_sites_own_scores_are_reported_at_their_last_round(written):
    lines = _table_lines(
        written["report"].read_text(), "### Zero-shot scores reported by the held-out sites"
    )
    assert lines == [
        "| fedavg | 0 | Center003 | 3 | 12 | 28.00 | 0.7000 |",
        "| fedavg | 1 | Center003 | 3 | 12 | 28.00 | 0.7000 |",
    ]


def test_zero_shot_csv_has_every_round_site_and_group(written):
    rows = _csv(written["zero_shot"])
    assert {(row["seed"], row["round"], row["group"]) for row in rows} == {
        (seed, number, group)
        for seed in ("0", "1")
        for number in ("2", "3")
        for group in ("all", "cine.short-axis.Uniform8")
    }
    group = next(row for row in rows if row["group"] != "all" and row["round"] == "3")
    assert float(group["psnr"]) == 29.0 and float(group["images"]) == 12.0


def test_the_cross_site_matrix_is_a_table_of_models_by_sites(written):
    text = written["report"].read_text()
    lines = _table_lines(text, "### Cross-site evaluation matrix")
    assert "| global | 30.50 / 0.810 | 27.25 / 0.700 |" in lines
    assert "| local-Center001 | 31.00 / 0.820 | declined |" in lines
    assert "Center003 (held out)" in text.split("### Cross-site evaluation matrix", 1)[1]
    assert {row["experiment"] for row in _csv(written["cross_site"])} == {"fedavg"}
    heatmaps = [written[name] for name in written if name.startswith("cross_site_")]
    assert [path.name.endswith("_fedavg_seed-0.png") for path in heatmaps] == [True, False]
    assert all(f"({path.name})" in text and path.read_bytes().startswith(PNG) for path in heatmaps)


def test_the_convergence_curve_takes_the_held_out_sites_scores(tmp_path):
    from federation.records import history_from_json

    history = history_from_json(_history())
    assert figures.held_out_psnr_series(history) == [(2, 27.0), (3, 28.0)]


def test_file_scores_read_back_equal_the_rows_written(written):
    rows = _rows()
    assert read_file_scores(written["file_scores"]) == [
        {**row, "seed": str(row["seed"])} for row in rows
    ]


def test_a_tuning_study_reports_validation_and_its_choice_only(tmp_path):
    design = StudyDesign(
        title="Tuning",
        held_out_evaluation=False,
        selection_groups={"fedavg-or-centralised": ["centralised", "fedavg"]},
    )
    written = write_report(tmp_path, [], _outcomes(tmp_path), design)
    text = written["report"].read_text()
    assert "### Verdict" not in text and "### Held-out centres" not in text
    # fedavg's validation (history) is 33 dB; centralised has no metrics.json: fedavg chosen.
    assert "chosen on internal validation: **fedavg** (33.00 dB" in text


def test_a_study_without_histories_or_examples_still_writes_its_report(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        written = write_report(tmp_path, _rows(), _outcomes(tmp_path, history=False), DESIGN)
    assert written["report"].is_file()
    assert "no example reconstructions saved" in caplog.text


def test_figures_with_no_data_are_skipped_without_raising(tmp_path):
    assert figures.learning_curve_figure([], tmp_path / "curves.png") is None
    assert figures.comparison_figure([], tmp_path / "comparisons.png") is None
    assert figures.timing_figure({}, tmp_path / "timing.png") is None
    assert figures.example_figures([], tmp_path, []) == []
