"""Scan metadata from the CMRxRecon 2025 layout, and CardioMM's metadata text."""

import pytest

from cardiomm.data.metadata import (
    ScanMetadata,
    format_field_strength,
    is_mapping_series,
    metadata_from_path,
    parse_field_strength,
    parse_scanner_folder,
    series_stem,
)

CINE_PATH = (
    "/data/MultiCoil/Cine/TrainingSet/FullSample/Center001/Siemens_30T_Vida/P007/cine_sax.mat"
)


def test_metadata_is_read_from_the_2025_folder_names():
    metadata = metadata_from_path(CINE_PATH)
    assert metadata == ScanMetadata(
        centre="Center001",
        vendor="Siemens",
        field_strength=3.0,
        scanner_model="Vida",
        modality="cine",
        view="short-axis",
        lifespan="Adult",
    )


def test_metadata_text_matches_the_cardiomm_prompt():
    assert metadata_from_path(CINE_PATH).to_text() == (
        "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis."
    )


def test_unknown_fields_render_as_unknown():
    assert ScanMetadata(modality="cine").to_text() == (
        "Unknown cardiac MRI reconstruction. Vendor: unknown, unknown, unknown. "
        "Modality: cine, unknown."
    )


def test_the_centre_never_appears_in_the_text():
    assert "Center001" not in metadata_from_path(CINE_PATH).to_text()


@pytest.mark.parametrize(
    ("token", "tesla"),
    [("30", 3.0), ("15", 1.5), ("055", 0.55), ("50", 5.0), ("7", 7.0), ("1.5", 1.5)],
)
def test_field_strength_tokens_drop_the_decimal_point(token, tesla):
    assert parse_field_strength(token) == pytest.approx(tesla)


@pytest.mark.parametrize(
    ("tesla", "text"), [(3.0, "3.0T"), (1.5, "1.5T"), (0.55, "0.55T"), (None, "unknown")]
)
def test_field_strength_is_written_as_in_the_prompt(tesla, text):
    assert format_field_strength(tesla) == text


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("UIH_15T_umr670", ("UIH", 1.5, "umr670")),
        ("Siemens_30T_CIMA.X", ("Siemens", 3.0, "CIMA.X")),
        ("GE_15T_SIGNA_Artist", ("GE", 1.5, "SIGNA_Artist")),
        ("P007", (None, None, None)),
    ],
)
def test_scanner_folders_parse_into_vendor_field_and_model(folder, expected):
    assert parse_scanner_folder(folder) == expected


@pytest.mark.parametrize(
    ("name", "modality", "view"),
    [
        ("lge_lax_3ch.mat", "LGE", "three-chamber"),
        ("T1map.mat", "T1 mapping", "short-axis"),
        ("cine_lax_3ch_kus_Uniform8.mat", "cine", "three-chamber"),
        ("cine_sax_mask_ktRadial24.mat", "cine", "short-axis"),
    ],
)
def test_file_stems_give_modality_and_view(name, modality, view):
    path = f"/d/MultiCoil/X/TrainingSet/FullSample/Center002/UIH_30T_umr780/P001/{name}"
    metadata = metadata_from_path(path)
    assert (metadata.modality, metadata.view) == (modality, view)


def test_an_unknown_stem_falls_back_to_the_modality_folder():
    path = "/d/MultiCoil/Perfusion/TrainingSet/FullSample/Center002/UIH_30T_umr780/P1/perf_new.mat"
    assert metadata_from_path(path).modality == "perfusion"


def test_a_path_outside_the_layout_gives_unknowns_not_an_error():
    metadata = metadata_from_path("/tmp/scan.mat")
    assert metadata.vendor is None
    assert "unknown" in metadata.to_text()


def test_series_stem_strips_undersampling_and_mask_suffixes():
    assert series_stem("cine_lax_3ch_kus_Uniform8.mat") == "cine_lax_3ch"
    assert series_stem("T1map_mask_ktGaussian16.mat") == "T1map"


def test_mapping_series_are_recognised():
    assert is_mapping_series("T1map")
    assert not is_mapping_series("cine_sax")


def test_metadata_survives_a_dict_round_trip():
    metadata = metadata_from_path(CINE_PATH)
    assert ScanMetadata.from_dict(metadata.to_dict()) == metadata


def test_reduced_metadata_hides_the_scanner_but_keeps_the_modality():
    reduced = metadata_from_path(CINE_PATH).without_scanner()
    assert "Siemens" not in reduced.to_text()
    assert "cine" in reduced.to_text()
