"""The per-vendor part of a study report: roles from the training images, per-vendor means
and paired differences, the vendor-skew verdict, and the files and section write_report adds
(from hand-made per-file scores)."""

import csv

import numpy as np
import pytest

from simulations.study.design import StudyDesign
from simulations.study.outcome import FILE_COLUMNS
from simulations.study.report import write_report
from simulations.study.results import MET, MET_ON_MEAN, MISSED, Comparison
from simulations.study.vendor_skew import (
    MAJORITY,
    MINORITY,
    OTHER,
    UNSEEN,
    vendor_roles,
    vendor_rows,
    vendor_training_images,
    vendor_verdict_rows,
)

FOLD = "held-out=Center005+Center006"
CENTRES = {"Center005": "Siemens", "Center006": "GE"}
TRAINING_IMAGES = {"Siemens": 792, "GE": 72}
COMPARISONS = (Comparison("vendor_balanced", "fedavg"),)


def _rows(gain_ge: float, gain_siemens: float, spread: float = 0.3) -> list[dict]:
    """Held-out file scores of FedAvg and vendor_balanced, two seeds, six files a centre:
    vendor_balanced is FedAvg plus the vendor's gain plus file-to-file scatter of mean zero."""
    noise = spread * np.array([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    rows = []
    for experiment in ("fedavg", "vendor_balanced"):
        for seed in (0, 1):
            for centre, vendor in CENTRES.items():
                for number in range(6):
                    psnr = 30.0 + 0.5 * number + 0.1 * seed
                    if experiment == "vendor_balanced":
                        gain = gain_ge if vendor == "GE" else gain_siemens
                        psnr += gain + noise[number]
                    values = {
                        "fold": FOLD,
                        "experiment": experiment,
                        "kind": "federated",
                        "seed": str(seed),
                        "model": "global",
                        "split": "held-out",
                        "metadata": "full",
                        "view": "ranking",
                        "centre": centre,
                        "vendor": vendor,
                        "modality": "cine",
                        "mask": "Uniform8",
                        "file": f"{centre}/P00{number}/cine_sax.mat",
                        "images": 4,
                        "psnr": psnr,
                        "ssim": psnr / 40,
                        "nmse": 0.01,
                    }
                    rows.append({column: values[column] for column in FILE_COLUMNS})
    return rows


def _verdict(gain_ge: float, gain_siemens: float, spread: float = 0.3) -> str:
    _, differences = vendor_rows(
        _rows(gain_ge, gain_siemens, spread), FOLD, COMPARISONS, TRAINING_IMAGES
    )
    (verdict,) = vendor_verdict_rows(differences)
    return verdict["verdict"]


def test_training_images_are_summed_per_vendor_over_internal_sites_only():
    manifest = {
        "sites": [
            {"vendor": "Siemens", "held_out": False, "split_images": {"train": 300, "val": 9}},
            {"vendor": "Siemens", "held_out": False, "split_images": {"train": 200}},
            {"vendor": "GE", "held_out": False, "split_images": {"train": 50}},
            {"vendor": "GE", "held_out": True, "split_images": {"train": 0, "test": 99}},
        ]
    }
    assert vendor_training_images(manifest) == {"Siemens": 500, "GE": 50}


def test_roles_rank_vendors_by_training_images_and_mark_unseen_ones():
    roles = vendor_roles({"Siemens": 500, "UIH": 200, "GE": 50}, ["GE", "UIH", "Siemens", "X"])
    assert roles == {"GE": MINORITY, "UIH": OTHER, "Siemens": MAJORITY, "X": UNSEEN}


def test_each_held_out_vendor_gets_its_own_mean_and_paired_difference():
    results, differences = vendor_rows(_rows(1.0, 0.0), FOLD, COMPARISONS, TRAINING_IMAGES)
    ge = next(r for r in results if r["vendor"] == "GE" and r["experiment"] == "fedavg")
    assert ge["role"] == MINORITY
    assert ge["files"] == 6 and ge["seeds"] == 2 and ge["centres"] == 1
    assert ge["training_share"] == pytest.approx(72 / 864)
    assert ge["psnr_ci_low"] < ge["psnr"] < ge["psnr_ci_high"]
    psnr = {row["vendor"]: row for row in differences if row["metric"] == "psnr"}
    assert psnr["GE"]["difference"] == pytest.approx(1.0)
    assert psnr["Siemens"]["difference"] == pytest.approx(0.0, abs=1e-9)


def test_a_clear_minority_gain_without_a_majority_loss_meets_the_goal():
    assert _verdict(gain_ge=1.0, gain_siemens=0.0) == MET


def test_a_majority_loss_beyond_the_allowance_misses_the_goal():
    assert _verdict(gain_ge=1.0, gain_siemens=-0.5) == MISSED


def test_a_gain_too_small_misses_the_goal():
    assert _verdict(gain_ge=0.2, gain_siemens=0.0) == MISSED


def test_a_gain_whose_interval_reaches_zero_is_met_on_the_mean_only():
    assert _verdict(gain_ge=0.6, gain_siemens=0.0, spread=4.0) == MET_ON_MEAN


def test_the_report_writes_the_vendor_files_section_and_figure(tmp_path):
    design = StudyDesign(
        title="vendor skew",
        comparisons=COMPARISONS,
        vendor_training_images={FOLD: TRAINING_IMAGES},
    )
    written = write_report(tmp_path, _rows(1.0, 0.0), [], design)
    with open(written["vendor_comparisons"]) as handle:
        assert {row["vendor"] for row in csv.DictReader(handle)} == {"GE", "Siemens"}
    report = written["report"].read_text()
    assert "### Held-out centres per vendor" in report
    assert "#### Verdict: vendor-aware aggregation under vendor skew" in report
    assert written["vendor_psnr"].is_file()


def test_a_report_without_vendor_training_images_has_no_vendor_part(tmp_path):
    written = write_report(tmp_path, _rows(1.0, 0.0), [], StudyDesign(title="plain"))
    assert "vendor_results" not in written
    assert "per vendor" not in written["report"].read_text()
