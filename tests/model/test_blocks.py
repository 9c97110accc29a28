"""Building blocks: the bilinear resize that keeps CUDA training deterministic."""

import pytest
import torch
import torch.nn.functional as F

from cardiomm.model.blocks import resize_bilinear


@pytest.mark.parametrize("size", [(14, 18), (56, 64), (5, 4), (7, 9)])
def test_resize_is_bilinear_interpolation_with_half_pixel_centres(size):
    features = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(resize_bilinear(features, size), expected, rtol=1e-6, atol=1e-6)


def test_resize_gradient_is_the_interpolation_gradient():
    features = torch.randn(1, 2, 6, 5, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(1, 2, 12, 10, generator=torch.Generator().manual_seed(2))
    ours = features.clone().requires_grad_()
    theirs = features.clone().requires_grad_()
    (resize_bilinear(ours, (12, 10)) * weights).sum().backward()
    interpolated = F.interpolate(theirs, size=(12, 10), mode="bilinear", align_corners=False)
    (interpolated * weights).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=1e-5)
