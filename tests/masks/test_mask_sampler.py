import numpy as np
import pytest

from cardiomm.config import load_config
from cardiomm.masks import MaskPattern, MaskSampler, make_mask


def test_sampler_draws_only_and_all_configured_settings():
    sampler = MaskSampler(patterns=["Uniform", "ktRadial"], accelerations=[4, 16], seed=0)
    drawn = {(m.pattern, m.acceleration) for m in (sampler.sample((40, 48)) for _ in range(60))}
    assert drawn == {
        (MaskPattern.UNIFORM, 4),
        (MaskPattern.UNIFORM, 16),
        (MaskPattern.KT_RADIAL, 4),
        (MaskPattern.KT_RADIAL, 16),
    }


def test_sampler_is_reproducible_for_a_seed():
    first, second = MaskSampler(seed=5), MaskSampler(seed=5)
    for _ in range(5):
        mask_a, mask_b = first.sample((40, 48)), second.sample((40, 48))
        assert mask_a.name == mask_b.name
        assert (mask_a.values == mask_b.values).all()


def test_sampler_uses_the_configured_acs_width():
    mask = MaskSampler(patterns=["Uniform"], accelerations=[8], acs_width=6).sample((64, 32))
    assert mask.acs_width == 6


def test_sampler_gives_the_requested_shape_and_frames():
    mask = MaskSampler(seed=1).sample((37, 50), num_frames=3)
    assert mask.values.shape == (3, 37, 50)


def test_sampler_builds_from_the_hydra_mask_config():
    config = load_config(["masks.accelerations=[8]", "masks.patterns=[ktGaussian]"])
    mask = MaskSampler.from_config(config.masks, seed=config.seed).sample((64, 64))
    assert mask.name == "ktGaussian8"
    assert mask.acs_width == config.masks.acs_width


def test_sampler_draws_the_same_mask_from_equal_explicit_generators():
    sampler = MaskSampler(seed=0)
    first = sampler.sample((40, 48), rng=np.random.default_rng([3, 1, 17]))
    second = sampler.sample((40, 48), rng=np.random.default_rng([3, 1, 17]))
    assert first.name == second.name
    assert np.array_equal(first.values, second.values)


def test_an_acceleration_beyond_the_plausible_range_is_refused_by_name():
    with pytest.raises(ValueError, match=r"masks\.accelerations entry 1000 is outside \[1, 64\]"):
        MaskSampler(accelerations=[8, 1000])


def test_make_mask_refuses_a_matrix_larger_than_any_scan():
    with pytest.raises(ValueError, match="within 1 to 4096"):
        make_mask("Uniform", 8, (100_000, 512))
