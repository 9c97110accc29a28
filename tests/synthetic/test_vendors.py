"""Vendor chains: what each vendor does to the stored k-space beyond its units."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.data.synthetic import sample_subject
from cardiomm.data.synthetic.coils import body_array
from cardiomm.data.synthetic.vendors import VENDOR_CHAINS, VendorChain, vendor_chain


def test_every_vendor_has_a_chain_and_an_unknown_one_is_named() -> None:
    assert set(VENDOR_CHAINS) == {"Siemens", "UIH", "GE", "Philips"}
    with pytest.raises(ValueError, match="unknown vendor 'Toshiba'"):
        vendor_chain("Toshiba")


def test_vendors_differ_in_three_ways_that_change_the_kspace() -> None:
    chains = list(VENDOR_CHAINS.values())
    filters = {np.round(c.raw_filter(64, 128), 3).tobytes() for c in chains}
    arrays = {(c.coil_columns, c.coil_correlation) for c in chains}
    flips = {c.cine_flip_factor for c in chains}
    assert len(filters) == len(chains)
    assert len(arrays) == len(chains)
    assert len(flips) >= 3


@pytest.mark.parametrize("vendor", sorted(VENDOR_CHAINS))
def test_raw_filter_keeps_the_centre_and_never_amplifies(vendor: str) -> None:
    values = vendor_chain(vendor).raw_filter(63, 128)
    assert values.shape == (63, 128)
    assert values[63 // 2, 64] == pytest.approx(1.0)
    assert values.max() <= 1.0 + 1e-6 and values.min() > 0.0


def test_a_fermi_filter_falls_to_half_at_its_radius() -> None:
    chain = VendorChain("X", 1.0, filter="fermi", filter_width=0.02, filter_radius=0.8)
    row = chain.raw_filter(1, 201)[0]
    assert row[100 + 80] == pytest.approx(0.5, abs=0.02)


def test_a_filter_name_that_is_not_known_is_refused() -> None:
    with pytest.raises(ValueError, match="filter must be one of"):
        VendorChain("X", 1.0, filter="lanczos")


def test_fewer_coil_columns_make_larger_elements() -> None:
    body = sample_subject(np.random.default_rng(2)).body
    wide = body_array(16, body, np.random.default_rng(3), columns=2)
    narrow = body_array(16, body, np.random.default_rng(3), columns=4)
    assert wide.radii.mean() > 1.5 * narrow.radii.mean()


def test_stronger_neighbour_coupling_correlates_the_noise_more() -> None:
    body = sample_subject(np.random.default_rng(2)).body
    weak = body_array(24, body, np.random.default_rng(3), neighbour_correlation=0.1)
    strong = body_array(24, body, np.random.default_rng(3), neighbour_correlation=0.4)
    off = ~np.eye(24, dtype=bool)
    assert strong.noise_covariance[off].mean() > 2 * weak.noise_covariance[off].mean()
    assert np.linalg.eigvalsh(strong.noise_covariance).min() > 0
