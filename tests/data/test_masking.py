"""The masking objects a slice dataset is given: random per training sample, fixed for
evaluation."""

from pathlib import Path

import pytest

from cardiomm.data.masking import (
    EvaluationMasks,
    ImageKey,
    MaskSetting,
    TrainingMasks,
    evaluation_masks,
)
from cardiomm.masks import MaskSampler

IMAGE = ImageKey(
    item=3, path=Path("Center001/P001/cine_sax.mat"), frame=1, slice_index=2, matrix=(24, 32)
)


def test_training_masks_are_a_function_of_seed_epoch_and_item():
    masks = TrainingMasks(MaskSampler(["ktGaussian"], [4]), seed=2)
    same = TrainingMasks(MaskSampler(["ktGaussian"], [4]), seed=2)
    assert (masks.mask_for(IMAGE, 0).values == same.mask_for(IMAGE, 0).values).all()
    assert (masks.mask_for(IMAGE, 0).values != masks.mask_for(IMAGE, 1).values).any()


def test_evaluation_masks_do_not_change_with_the_epoch():
    masks = evaluation_masks(("ktGaussian", 16))
    assert (masks.mask_for(IMAGE, 0).values == masks.mask_for(IMAGE, 7).values).all()


def test_evaluation_masks_follow_the_reference_matrix():
    masks = evaluation_masks(("Uniform", 8), reference_matrix=(246, 512))
    assert masks.mask_for(IMAGE, 0).acs_width == 2  # round(20 x 24 / 246)


def test_another_setting_keeps_the_rest_of_the_masking():
    masks = EvaluationMasks(acs_width=6, seed=4).with_settings(("ktRadial", 8))
    assert masks.settings == (MaskSetting("ktRadial", 8),)
    assert (masks.acs_width, masks.seed) == (6, 4)


def test_evaluation_masks_need_a_setting():
    with pytest.raises(ValueError, match="at least one"):
        EvaluationMasks(settings=())
