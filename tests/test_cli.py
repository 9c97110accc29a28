import subprocess
import sys
from importlib.metadata import entry_points

from cardiomm.cli import main


def test_cardiomm_is_installed_as_a_console_script():
    scripts = entry_points(group="console_scripts", name="cardiomm")
    assert [script.value for script in scripts] == ["cardiomm.cli:main"]


def test_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "cardiomm.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "info" in result.stdout
    assert "mask" in result.stdout


def test_mask_command_reports_the_true_acceleration_and_writes_a_picture(tmp_path, capsys):
    picture = tmp_path / "mask.png"
    code = main(["mask", "--pattern", "ktRadial", "--acceleration", "24", "--png", str(picture)])
    assert code == 0
    assert "true acceleration" in capsys.readouterr().out
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_mask_command_names_the_problem_with_a_bad_pattern(capsys):
    assert main(["mask", "--pattern", "spiral"]) == 2
    assert "unknown mask pattern 'spiral'" in capsys.readouterr().err


def test_info_command_lists_torch_and_flower(capsys):
    assert main(["info"]) == 0
    output = capsys.readouterr().out
    assert "torch" in output
    assert "flwr" in output


def test_make_synthetic_says_the_size_and_refuses_a_too_small_disk(tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**6))
    code = main(["make-synthetic", "--preset", "paper", "--output", str(tmp_path / "paper")])
    captured = capsys.readouterr()
    assert code == 2
    assert "about 19,470 MB" in captured.out
    assert "needs about 19.47 GB" in captured.err and "only 0.00 GB is free" in captured.err
    assert not (tmp_path / "paper").exists()
