"""What ``cardiomm reconstruct`` refuses: a checkpoint that cannot reconstruct (NaN weights,
weights that do not fit its config), a reconstruction with NaN or Inf, an output folder that
holds results already; and what it then writes (nothing that looks good)."""

import csv
import math

import numpy as np
import pydicom
import pytest
import torch

from cardiomm.cli import main
from cardiomm.data.geometry import ScanGeometry
from cardiomm.data.metadata import ScanMetadata
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.recon.dicom import write_dicom_series
from cardiomm.recon.identity import SeriesIdentity
from cardiomm.recon.nifti import write_nifti
from cardiomm.recon.submission import write_reconstruction
from cardiomm.text import build_text_encoder

CINE = "MultiCoil/Cine/TrainingSet/FullSample/Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
# One file given: its outputs lie at the top of the output folder.
SERIES = "cine_sax_kus_Uniform4"

METADATA = ScanMetadata(centre="Center001", modality="cine")


def _checkpoint(path, fill: float | None = None, **config_changes):
    """A tiny model checkpoint; ``fill`` sets every weight to one value; ``config_changes``
    edit the stored model config after the weights were made (a config that does not fit)."""
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(), encoder)
    if fill is not None:
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.fill_(fill)
    save_checkpoint(path, network, {"name": "none"}, encoder.dim)
    if config_changes:
        content = torch.load(path, weights_only=True)
        for section, changes in config_changes.items():
            content["model_config"][section].update(changes)
        torch.save(content, path)
    return path


def _reconstruct(data, output, *arguments):
    return main([
        "reconstruct", "--input", str(data / CINE), "--output", str(output), "--mask",
        "Uniform4", "--device", "cpu", *arguments,
    ])  # fmt: skip


def _summary(output):
    with open(output / "reconstruction_summary.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_checkpoint_with_nan_weights_is_refused_naming_it(tiny_data, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "nan.pt", fill=math.nan)
    code = _reconstruct(tiny_data, tmp_path / "out", "--checkpoint", str(checkpoint))
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cardiomm reconstruct: error: {checkpoint}: ")
    assert "weights hold NaN or Inf values" in line
    assert not (tmp_path / "out").exists()


def test_a_reconstruction_with_inf_is_an_error_naming_the_checkpoint_and_the_file(
    tiny_data, tmp_path, capsys
):
    # Finite weights whose products overflow float32: the output is Inf / NaN.
    checkpoint = _checkpoint(tmp_path / "huge.pt", fill=1e30)
    output = tmp_path / "out"
    code = _reconstruct(tiny_data, output, "--checkpoint", str(checkpoint), "--format", "all")
    assert code == 1  # nothing reconstructed
    error = capsys.readouterr().err
    assert f"error: {(tiny_data / CINE).resolve()}: checkpoint {checkpoint} failed" in error
    (row,) = _summary(output)
    assert row["status"] == "error"
    assert f"checkpoint {checkpoint}" in row["reason"] and "not finite" in row["reason"]
    assert row["psnr"] == row["output"] == ""
    written = [path for path in output.rglob("*") if path.is_file()]
    assert [path.name for path in written] == ["reconstruction_summary.csv"]


@pytest.mark.parametrize("writer", ["dicom", "nifti", "mat"])
def test_no_writer_writes_a_volume_with_nan(tmp_path, writer):
    volume = np.ones((1, 2, 8, 8), dtype=np.float32)
    volume[0, 1, 3, 3] = np.nan
    geometry = ScanGeometry((1.0, 1.0), 8.0)
    identity = SeriesIdentity("Center001-X_30T_Y-P001", "study", "frame", "series", "test")
    write = {
        "dicom": lambda: write_dicom_series(tmp_path / "s", volume, METADATA, geometry, identity),
        "nifti": lambda: write_nifti(tmp_path / "v.nii.gz", volume, geometry),
        "mat": lambda: write_reconstruction(tmp_path / "r.mat", volume, is_mapping=False),
    }[writer]
    with pytest.raises(ValueError, match="holds 1 NaN or Inf values"):
        write()
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_with_results_is_refused_without_overwrite(tiny_data, tmp_path, capsys):
    output = tmp_path / "out"
    assert _reconstruct(tiny_data, output, "--method", "zero-filled", "--format", "both") == 0
    before = {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()}
    capsys.readouterr()
    code = _reconstruct(tiny_data, output, "--method", "sense", "--format", "both")
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"error: {output} already holds results" in line and "--overwrite" in line
    after = {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()}
    assert after == before


def test_overwrite_replaces_a_dicom_series_whole(tiny_data, tmp_path):
    output = tmp_path / "out"
    assert _reconstruct(tiny_data, output, "--method", "zero-filled", "--format", "dicom") == 0
    series = output / "dicom" / SERIES
    stale = series / "IM_f999_s999.dcm"
    stale.write_bytes((series / "IM_f000_s000.dcm").read_bytes())
    code = _reconstruct(tiny_data, output, "--method", "sense", "--format", "dicom", "--overwrite")
    assert code == 0
    assert not stale.exists()
    instances = [pydicom.dcmread(path) for path in series.glob("*.dcm")]
    assert len(instances) == 15  # 5 frames x 3 slices, of one series
    assert len({item.SeriesInstanceUID for item in instances}) == 1
    assert _summary(output)[0]["method"] == "cg-sense"


def test_an_output_folder_without_results_is_written_into(tiny_data, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("planned run")
    assert _reconstruct(tiny_data, output, "--method", "zero-filled") == 0
    assert (output / "notes.txt").read_text() == "planned run"


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_line(tiny_data, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "edited.pt", image_net={"widths": [16, 24, 32, 40]})
    code = _reconstruct(tiny_data, tmp_path / "out", "--checkpoint", str(checkpoint))
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cardiomm reconstruct: error: {checkpoint}: ")
    assert "weights do not fit its model config" in line and "the config builds" in line


def test_a_checkpoint_without_weights_is_one_line(tiny_data, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "empty.pt")
    content = torch.load(checkpoint, weights_only=True)
    del content["state_dict"]
    torch.save(content, checkpoint)
    code = _reconstruct(tiny_data, tmp_path / "out", "--checkpoint", str(checkpoint))
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"cardiomm reconstruct: error: {checkpoint}: the checkpoint lacks state_dict"
