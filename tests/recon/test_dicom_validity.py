"""Every DICOM file ``cardiomm reconstruct`` writes is valid for the MR Image IOD, as
dicom3tools' ``dciodvfy`` checks it, and the series of each study agree on the study and
patient (``dcentvfy``): every modality of the synthetic ``tiny`` set, four centres."""

import shutil
import subprocess
from pathlib import Path

import pytest

# The only warnings dciodvfy may give: the k-space files hold no study date or time.
EXPECTED_WARNINGS = {
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Date",
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Time",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (dicom3tools) is not installed: apt-get install dicom3tools")
    return path


def _written(tiny_outputs: Path) -> list[Path]:
    files = sorted((tiny_outputs / "dicom").rglob("*.dcm"))
    assert len(files) > 100  # 17 series of every modality
    return files


def _messages(command: list[str]) -> list[str]:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return (finished.stdout + finished.stderr).splitlines()


@pytest.fixture(scope="module")
def dciodvfy_report(tiny_outputs) -> dict[Path, list[str]]:
    """What dciodvfy says of each written file."""
    dciodvfy = _tool("dciodvfy")
    return {path: _messages([dciodvfy, str(path)]) for path in _written(tiny_outputs)}


def test_dciodvfy_finds_no_error_in_any_written_file(dciodvfy_report):
    errors = {
        path: [line for line in lines if line.startswith("Error")]
        for path, lines in dciodvfy_report.items()
    }
    assert {path: lines for path, lines in errors.items() if lines} == {}


def test_dciodvfy_warns_only_of_the_unknown_study_date_and_time(dciodvfy_report):
    warnings = {
        line for lines in dciodvfy_report.values() for line in lines if line.startswith("Warning")
    }
    assert warnings <= EXPECTED_WARNINGS


def test_dcentvfy_finds_every_study_and_patient_consistent(tiny_outputs):
    dcentvfy = _tool("dcentvfy")
    lines = _messages([dcentvfy, *map(str, _written(tiny_outputs))])
    assert [line for line in lines if line.startswith("Error")] == []
