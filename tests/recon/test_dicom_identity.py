"""Who and what a DICOM series names: the patient ID and UIDs change exactly when the patient,
the acquisition, the model or the mask changes (read back with pydicom)."""

import shutil
from collections import defaultdict
from pathlib import Path

import pydicom

from cardiomm.cli import main
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.recon.dicom import read_dicom_series
from cardiomm.recon.identity import series_number
from cardiomm.text import build_text_encoder

CINE = "MultiCoil/Cine/TrainingSet/FullSample"
MAPPING = "MultiCoil/Mapping/TrainingSet/FullSample"


def _instances(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in folder.rglob("*.dcm")]


def _reconstruct(inputs: list[Path], output: Path, *method: str, mask: str = "Uniform4") -> None:
    code = main([
        "reconstruct", *method, "--input", *map(str, inputs), "--output", str(output),
        "--mask", mask, "--format", "dicom", "--no-preview", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0


def _uids(instances: list[pydicom.Dataset]) -> dict[str, set[str]]:
    keys = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
    return {key: {str(getattr(item, key)) for item in instances} for key in keys}


def _checkpoint(path: Path, seed: int) -> Path:
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(), encoder, seed=seed)
    return save_checkpoint(path, network, {"name": "none"}, encoder.dim)


def test_two_patients_reconstructed_one_file_at_a_time_share_no_identity(tiny_data, tmp_path):
    first, second = (
        tiny_data / CINE / "Center001/UIH_30T_umr780" / patient / "cine_sax.mat"
        for patient in ("P001", "P002")
    )
    _reconstruct([first], tmp_path / "first", "--method", "zero-filled")
    _reconstruct([second], tmp_path / "second", "--method", "zero-filled")
    one, two = (_instances(tmp_path / name) for name in ("first", "second"))
    assert {item.PatientID for item in one} == {"Center001-UIH_30T_umr780-P001"}
    assert {item.PatientID for item in two} == {"Center001-UIH_30T_umr780-P002"}
    for key, values in _uids(one).items():
        assert values.isdisjoint(_uids(two)[key]), key
    assert {item.SOPInstanceUID for item in one}.isdisjoint(item.SOPInstanceUID for item in two)


def test_two_checkpoints_on_one_file_write_two_series_of_one_study(tiny_data, tmp_path):
    path = tiny_data / CINE / "Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
    for seed in (0, 1):
        checkpoint = _checkpoint(tmp_path / f"model{seed}.pt", seed)
        _reconstruct([path], tmp_path / f"out{seed}", "--checkpoint", str(checkpoint))
    first, second = (_instances(tmp_path / f"out{seed}") for seed in (0, 1))
    assert _uids(first)["StudyInstanceUID"] == _uids(second)["StudyInstanceUID"]
    assert _uids(first)["FrameOfReferenceUID"] == _uids(second)["FrameOfReferenceUID"]
    assert _uids(first)["SeriesInstanceUID"].isdisjoint(_uids(second)["SeriesInstanceUID"])
    assert {item.SOPInstanceUID for item in first}.isdisjoint(
        item.SOPInstanceUID for item in second
    )


def test_two_masks_on_one_file_write_two_series(tiny_data, tmp_path):
    path = tiny_data / CINE / "Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
    _reconstruct([path], tmp_path / "r4", "--method", "zero-filled", mask="Uniform4")
    _reconstruct([path], tmp_path / "r8", "--method", "zero-filled", mask="Uniform8")
    four, eight = (_uids(_instances(tmp_path / name)) for name in ("r4", "r8"))
    assert four["SeriesInstanceUID"].isdisjoint(eight["SeriesInstanceUID"])
    assert four["StudyInstanceUID"] == eight["StudyInstanceUID"]


def test_one_patient_folder_name_at_four_centres_is_four_patients(tiny_outputs):
    centres_of_patient = defaultdict(set)
    for item in _instances(tiny_outputs / "dicom" / CINE):
        centres_of_patient[item.PatientID].add(item.StudyInstanceUID)
    p001 = [patient for patient in centres_of_patient if patient.endswith("-P001")]
    assert sorted(patient.split("-")[0] for patient in p001) == [
        "Center001", "Center002", "Center003", "Center004",
    ]  # fmt: skip
    studies = [study for patient in p001 for study in centres_of_patient[patient]]
    assert len(studies) == len(set(studies)) == 4


def test_a_patients_cine_and_mapping_series_are_one_study(tiny_outputs):
    patient = "Center001/UIH_30T_umr780/P001"
    folders = [
        tiny_outputs / "dicom" / CINE / patient / "cine_sax_kus_Uniform4",
        tiny_outputs / "dicom" / CINE / patient / "cine_lax_4ch_kus_Uniform4",
        tiny_outputs / "dicom" / MAPPING / patient / "T1map_kus_Uniform4",
        tiny_outputs / "dicom" / MAPPING / patient / "T2map_kus_Uniform4",
    ]
    series = [read_dicom_series(folder)[1] for folder in folders]
    assert len({item.StudyInstanceUID for instances in series for item in instances}) == 1
    assert len({instances[0].SeriesInstanceUID for instances in series}) == 4
    assert {item.PatientID for instances in series for item in instances} == {
        "Center001-UIH_30T_umr780-P001"
    }


def test_every_series_of_a_patients_study_has_its_own_series_number(tiny_outputs):
    numbers = defaultdict(set)
    series_of_study = defaultdict(set)
    for item in _instances(tiny_outputs / "dicom"):
        numbers[item.StudyInstanceUID, item.SeriesInstanceUID].add(int(item.SeriesNumber))
        series_of_study[item.StudyInstanceUID].add(item.SeriesInstanceUID)
    assert all(len(values) == 1 for values in numbers.values())  # one number per series
    for study, series in series_of_study.items():
        assert len({next(iter(numbers[study, uid])) for uid in series}) == len(series), study


def test_a_series_number_lies_in_the_block_of_its_kind(tiny_outputs):
    patient = tiny_outputs / "dicom" / CINE / "Center001/UIH_30T_umr780/P001"
    mapping = tiny_outputs / "dicom" / MAPPING / "Center001/UIH_30T_umr780/P001"
    assert (
        1000 < int(read_dicom_series(patient / "cine_sax_kus_Uniform4")[1][0].SeriesNumber) < 2000
    )
    assert 15000 < int(read_dicom_series(mapping / "T1map_kus_Uniform4")[1][0].SeriesNumber) < 16000


def test_a_series_number_is_the_same_when_its_file_is_reconstructed_alone(
    tiny_data, tiny_outputs, tmp_path
):
    relative = "Center002/Siemens_15T_Avanto/P001"
    _reconstruct([tiny_data / CINE / relative / "cine_sax.mat"], tmp_path / "alone",
                 "--method", "zero-filled")  # fmt: skip
    alone = read_dicom_series(tmp_path / "alone" / "dicom" / "cine_sax_kus_Uniform4")[1][0]
    together = read_dicom_series(tiny_outputs / "dicom" / CINE / relative / "cine_sax_kus_Uniform4")
    assert int(alone.SeriesNumber) == int(together[1][0].SeriesNumber)


def test_two_masks_on_one_file_get_two_series_numbers(tiny_data, tmp_path):
    path = tiny_data / CINE / "Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
    _reconstruct([path], tmp_path / "r4", "--method", "zero-filled", mask="Uniform4")
    _reconstruct([path], tmp_path / "r8", "--method", "zero-filled", mask="Uniform8")
    four, eight = (_instances(tmp_path / name)[0].SeriesNumber for name in ("r4", "r8"))
    assert four != eight


def test_a_series_number_taken_in_the_study_moves_to_the_next_free_slot():
    first = series_number("cine_sax", "series key")
    moved = series_number("cine_sax", "series key", taken={first})
    assert moved != first and 1000 < moved < 2000


def test_a_file_outside_the_layout_is_a_patient_named_by_its_content(tiny_data, tmp_path):
    source = tiny_data / CINE / "Center002/Siemens_15T_Avanto/P001/cine_sax.mat"
    other = tiny_data / CINE / "Center003/Siemens_055T_FreeMax/P001/cine_sax.mat"
    for name, path in (("a", source), ("b", source), ("c", other)):
        (tmp_path / name).mkdir()
        shutil.copy(path, tmp_path / name / "scan.mat")
        shutil.copy(path.with_suffix(".json"), tmp_path / name / "scan.json")
        _reconstruct([tmp_path / name / "scan.mat"], tmp_path / f"out-{name}", "--method", "sense")
    a, b, c = (_uids(_instances(tmp_path / f"out-{name}")) for name in "abc")
    (patient,) = a["PatientID"]
    assert patient.startswith("anonymous-")
    assert a == b  # the same bytes elsewhere: the same patient, acquisition and series
    for key in a:
        assert a[key].isdisjoint(c[key]), key
