import pytest
import torch

from cardiomm.physics import crop_kspace_centre, pad_kspace_centre
from tests.conftest import random_complex


@pytest.mark.parametrize(
    ("full", "block"), [((16, 20), (6, 20)), ((15, 17), (7, 8)), ((9, 9), (1, 1))]
)
def test_cropping_a_padded_block_gives_the_block_back(full, block, generator):
    kspace = random_complex((2, 3, *block), generator)
    assert torch.equal(crop_kspace_centre(pad_kspace_centre(kspace, full), block), kspace)


@pytest.mark.parametrize("full", [(16, 20), (15, 17)])
def test_padding_keeps_the_zero_frequency_at_the_centre(full):
    block = torch.zeros(5, 6, dtype=torch.complex64)
    block[5 // 2, 6 // 2] = 1
    padded = pad_kspace_centre(block, full)
    assert padded[full[0] // 2, full[1] // 2] == 1
    assert padded.abs().sum() == 1


def test_padding_fills_the_rest_with_zeros(generator):
    padded = pad_kspace_centre(random_complex((4, 4), generator), (10, 12))
    padded[3:7, 4:8] = 0
    assert padded.abs().max() == 0


def test_a_block_larger_than_the_matrix_is_refused(generator):
    with pytest.raises(ValueError, match=r"\(20, 4\) does not fit in \(16, 16\)"):
        crop_kspace_centre(random_complex((16, 16), generator), (20, 4))
