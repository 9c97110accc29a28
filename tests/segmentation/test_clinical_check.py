"""The clinical check of reconstructions: phenotypes and Dice against the fully sampled
reference, and the `cardiomm phenotype` command."""

import csv
import math

import pytest

from cardiomm.cli import main
from cardiomm.segmentation.clinical import clinical_row, reference_stack
from cardiomm.segmentation.network import build_segmenter, load_segmenter, save_segmenter
from cardiomm.segmentation.reference_slices import reference_slices
from cardiomm.segmentation.training import SegmenterSettings, train_segmenter


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cine_sax_path):
    settings = SegmenterSettings(size="tiny", steps=30, seed=0)
    output = tmp_path_factory.mktemp("segmenter")
    return train_segmenter(reference_slices([cine_sax_path]), settings, output, False)


def test_a_reconstruction_equal_to_its_reference_agrees_exactly(trained, cine_sax_path):
    network, size = load_segmenter(trained.checkpoint)
    reference = reference_stack(cine_sax_path, columns=72)
    row = clinical_row(network, size, reference, cine_sax_path)
    for name in ("lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_edv_ml"):
        assert row[f"recon_{name}"] == row[f"reference_{name}"], name
    # The same stack gives the same classes: Dice 1, or none when neither has an LV.
    assert row["dice_lv_blood"] == 1.0 or math.isnan(row["dice_lv_blood"])
    assert {"true_lv_edv_ml", "true_lv_esv_ml", "true_lv_ef_percent"} <= set(row)


def test_a_reconstruction_with_half_the_readout_is_compared_with_its_central_half(cine_sax_path):
    full = reference_stack(cine_sax_path, columns=72)
    half = reference_stack(cine_sax_path, columns=36)
    assert half.shape[-1] == 36
    assert (half == full[..., 18:54]).all()


def _reconstruct(source_root, output, *extra):
    return main([
        "reconstruct", "--method", "zero-filled", "--input", str(source_root),
        "--output", str(output), "--mask", "Uniform4", "--no-preview", *extra,
    ])  # fmt: skip


def test_the_command_writes_phenotypes_of_every_cine_sax_reconstruction(
    trained, cine_sax_path, tmp_path
):
    assert _reconstruct(cine_sax_path.parent, tmp_path, "--full") == 0
    code = main([
        "phenotype", "--reconstructions", str(tmp_path), "--segmenter", str(trained.checkpoint)
    ])  # fmt: skip
    assert code == 0
    with open(tmp_path / "phenotypes.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["method"], row["mask"]) == ("zero-filled", "Uniform4")
    for key in ("recon_lv_ef_percent", "reference_lv_ef_percent", "true_lv_ef_percent"):
        assert key in row
    with open(tmp_path / "phenotype_agreement.csv", newline="") as handle:
        compared = {(entry["measure"], entry["against"]) for entry in csv.DictReader(handle)}
    assert {("lv_ef_percent", "reference"), ("lv_ef_percent", "true")} <= compared
    assert (tmp_path / "bland_altman_lvef.png").is_file()


def test_a_run_without_whole_volumes_is_refused_with_the_reason(
    trained, cine_sax_path, tmp_path, capsys
):
    assert _reconstruct(cine_sax_path.parent, tmp_path) == 0
    code = main([
        "phenotype", "--reconstructions", str(tmp_path), "--segmenter", str(trained.checkpoint)
    ])  # fmt: skip
    assert code == 1
    assert "written without --full" in capsys.readouterr().err


def test_an_untrained_segmenter_still_gives_a_row_per_file(cine_sax_path, tmp_path):
    checkpoint = save_segmenter(tmp_path / "s.pt", build_segmenter("tiny"), "tiny", {})
    assert _reconstruct(cine_sax_path.parent, tmp_path / "run", "--full") == 0
    code = main([
        "phenotype", "--reconstructions", str(tmp_path / "run"), "--segmenter", str(checkpoint)
    ])  # fmt: skip
    assert code == 0
