"""The frame-window CardioMM reconstructs files slice by slice, with the slice's texts."""

import dataclasses

import h5py
import numpy as np
import pytest

from cardiomm.cli import main
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import evaluation_masks
from cardiomm.data.readers import open_series
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.model.reconstructor import NetworkReconstructor, WindowReconstructor
from cardiomm.recon.mask_choice import choose_masks, parse_mask_spec
from cardiomm.recon.volume import reconstruct_volume
from cardiomm.text import build_text_encoder
from cardiomm.train.evaluate import evaluate_reconstructor
from tests.builders import write_site_file
from tests.model.conftest import activate_adapters

SCANNER = "Siemens_30T_Vida"


def _window_reconstructor(trained: bool = False) -> WindowReconstructor:
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(temporal="window", window_radius=1), encoder)
    if trained:
        activate_adapters(network)
    return WindowReconstructor(NetworkReconstructor(network, encoder), network)


def _reconstruct(path, reconstructor):
    with open_series(path) as series:
        masks = choose_masks(series, parse_mask_spec("ktRadial8"), acs_width=4)
        return reconstruct_volume(series, masks, reconstructor)


def test_an_untrained_window_model_reconstructs_a_cine_file_zero_filled(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=(4, 2, 3, 24, 32))
    volume = _reconstruct(path, _window_reconstructor())
    assert volume.shape == (4, 2, 24, 32)
    np.testing.assert_allclose(volume.reconstruction, volume.zero_filled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("stem", "shape"), [("T1map", (3, 1, 2, 24, 32)), ("lge", (1, 2, 2, 24, 32))]
)
def test_mapping_and_frameless_files_reconstruct(tmp_path, stem, shape):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", stem, shape=shape)
    volume = _reconstruct(path, _window_reconstructor(trained=True))
    assert volume.shape == (shape[0], shape[1], 24, 32)
    assert np.isfinite(volume.reconstruction).all()


@dataclasses.dataclass
class _Images:
    images: np.ndarray


class _RecordingTextMethod:
    """A text-conditioned cine method that records the texts it is given."""

    name = "recording"
    reads_texts = True

    def __init__(self) -> None:
        self.texts = []

    def reconstruct_cine(self, masked_kspace, masks, frames, texts=None):
        self.texts.append(texts)
        return _Images(np.zeros((len(frames), *masked_kspace.shape[-2:]), np.float32))


def test_a_text_conditioned_cine_method_gets_the_slices_texts(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=(2, 1, 2, 24, 32))
    method = _RecordingTextMethod()
    _reconstruct(path, method)
    (texts,) = method.texts
    assert texts.undersampling_text == "Undersampling: 8x radial."
    assert texts.metadata_text.startswith("Adult cardiac MRI reconstruction. Vendor: 3.0T")


def test_scoring_by_slice_and_by_window_items_agree(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=(3, 2, 3, 24, 32))
    masking = evaluation_masks(("ktGaussian", 8), acs_width=4)
    reconstructor = _window_reconstructor(trained=True)
    by_slice = evaluate_reconstructor(
        reconstructor, SliceDataset([path], masking, show_progress=False), show_progress=False
    )
    windows = SliceDataset([path], masking, show_progress=False, frame_window_radius=1)
    by_item = evaluate_reconstructor(reconstructor.reconstructor, windows, show_progress=False)
    assert len(by_slice.records) == len(by_item.records) == 6
    for first, second in zip(by_slice.records, by_item.records, strict=True):
        assert (first["frame"], first["slice"]) == (second["frame"], second["slice"])
        assert first["psnr"] == pytest.approx(second["psnr"], abs=1e-4)


def test_the_reconstruct_command_runs_a_window_checkpoint_on_a_cine_file(tmp_path):
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(temporal="window", window_radius=1), encoder)
    checkpoint = save_checkpoint(tmp_path / "window.pt", network, {"name": "none"}, encoder.dim)
    write_site_file(tmp_path / "data", "Center001", SCANNER, "P001", shape=(3, 2, 3, 24, 32))
    output = tmp_path / "out"
    code = main([
        "reconstruct", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "data"),
        "--output", str(output), "--mask", "ktGaussian8", "--acs-width", "4", "--full",
        "--no-preview", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    (written,) = output.rglob("cine_sax_kus_ktGaussian8.mat")
    with h5py.File(written, "r") as handle:
        full = handle["reconstruction"][()]
    assert full.shape == (3, 2, 24, 32)
    assert np.isfinite(full).all() and full.max() > 0
