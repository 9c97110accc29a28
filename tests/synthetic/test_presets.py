"""Preset definitions: consortium heterogeneity and sizes, checked on the plan (no data made)."""

from __future__ import annotations

import collections

import pytest

from cardiomm.data.synthetic import centre_summaries, get_preset, plan_dataset


@pytest.mark.parametrize("name", ["small", "paper"])
def test_largest_centre_has_at_least_ten_times_the_slices_of_the_smallest(name: str) -> None:
    slices = [centre["slices"] for centre in centre_summaries(name)]
    assert max(slices) >= 10 * min(slices)


@pytest.mark.parametrize("name", ["small", "paper"])
def test_one_vendor_holds_most_of_the_data(name: str) -> None:
    by_vendor: collections.Counter[str] = collections.Counter()
    for centre in centre_summaries(name):
        by_vendor[centre["vendor"]] += centre["slices"]
    assert max(by_vendor.values()) > 0.5 * sum(by_vendor.values())


def test_paper_preset_mirrors_the_cardiomm_consortium() -> None:
    preset = get_preset("paper")
    assert len(preset.sites) == 13
    assert sum(site.held_out for site in preset.sites) == 5
    assert {"Siemens", "UIH", "GE", "Philips"} <= {site.vendor for site in preset.sites}
    assert {0.55, 1.5, 3.0, 5.0} <= {site.field_strength for site in preset.sites}
    assert preset.protocol.coils == 10
    assert len({site.centre for site in preset.sites}) == 13


def test_external_centres_bring_scanners_the_internal_ones_lack() -> None:
    preset = get_preset("paper")
    internal = {(s.vendor, s.field_strength) for s in preset.sites if not s.held_out}
    external = {(s.vendor, s.field_strength) for s in preset.sites if s.held_out}
    assert external - internal


@pytest.mark.parametrize(("name", "limit_mb"), [("tiny", 20), ("small", 400), ("paper", 5000)])
def test_preset_sizes_stay_within_their_budget(name: str, limit_mb: int) -> None:
    total = sum(task.kspace_bytes for task in plan_dataset(name))
    assert total < limit_mb * 1e6


def test_every_preset_covers_every_raw_coil_count_above_the_compressed_one() -> None:
    for name in ("tiny", "small", "paper"):
        preset = get_preset(name)
        assert all(site.raw_coils > preset.protocol.coils for site in preset.sites)


def test_tiny_preset_has_every_modality_folder() -> None:
    folders = {task.spec.folder for task in plan_dataset("tiny")}
    assert folders == {"Cine", "Mapping", "LGE", "T1w", "T2w", "BlackBlood"}


def test_unknown_preset_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
