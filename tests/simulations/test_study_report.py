"""The study's report: results.csv, report.md tables and the figures, from hand-made rows,
histories and example images (the evaluation that makes them is tested on its own)."""

import csv
import json
import logging

import numpy as np
import pytest

from simulations.study import figures
from simulations.study.evaluation import ExampleImage, save_example
from simulations.study.outcome import RESULT_COLUMNS, ExperimentOutcome
from simulations.study.report import read_results, write_report

FOLD = "held-out=Center003"
MASKS = ("Uniform8", "ktRadial24")
PNG = b"\x89PNG\r\n\x1a\n"
# PSNR per (experiment, model): the held-out score drops by 1 dB with unknown metadata.
PSNR = {
    ("zero-filled", "-"): 25.0,
    ("local-only", "Center001"): 28.0,
    ("local-only", "Center002"): 30.0,
    ("fedavg", "global"): 31.0,
}
KINDS = {"zero-filled": "reference", "local-only": "local", "fedavg": "federated"}


def _row(experiment, model, split, centre, mask, metadata="full", psnr=None, files=1):
    psnr = PSNR[experiment, model] if psnr is None else psnr
    values = {
        "fold": FOLD,
        "experiment": experiment,
        "kind": KINDS[experiment],
        "model": model,
        "split": split,
        "centre": centre,
        "vendor": "Siemens",
        "modality": "cine",
        "mask": mask,
        "metadata": metadata,
        "files": files,
        "images": 4 * files,
        "psnr": psnr,
        "ssim": psnr / 40,
        "nmse": 0.01,
    }
    return {column: values[column] for column in RESULT_COLUMNS}


def _rows():
    rows = []
    for experiment, model in PSNR:
        for mask in MASKS:
            rows += [
                _row(experiment, model, "internal-test", "Center001", mask),
                _row(experiment, model, "internal-test", "Center002", mask, files=3),
                _row(experiment, model, "held-out", "Center003", mask),
            ]
            if experiment != "zero-filled":
                psnr = PSNR[experiment, model] - 1.0
                rows.append(_row(experiment, model, "held-out", "Center003", mask, "unknown", psnr))
    return rows


def _history(rounds=3, global_evaluation=True):
    return [
        {
            "round": number,
            "train": {"loss": 0.5 / number},
            "global": {"held-out/psnr": 25.0 + number} if global_evaluation else {},
            "timing": {
                "round-seconds": 3.0,
                "client-train-seconds-max": 1.2,
                "client-eval-seconds-max": 0.3,
                "overhead-seconds": 1.5,
            },
            "traffic": {"bytes-per-site": 720_000},
        }
        for number in range(1, rounds + 1)
    ]


def _outcomes(folder, history=True):
    path = folder / "fedavg" / "history.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_history()))
    return [
        ExperimentOutcome(
            FOLD,
            "local-only",
            "local",
            {"Center001": folder / "l1.pt", "Center002": folder / "l2.pt"},
            folder,
            None,
            20.0,
            100,
        ),
        ExperimentOutcome(
            FOLD,
            "fedavg",
            "federated",
            {"global": folder / "f.pt"},
            folder,
            path if history else None,
            12.0,
            60,
            {"strategy": "fedavg"},
        ),
    ]


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


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    _save_examples(folder)
    return write_report(folder, _rows(), _outcomes(folder), "Study", "2-core CPU VM")


def _table_lines(text, heading):
    block = text.split(heading, 1)[1].split("\n###", 1)[0]
    return [line for line in block.splitlines() if line.startswith("| ")]


def test_results_csv_has_the_result_columns_and_every_row(written):
    with open(written["results"]) as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == RESULT_COLUMNS
        assert len(list(reader)) == len(_rows())


def test_report_has_a_headline_row_per_experiment_and_mask(written):
    lines = _table_lines(written["report"].read_text(), "on the internal test split")
    keys = {tuple(cell.strip() for cell in line.split("|")[1:4:2]) for line in lines[1:]}
    assert keys == {(experiment, mask) for experiment in KINDS for mask in MASKS}


def test_local_only_headline_is_the_mean_over_its_site_models(written):
    lines = _table_lines(written["report"].read_text(), "on the internal test split")
    local = next(line for line in lines if line.startswith("| local-only | local | Uniform8"))
    # internal-test PSNR, internal-test SSIM, held-out PSNR: mean of 28 and 30 dB.
    assert local.split("|")[4:7] == [" 29.00 ", " 0.7250 ", " 29.00 "]


def test_per_centre_table_shows_each_site_model_and_stars_held_out_centres(written):
    lines = _table_lines(written["report"].read_text(), "per centre, Uniform8")
    assert lines[0] == "| experiment | Center001 | Center002 | Center003 * |"
    assert "| local-only (Center002) | 30.00 | 30.00 | 30.00 |" in lines


def test_metadata_cost_table_gives_unknown_minus_full(written):
    lines = _table_lines(written["report"].read_text(), "What missing metadata costs")
    row = next(line for line in lines if line.startswith("| fedavg | ktRadial24"))
    assert row.split("|")[3:6] == [" 31.00 ", " 30.00 ", " -1.00 "]
    assert not any(line.startswith("| zero-filled") for line in lines)


def test_cost_table_has_round_time_compute_overhead_and_traffic(written):
    lines = _table_lines(written["report"].read_text(), "Training cost")
    fedavg = next(line for line in lines if line.startswith("| fedavg"))
    assert fedavg.split("|")[5:11] == [" 3 ", " 3.00 ", " 1.20 ", " 0.30 ", " 1.50 ", " 0.720 "]


def test_every_figure_is_written_as_a_png_and_linked(written):
    text = written["report"].read_text()
    for name in ("per_centre_psnr", "convergence", "examples_Center003", "timing"):
        assert written[name].read_bytes().startswith(PNG)
        assert f"]({name}.png)" in text


def test_rows_read_back_from_results_csv_equal_the_rows_written(written):
    assert read_results(written["results"]) == _rows()


def test_a_study_without_histories_or_examples_still_writes_its_report(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        written = write_report(tmp_path, _rows(), _outcomes(tmp_path, history=False), "Study")
    assert set(written) == {"results", "report", "per_centre_psnr"}
    assert "convergence.png" not in written["report"].read_text()
    assert "not drawn" in caplog.text


def test_convergence_without_global_evaluation_still_draws_the_loss(tmp_path):
    path = figures.convergence_figure(
        {"fedavg": _history(global_evaluation=False)}, tmp_path / "c.png"
    )
    assert path.read_bytes().startswith(PNG)


def test_figures_with_no_data_are_skipped_without_raising(tmp_path):
    assert figures.convergence_figure({"fedavg": []}, tmp_path / "c.png") is None
    assert figures.timing_figure({}, tmp_path / "t.png") is None
    assert figures.per_centre_psnr_figure({"Uniform8": {}}, [], tmp_path / "p.png") is None
    assert figures.example_figures([], tmp_path, []) == []
    assert not list(tmp_path.iterdir())
