"""``cardiomm reconstruct`` end to end on tiny files (24 x 32, 4 coils, 2 frames)."""

import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from cardiomm.cli import main
from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import open_series
from cardiomm.model.checkpoint import read_checkpoint, save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.text import build_text_encoder
from tests.builders import phantom_kspace, write_site_file

SHAPE = (2, 3, 4, 24, 32)  # frames, slices, coils, ky, kx
ACS_WIDTH = 4
# The ranking of 2 frames x 3 slices: both frames, slices 0 and 1 (MATLAB round(3/2)-1 and
# round(3/2), 1-based); crop (round(24/2), round(32/3)) = (12, 11) around the centre.
RANKED_FRAMES, RANKED_SLICES = [0, 1], [0, 1]
CROP = (slice(6, 18), slice(11, 22))
UNDERSAMPLED = Path(
    "ValidationSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P007/cine_lax_3ch_kus_Uniform4.mat"
)


def _zero_filled_rss(kspace: np.ndarray) -> np.ndarray:
    """(..., coils, ky, kx) centred k-space -> (..., ky, kx) RSS of the coil images, in numpy."""
    images = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    return np.sqrt((np.abs(images) ** 2).sum(axis=-3))


def _line_mask(lines: list[int]) -> np.ndarray:
    mask = np.zeros(SHAPE[3:], dtype=bool)
    mask[lines] = True
    return mask


def _ranked(volume: np.ndarray) -> np.ndarray:
    return volume[np.ix_(RANKED_FRAMES, RANKED_SLICES)][..., CROP[0], CROP[1]]


def _summary(output: Path) -> list[dict[str, str]]:
    with open(output / "reconstruction_summary.csv") as handle:
        return list(csv.DictReader(handle))


def _write_undersampled(root: Path, lines: list[int]) -> np.ndarray:
    """An undersampled 2025 validation file holding ``lines``; returns its k-space."""
    kus = phantom_kspace(*SHAPE, seed=5) * _line_mask(lines)
    write_mat_v73(root / UNDERSAMPLED, {"kus": kus})
    return kus


def test_a_fully_sampled_file_is_undersampled_reconstructed_written_and_scored(tmp_path):
    path = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data"),
        "--output", str(output), "--mask", "Uniform4", "--acs-width", str(ACS_WIDTH),
    ])  # fmt: skip
    assert code == 0
    relative = path.relative_to(tmp_path / "data").with_name("cine_sax_kus_Uniform4.mat")
    with h5py.File(output / relative, "r") as handle:
        ranked = handle["img4ranking"][()]
        assert "reconstruction" not in handle
    # Uniform 4: every 4th line from 0, plus the 4 central lines 10..13: 9 lines in all.
    mask = _line_mask([0, 4, 8, 12, 16, 20, 10, 11, 12, 13])
    expected = _ranked(_zero_filled_rss(phantom_kspace(*SHAPE) * mask))
    assert ranked.shape == (2, 2, 12, 11)
    assert ranked.dtype == np.float32
    np.testing.assert_allclose(ranked, expected, rtol=1e-4, atol=1e-6)

    preview = output / "previews" / relative.with_suffix(".png")
    assert preview.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    (row,) = _summary(output)
    assert row["status"] == "ok"
    assert row["mask"] == "Uniform4"
    assert (row["frames"], row["slices"]) == ("2", "3")
    assert 5 < float(row["psnr"]) < 60
    assert 0 < float(row["ssim"]) <= 1
    assert math.isclose(float(row["sampling_fraction"]), 9 / 24, rel_tol=1e-5)


def test_an_official_mask_file_decides_the_samples_of_an_undersampled_file(tmp_path):
    held = [0, 2, 4, 6, 8, 10, 11, 12, 13, 14, 16, 18, 20, 22]
    kus = _write_undersampled(tmp_path / "data", held)
    # The mask file names fewer lines than the file holds: its lines alone must be used.
    official = [0, 4, 8, 11, 12, 13, 16, 20]
    mask_file = (tmp_path / "data" / UNDERSAMPLED).with_name("cine_lax_3ch_mask_Uniform4.mat")
    write_mat_v73(mask_file, {"mask": _line_mask(official).astype(np.float64)})
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data"),
        "--output", str(output), "--no-preview",
    ])  # fmt: skip
    assert code == 0
    with h5py.File(output / UNDERSAMPLED, "r") as handle:
        ranked = handle["img4ranking"][()]
    expected = _ranked(_zero_filled_rss(kus * _line_mask(official)))
    np.testing.assert_allclose(ranked, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(ranked, _ranked(_zero_filled_rss(kus)), rtol=1e-2)
    (row,) = _summary(output)
    assert row["mask_source"] == f"official mask file {mask_file.resolve()}"
    assert row["psnr"] == ""  # no reference for undersampled input


def test_without_a_mask_file_the_sampled_lines_are_the_mask(tmp_path):
    held = [0, 3, 6, 9, 10, 11, 12, 13, 15, 18, 21]
    kus = _write_undersampled(tmp_path / "data", held)
    output = tmp_path / "out"
    assert main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data" / UNDERSAMPLED),
        "--output", str(output),
    ]) == 0  # fmt: skip
    with h5py.File(output / UNDERSAMPLED.name, "r") as handle:
        np.testing.assert_allclose(
            handle["img4ranking"][()], _ranked(_zero_filled_rss(kus)), rtol=1e-4, atol=1e-6
        )
    (row,) = _summary(output)
    assert row["mask"] == "Uniform4"
    assert row["mask_source"] == "sampled lines of the k-space"
    assert math.isclose(float(row["sampling_fraction"]), len(held) / 24, rel_tol=1e-5)
    preview = output / "previews" / UNDERSAMPLED.with_suffix(".png").name
    assert preview.read_bytes().startswith(b"\x89PNG")


def test_a_checkpoint_reconstructs_an_unknown_scan_and_full_keeps_every_image(tmp_path):
    encoder = build_text_encoder("none")
    checkpoint = save_checkpoint(
        tmp_path / "model.pt", build_network(ModelConfig(), encoder), {"name": "none"}, encoder.dim
    )
    # Outside the 2025 layout: every metadata field is unknown.
    write_mat_v73(tmp_path / "data" / "scan.mat", {"kspace_full": phantom_kspace(1, 2, 4, 24, 32)})
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "data"),
        "--output", str(output), "--mask", "ktRadial8", "--acs-width", str(ACS_WIDTH),
        "--batch-size", "2", "--full", "--no-preview", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    with h5py.File(output / "scan_kus_ktRadial8.mat", "r") as handle:
        ranked, full = handle["img4ranking"][()], handle["reconstruction"][()]
    assert ranked.shape == (1, 2, 12, 11)
    assert full.shape == (1, 2, 24, 32)
    assert full.dtype == np.float32
    assert np.isfinite(full).all() and full.max() > 0
    np.testing.assert_array_equal(ranked, full[:, :, CROP[0], CROP[1]])
    (row,) = _summary(output)
    assert row["method"] == "cardiomm"
    assert row["psnr"] != ""


def test_a_fully_sampled_file_without_a_mask_is_refused_by_name(tmp_path, capsys):
    path = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(path), "--output",
        str(tmp_path / "out"), "--no-preview",
    ])  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert f"skipping {path.resolve()}: fully sampled k-space: give --mask" in error
    (row,) = _summary(tmp_path / "out")
    assert row["status"] == "skipped"
    assert "--mask" in row["reason"]


def test_a_corrupt_file_is_skipped_and_reported_while_the_others_are_written(tmp_path, capsys):
    good = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    corrupt = good.with_name("cine_lax.mat")
    corrupt.write_bytes(b"this is not HDF5" * 40)
    output = tmp_path / "out"
    arguments = [
        "reconstruct", "--method", "zero-filled", "--mask", "ktGaussian8", "--no-preview",
    ]  # fmt: skip
    assert main([*arguments, "--output", str(output), "--input", str(tmp_path / "data")]) == 1
    assert "cine_lax.mat: not an HDF5 file" in capsys.readouterr().err
    assert (
        output / good.relative_to(tmp_path / "data").with_name("cine_sax_kus_ktGaussian8.mat")
    ).is_file()
    rows = {Path(row["input"]).name: row for row in _summary(output)}
    assert rows["cine_sax.mat"]["status"] == "ok"
    assert rows["cine_lax.mat"]["status"] == "skipped"
    assert rows["cine_lax.mat"]["reason"] == "not an HDF5 file"

    alone = ["--output", str(tmp_path / "corrupt-only"), "--input", str(corrupt)]
    assert main([*arguments, *alone]) == 1


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(tmp_path, capsys):
    full = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    kus = full.with_name("cine_sax_kus_Uniform4.mat")
    write_mat_v73(kus, {"kus": phantom_kspace(*SHAPE) * _line_mask([0, 4, 8, 12, 16, 20])})
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tmp_path / "data"),
        "--output", str(tmp_path / "out"), "--mask", "Uniform4", "--no-preview",
    ])  # fmt: skip
    assert code == 1  # one file is not reconstructed
    assert f"skipping {kus.resolve()}: its output" in capsys.readouterr().err
    assert [row["status"] for row in _summary(tmp_path / "out")] == ["ok", "skipped"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--mask", "spiral8"], "unknown mask pattern 'spiral'"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
    ],
)
def test_bad_options_are_user_errors(tmp_path, capsys, arguments, message):
    code = main([
        "reconstruct", "--method", "sense", "--input", str(tmp_path), "--output",
        str(tmp_path / "out"), *arguments,
    ])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_model_trained_without_readout_oversampling_reconstructs_the_halved_readout(
    tmp_path,
):
    data = write_site_file(
        tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=(1, 1, 4, 24, 32)
    )
    encoder = build_text_encoder("none")
    checkpoint = save_checkpoint(
        tmp_path / "model.pt",
        build_network(ModelConfig(), encoder),
        {"name": "none"},
        encoder.dim,
        extra={"remove_oversampling": True},
    )
    assert read_checkpoint(checkpoint)["extra"]["remove_oversampling"]
    output = tmp_path / "out"
    code = main(
        [
            "reconstruct",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(data),
            "--mask",
            "Uniform4",
            "--output",
            str(output),
            "--full",
            "--no-preview",
        ]
    )
    assert code == 0
    written = next(output.rglob("*.mat"))
    with open_series(data) as series:
        assert series.shape.kx == 32
    with h5py.File(written) as handle:
        assert handle["reconstruction"].shape[-1] == 16
        # The ranked crop keeps the same anatomy as on the full readout: round(32 / 3).
        assert handle["img4ranking"].shape[-1] == 11


def _one_good_and_one_corrupt_file(tmp_path):
    good = write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    good.with_name("cine_lax.mat").write_bytes(b"this is not HDF5" * 40)
    return main([
        "reconstruct", "--method", "zero-filled", "--mask", "Uniform4", "--no-preview",
        "--input", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
    ])  # fmt: skip


def test_a_partial_failure_exits_1(tmp_path):
    assert _one_good_and_one_corrupt_file(tmp_path) == 1


def test_a_partial_failure_is_counted_on_the_console_naming_the_summary(tmp_path, capsys):
    _one_good_and_one_corrupt_file(tmp_path)
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "1 of 2 files reconstructed" in out
    assert "1 skipped (not reconstructed)" in out
    assert str(tmp_path / "out" / "reconstruction_summary.csv") in out


def test_a_run_that_reconstructs_every_file_exits_0_without_a_failure_count(tmp_path, capsys):
    write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    code = main([
        "reconstruct", "--method", "zero-filled", "--mask", "Uniform4", "--no-preview",
        "--input", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == 0
    assert "not reconstructed" not in capsys.readouterr().out


def test_a_symlink_loop_among_the_inputs_is_a_skipped_row_naming_it(tmp_path):
    write_site_file(tmp_path / "data", "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    loop = tmp_path / "data" / "loop.mat"
    loop.symlink_to(loop)
    code = main([
        "reconstruct", "--method", "zero-filled", "--mask", "Uniform4", "--no-preview",
        "--input", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == 1
    rows = {Path(row["input"]).name: row for row in _summary(tmp_path / "out")}
    assert (rows["loop.mat"]["status"], rows["loop.mat"]["reason"]) == ("skipped", "a symlink loop")
