"""Generated paths follow the CMRxRecon 2025 layout and parse to the right metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomm.data.metadata import metadata_from_path, parse_field_strength, parse_series_stem
from cardiomm.data.synthetic import PRESETS, field_folder_token, plan_dataset, read_sidecar

_VIEWS = {
    "sax": "short-axis",
    "2ch": "two-chamber",
    "3ch": "three-chamber",
    "4ch": "four-chamber",
}


@pytest.mark.parametrize("field", [0.55, 1.5, 3.0, 5.0])
def test_field_folder_token_parses_back_to_the_field(field: float) -> None:
    assert parse_field_strength(field_folder_token(field)) == pytest.approx(field)


def test_generated_paths_parse_to_vendor_field_model_modality_and_view(
    tiny_root: Path, tiny_files: list[dict]
) -> None:
    for entry in tiny_files:
        path = tiny_root / entry["path"]
        sidecar = read_sidecar(path)
        metadata = metadata_from_path(path)
        assert metadata.centre == sidecar["centre"]
        assert metadata.vendor == sidecar["vendor"]
        assert metadata.field_strength == pytest.approx(sidecar["field_strength"])
        assert metadata.scanner_model == sidecar["scanner_model"]
        expected_modality, _ = parse_series_stem(sidecar["stem"])
        assert metadata.modality == expected_modality is not None
        if sidecar["stem"].startswith("cine") or sidecar["stem"].startswith("lge"):
            assert metadata.view == _VIEWS[sidecar["view"]]


def test_every_preset_path_follows_the_2025_layout() -> None:
    for preset in PRESETS.values():
        for task in plan_dataset(preset):
            parts = task.relative_path.parts
            assert parts[0] == "MultiCoil"
            assert parts[2:4] == ("TrainingSet", "FullSample")
            assert parts[4] == task.site.centre
            metadata = metadata_from_path(task.relative_path)
            assert (metadata.vendor, metadata.scanner_model) == (task.site.vendor, task.site.model)
            assert metadata.field_strength == pytest.approx(task.site.field_strength)
            assert metadata.modality is not None
