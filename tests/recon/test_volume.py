"""reconstruct_volume hands a cine reconstructor each slice's frames together."""

import dataclasses

import numpy as np

from cardiomm.data.readers import open_series
from cardiomm.recon.mask_choice import choose_masks, parse_mask_spec
from cardiomm.recon.volume import reconstruct_volume
from tests.builders import write_site_file

SHAPE = (3, 2, 4, 24, 32)  # frames, slices, coils, ky, kx


@dataclasses.dataclass
class _Images:
    images: np.ndarray


class _RecordingCineMethod:
    """Returns each frame's mean |k| as its image and records what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...], list[int]]] = []

    def reconstruct_cine(self, masked_kspace, masks, frames):
        self.calls.append((masked_kspace.shape, masks.shape, list(frames)))
        value = np.abs(masked_kspace).mean(axis=(1, 2, 3))[list(frames)]
        return _Images(np.broadcast_to(value[:, None, None], (len(frames), 24, 32)).copy())


def test_a_cine_reconstructor_gets_each_slices_frames_together(tmp_path):
    path = write_site_file(tmp_path, "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    method = _RecordingCineMethod()
    with open_series(path) as series:
        masks = choose_masks(series, parse_mask_spec("ktGaussian4"), acs_width=4)
        volume = reconstruct_volume(series, masks, method, batch_size=1)
        per_frame = []
        for frame in range(3):
            kspace = series.read_kspace(frame, 1)
            per_frame.append(np.abs(kspace * masks.mask(frame, 1, kspace).frame(0)).mean())
    assert method.calls == [((3, 4, 24, 32), (3, 24, 32), [0, 1, 2])] * 2
    np.testing.assert_allclose(volume.reconstruction[:, 1, 0, 0], per_frame, rtol=1e-5)
