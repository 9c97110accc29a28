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


@pytest.mark.parametrize(
    ("name", "limit_mb"),
    [
        ("tiny", 20),
        ("small", 400),
        ("study", 14_000),
        ("study-standard", 24_000),
        ("public", 6_000),
        ("vendor-skew", 12_000),
        ("paper", 20_000),
    ],
)
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


@pytest.mark.parametrize(("name", "finest_mm"), [("study", 2.5), ("study-standard", 2.0)])
def test_study_presets_are_at_clinical_resolution(name: str, finest_mm: float) -> None:
    preset = get_preset(name)
    for site in preset.sites:
        assert max(site.pixel_spacing_mm) <= finest_mm + 1e-9, site.centre
        assert 280 <= site.fov_mm[0] <= 340 and 340 <= site.fov_mm[1] <= 400
    assert preset.protocol.coils == 10
    assert preset.protocol.cine_frames >= 12


def test_paper_preset_is_at_clinical_resolution() -> None:
    assert all(max(site.pixel_spacing_mm) <= 2.0 + 1e-9 for site in get_preset("paper").sites)


@pytest.mark.parametrize("name", ["study", "study-standard"])
def test_study_presets_have_eight_patients_per_internal_and_four_per_held_out_centre(
    name: str,
) -> None:
    for site in get_preset(name).sites:
        assert site.patients >= (4 if site.held_out else 8), site.centre


def test_study_presets_hold_the_same_patients_at_two_resolutions() -> None:
    quick, standard = get_preset("study"), get_preset("study-standard")
    assert [(s.centre, s.patients) for s in quick.sites] == [
        (s.centre, s.patients) for s in standard.sites
    ]


def test_public_preset_shares_no_centre_and_no_held_out_scanner_with_the_study() -> None:
    study, public = get_preset("study"), get_preset("public")
    assert not {s.number for s in public.sites} & {s.number for s in study.sites}
    held_out = {(s.vendor, s.field_strength) for s in study.sites if s.held_out}
    assert not {(s.vendor, s.field_strength) for s in public.sites} & held_out
