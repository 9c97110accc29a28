"""``cardiomm reconstruct --method``: the field's classical methods (sigpy, ESPIRiT maps from
each slice's time-averaged k-space), untuned or with an exam's tuning record."""

import csv
import json
import math

import h5py
import numpy as np
import pytest

from cardiomm.classical.calibration import EspiritSettings
from cardiomm.classical.tuning import GridPoint, SettingChoice
from cardiomm.cli import main

CINE = "MultiCoil/Cine/TrainingSet/FullSample/Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
MASK = "ktGaussian8"
OUTPUT = f"cine_sax_kus_{MASK}.mat"


def _reconstruct(data, output, *arguments):
    return main([
        "reconstruct", "--input", str(data / CINE), "--output", str(output), "--mask", MASK,
        "--device", "cpu", "--no-preview", *arguments,
    ])  # fmt: skip


def _summary(output):
    with open(output / "reconstruction_summary.csv") as handle:
        return list(csv.DictReader(handle))


def _images(output):
    with h5py.File(output / OUTPUT, "r") as handle:
        return np.asarray(handle["img4ranking"])


def _record(path, setting=MASK, regularization=None, best="cg-sense"):
    regularization = regularization or {"cg-sense": 1e-3, "l1-wavelet": 1e-3, "kt-sparse": 1e-3}
    espirit = EspiritSettings()
    points = tuple(
        GridPoint(setting, method, espirit, value, 30.0, 0.9, 4)
        for method, value in regularization.items()
    )
    choice = SettingChoice(setting, espirit, regularization, best, points)
    values = {"signature": {}, "choices": {setting: choice.to_dict()}}
    path.write_text(json.dumps(values))
    return path


def test_kt_sparse_cs_beats_zero_filled_on_a_cine(tiny_data, tmp_path):
    assert _reconstruct(tiny_data, tmp_path / "zf", "--method", "zero-filled") == 0
    assert _reconstruct(tiny_data, tmp_path / "kt", "--method", "kt-sparse") == 0
    (zero_filled,), (kt_sparse,) = _summary(tmp_path / "zf"), _summary(tmp_path / "kt")
    assert kt_sparse["method"] == "kt-sparse" and kt_sparse["status"] == "ok"
    assert float(kt_sparse["psnr"]) > float(zero_filled["psnr"]) + 3


def test_sense_is_sigpy_cg_sense_with_espirit_maps(tiny_data, tmp_path):
    assert _reconstruct(tiny_data, tmp_path / "sense", "--method", "sense") == 0
    assert _reconstruct(tiny_data, tmp_path / "cg", "--method", "cg-sense") == 0
    assert _summary(tmp_path / "sense")[0]["method"] == "cg-sense"
    np.testing.assert_array_equal(_images(tmp_path / "sense"), _images(tmp_path / "cg"))


def test_a_tuning_record_sets_the_lambda_of_the_files_mask(tiny_data, tmp_path):
    # Tikhonov at lambda 10 shrinks the image towards 0; at 1e-3 it barely does.
    heavy = _record(tmp_path / "heavy.json", regularization={"cg-sense": 10.0})
    light = _record(tmp_path / "light.json", regularization={"cg-sense": 1e-3})
    for name, record in (("heavy", heavy), ("light", light)):
        arguments = ("--method", "cg-sense", "--classical-tuning", str(record))
        assert _reconstruct(tiny_data, tmp_path / name, *arguments) == 0
    assert _images(tmp_path / "heavy").mean() < 0.5 * _images(tmp_path / "light").mean()


def test_best_classical_is_the_method_the_record_chose(tiny_data, tmp_path):
    record = _record(tmp_path / "record.json", best="l1-wavelet")
    arguments = ("--method", "best-classical", "--classical-tuning", str(record))
    assert _reconstruct(tiny_data, tmp_path / "best", *arguments) == 0
    arguments = ("--method", "l1-wavelet", "--classical-tuning", str(record))
    assert _reconstruct(tiny_data, tmp_path / "l1", *arguments) == 0
    assert _summary(tmp_path / "best")[0]["method"] == "best-classical"
    np.testing.assert_array_equal(_images(tmp_path / "best"), _images(tmp_path / "l1"))


def test_a_record_without_the_files_mask_skips_the_file_naming_what_it_holds(
    tiny_data, tmp_path, capsys
):
    record = _record(tmp_path / "record.json", setting="ktRadial24")
    arguments = ("--method", "cg-sense", "--classical-tuning", str(record))
    assert _reconstruct(tiny_data, tmp_path / "out", *arguments) == 1
    (row,) = _summary(tmp_path / "out")
    assert row["status"] == "skipped"
    assert f"{record} holds no tuned settings for {MASK} (it holds ktRadial24)" in row["reason"]
    assert "holds no tuned settings" in capsys.readouterr().err


def test_best_classical_without_a_record_is_refused(tiny_data, tmp_path, capsys):
    assert _reconstruct(tiny_data, tmp_path / "out", "--method", "best-classical") == 2
    assert "--classical-tuning" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "is not a JSON tuning record"),
        ("[]", "holds no 'choices' object"),
        ('{"choices": {}}', "holds no tuned mask setting"),
        (None, "lambda of cg-sense is nan"),
        ("unknown-method", "unknown method 'fista'"),
        ("missing-field", "missing field 'espirit'"),
    ],
)
def test_a_bad_tuning_record_is_one_line_naming_the_file(
    tiny_data, tmp_path, capsys, content, problem
):
    path = tmp_path / "record.json"
    if content is None:
        _record(path, regularization={"cg-sense": math.nan})
    elif content == "unknown-method":
        _record(path, regularization={"fista": 1e-3}, best="fista")
    elif content == "missing-field":
        values = json.loads(_record(path).read_text())
        del values["choices"][MASK]["espirit"]
        path.write_text(json.dumps(values))
    else:
        path.write_text(content)
    arguments = ("--method", "cg-sense", "--classical-tuning", str(path))
    assert _reconstruct(tiny_data, tmp_path / "out", *arguments) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cardiomm reconstruct: error: {path}: ") and problem in line
    assert not (tmp_path / "out").exists()


def test_a_record_is_refused_for_zero_filled(tiny_data, tmp_path, capsys):
    record = _record(tmp_path / "record.json")
    arguments = ("--method", "zero-filled", "--classical-tuning", str(record))
    assert _reconstruct(tiny_data, tmp_path / "out", *arguments) == 2
    assert "not zero-filled" in capsys.readouterr().err
