"""The submission layout: inputs found, output names, the .mat variables, the summary CSV."""

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from cardiomm.recon.submission import (
    FileSummary,
    find_inputs,
    output_relative_path,
    preview_relative_path,
    ranking_volume,
    write_reconstruction,
    write_summary,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_folders_are_searched_for_data_files_without_mask_files_or_outputs(tmp_path):
    data = _touch(tmp_path / "Cine/FullSample/P001/cine_sax.mat")
    _touch(tmp_path / "Cine/Mask_TaskAll/P001/cine_sax_mask_ktRadial16.mat")
    _touch(tmp_path / "Cine/AccFactor04/P001/cine_sax_mask.mat")
    _touch(tmp_path / "Cine/out/P001/cine_sax_kus_Uniform8.mat")
    _touch(tmp_path / "Cine/FullSample/P001/T1map.csv")
    found = find_inputs([tmp_path / "Cine"], exclude=tmp_path / "Cine" / "out")
    assert found.files == [data.resolve()]
    assert found.relative(found.files[0]) == Path("FullSample/P001/cine_sax.mat")


def test_the_root_is_common_to_every_input_given(tmp_path):
    first = _touch(tmp_path / "A/P001/cine_sax.mat")
    _touch(tmp_path / "B/P002/cine_lax.mat")
    found = find_inputs([first, tmp_path / "B"])
    assert found.root == tmp_path.resolve()
    assert [str(found.relative(path)) for path in found.files] == [
        "A/P001/cine_sax.mat",
        "B/P002/cine_lax.mat",
    ]
    assert find_inputs([first]).relative(first.resolve()) == Path("cine_sax.mat")


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such file"):
        find_inputs([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no k-space \.mat files"):
        find_inputs([tmp_path / "empty"])


def test_outputs_are_named_after_what_was_reconstructed():
    kus = Path(
        "ValidationSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P007/"
        "cine_lax_3ch_kus_Uniform8.mat"
    )
    assert output_relative_path(kus, "Uniform8", is_undersampled=True) == kus
    full = Path("FullSample/Center001/Siemens_30T_Vida/P001/cine_sax.mat")
    assert output_relative_path(full, "ktGaussian16", is_undersampled=False) == Path(
        "FullSample/Center001/Siemens_30T_Vida/P001/cine_sax_kus_ktGaussian16.mat"
    )
    assert preview_relative_path(kus) == Path("previews") / kus.with_suffix(".png")


def test_the_ranking_volume_selects_central_slices_first_frames_and_crops():
    volume = np.arange(12 * 10 * 24 * 30, dtype=np.float32).reshape(12, 10, 24, 30)
    ranked = ranking_volume(-volume, is_mapping=False)
    # 10 slices: MATLAB round(10/2)-1 and round(10/2) = 4 and 5, 1-based.
    assert ranked.shape == (3, 2, 12, 10)
    assert ranked.dtype == np.float32
    np.testing.assert_array_equal(ranked, volume[:3, 3:5, 6:18, 10:20])
    assert ranking_volume(volume[:9, :5], is_mapping=True).shape == (9, 2, 12, 10)
    assert ranking_volume(volume[:1, :1], is_mapping=False).shape == (1, 1, 12, 10)


def test_the_submission_file_is_matlab_v73_single_precision(tmp_path):
    volume = np.random.default_rng(0).random((4, 3, 24, 32), dtype=np.float32)
    path = write_reconstruction(tmp_path / "a/b.mat", volume, is_mapping=False, full=True)
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    with h5py.File(path, "r") as handle:
        assert handle["img4ranking"].shape == (3, 2, 12, 11)
        assert handle["img4ranking"].attrs["MATLAB_class"] == b"single"
        np.testing.assert_array_equal(handle["reconstruction"][()], volume)
    plain = write_reconstruction(tmp_path / "c.mat", volume, is_mapping=False)
    with h5py.File(plain, "r") as handle:
        assert set(handle) == {"img4ranking"}


def test_the_summary_leaves_missing_scores_empty(tmp_path):
    rows = [
        FileSummary(Path("a.mat"), "ok", output=Path("o/a.mat"), mask="Uniform8", psnr=31.5),
        FileSummary(Path("b.mat"), "skipped", reason="not an HDF5 file"),
    ]
    with open(write_summary(tmp_path / "s.csv", rows)) as handle:
        read = list(csv.DictReader(handle))
    assert read[0]["psnr"] == "31.5"
    assert read[0]["ssim"] == ""
    assert read[1]["status"] == "skipped"
    assert read[1]["reason"] == "not an HDF5 file"
    assert read[1]["output"] == ""
