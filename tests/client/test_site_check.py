"""`cardiomm check-site`: what a site learns about itself before it joins."""

import json

import h5py
import pytest

from cardiomm.cli import main
from cardiomm.privacy.accountant import HistoryEntry, SiteAccountant
from cardiomm.privacy.ledger import PrivacyLedger
from client.site_check import PROBLEM, WARNING, CheckRequest, check_site
from tests.builders import FULL_SAMPLE, write_consortium, write_site_file

TINY = ("model=tiny", "text=none")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("site-data")
    write_consortium(root)
    broken = root / FULL_SAMPLE / "Center001" / "Siemens_30T_Vida" / "P009" / "cine_sax.mat"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a mat file")
    zero = write_site_file(root, "Center001", "Siemens_30T_Vida", "P010", seed=3)
    with h5py.File(zero, "r+") as handle:
        handle["kspace_full"][...] = 0
    return root


def _finding(check, item):
    return next(finding for finding in check.findings if finding.item.split(" (")[0] == item)


def _check(root, **options):
    options.setdefault("timing_steps", 0)
    return check_site(CheckRequest(data_path=root, overrides=TINY, **options), show_progress=False)


def test_a_healthy_site_can_take_part_and_is_summarised(root):
    check = _check(root, site_id="Center002")
    assert check.can_take_part
    assert _finding(check, "files readable").value == "2"
    assert _finding(check, "images per view").value == "short-axis: 12"
    assert _finding(check, "metadata missing").value == "none"
    assert _finding(check, "coil counts").value == "4: 2"
    assert _finding(check, "matrix sizes").value == "24 x 32: 2"
    assert check.details["vendor"] == "UIH"


def test_unreadable_and_all_zero_files_are_listed_with_their_stage_and_reason(root):
    check = _check(root, site_id="Center001")
    stages = {bad["stage"]: bad["reason"] for bad in check.details["skipped"]}
    assert set(stages) == {"index", "read"}
    assert "all-zero k-space" in stages["read"]
    assert _finding(check, "files skipped").status == WARNING
    assert _finding(check, "files found").value == "7"


def test_missing_metadata_is_a_warning_naming_the_field(tmp_path):
    write_site_file(tmp_path, "Center004", "Scanner", "P001", stem="scan")
    check = _check(tmp_path, site_id="Center004")
    assert _finding(check, "metadata missing").status == WARNING
    assert "vendor in 1 file(s)" in _finding(check, "metadata missing").value
    assert check.details["metadata-missing"]["view"] == 1


def test_an_unknown_site_id_is_a_problem_naming_the_centres_found(root):
    check = _check(root, site_id="Center009")
    assert not check.can_take_part
    assert "Center001, Center002, Center003" in _finding(check, "site").value


def test_several_centres_without_a_site_id_is_a_problem(root):
    check = _check(root)
    assert _finding(check, "site").status == PROBLEM
    assert "--site-id" in _finding(check, "site").value


def test_a_missing_data_path_is_a_problem(tmp_path):
    check = _check(tmp_path / "absent", site_id="Center001")
    assert _finding(check, "data path").status == PROBLEM


def test_a_site_with_one_patient_can_train_and_evaluate(tmp_path):
    write_site_file(tmp_path, "Center004", "GE_15T_Signa", "P001")
    assert _check(tmp_path, site_id="Center004").can_take_part  # its patient trains
    assert _check(tmp_path, site_id="Center004", role="evaluate").can_take_part


def test_a_site_file_setting_a_coordinator_key_is_a_problem(root, tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text("model: {num_cascades: 3}\n")
    check = _check(root, site_id="Center002", site_config=site_file)
    assert _finding(check, "site config").status == PROBLEM
    assert "not the site's to set" in _finding(check, "site config").value


def test_a_device_the_machine_lacks_is_a_problem(root, tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text('train: {device: "cuda:3"}\n')
    check = _check(root, site_id="Center002", site_config=site_file)
    assert _finding(check, "train.device").status == PROBLEM


def test_an_unknown_role_is_a_problem():
    check = check_site(CheckRequest(role="observe"), show_progress=False)
    assert _finding(check, "role").status == PROBLEM


def test_a_training_step_and_an_evaluated_image_are_timed(root):
    training = _check(root, site_id="Center002", timing_steps=2)
    evaluating = _check(root, site_id="Center002", timing_steps=2, role="evaluate")
    assert training.details["seconds-per-unit"] > 0
    assert evaluating.details["seconds-per-unit"] > 0
    assert _finding(evaluating, "seconds per evaluated image").status == "ok"


def test_the_command_writes_json_and_exits_non_zero_when_the_site_cannot_take_part(root, tmp_path):
    report = tmp_path / "check.json"
    good = main(["check-site", "--data-path", str(root), "--site-id", "Center002",
                 "--json", str(report), "--timing-steps", "0", *TINY])  # fmt: skip
    assert good == 0 and json.loads(report.read_text())["can-take-part"] is True
    bad = main(["check-site", "--data-path", str(root), "--site-id", "Center009",
                "--json", str(report), "--timing-steps", "0", *TINY])  # fmt: skip
    assert bad == 1 and json.loads(report.read_text())["can-take-part"] is False


def _site_with_policy(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_epsilon_total: 10.0\nledger: ledger.json\n")
    site_file = tmp_path / "site.yaml"
    site_file.write_text(f"privacy: {{policy: {policy}}}\n")
    return site_file, PrivacyLedger(tmp_path / "ledger.json")


def test_the_privacy_ledger_is_checked_and_its_spent_epsilon_shown(root, tmp_path):
    site_file, ledger = _site_with_policy(tmp_path)
    spent = SiteAccountant()
    spent.step(1.0, 0.05, 40)
    ledger.record("earlier-run", spent)
    check = _check(root, site_id="Center002", site_config=site_file)
    assert _finding(check, "privacy ledger").status == "ok"
    assert _finding(check, "privacy ledger").value.startswith(
        f"epsilon {spent.epsilon(1e-5):.4g} spent of 10"
    )


def test_a_deleted_privacy_ledger_is_a_problem(root, tmp_path):
    site_file, ledger = _site_with_policy(tmp_path)
    ledger.record("earlier-run", SiteAccountant([HistoryEntry(1.0, 0.05, 40)]))
    ledger.path.unlink()
    check = _check(root, site_id="Center002", site_config=site_file)
    assert not check.can_take_part
    assert "is missing but its journal" in _finding(check, "privacy ledger").value


def test_a_data_root_that_is_a_symlink_loop_is_a_problem_naming_it(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    check = _check(loop, site_id="Center001")
    assert _finding(check, "data path").value == f"{loop}: data root is a symlink loop"
    assert _finding(check, "data path").status == PROBLEM


def _site_with_an_unreadable_patient(tmp_path, deny_access):
    for patient in ("P001", "P002"):
        write_site_file(tmp_path, "Center004", "GE_15T_Signa", patient)
    deny_access(tmp_path / FULL_SAMPLE / "Center004" / "GE_15T_Signa" / "P002")


def test_an_unreadable_patient_folder_is_listed_and_the_site_cannot_take_part(
    tmp_path, deny_access
):
    _site_with_an_unreadable_patient(tmp_path, deny_access)
    check = _check(tmp_path, site_id="Center004")
    assert not check.can_take_part
    assert _finding(check, "unreadable path").value == (
        f"{FULL_SAMPLE}/Center004/GE_15T_Signa/P002: folder cannot be listed: permission denied"
    )
    assert _finding(check, "paths unreadable").value == "1"


def test_another_centres_unreadable_path_is_not_the_sites(tmp_path):
    write_site_file(tmp_path, "Center004", "GE_15T_Signa", "P001")
    write_site_file(tmp_path, "Center005", "GE_15T_Signa", "P001")
    loop = tmp_path / FULL_SAMPLE / "Center005" / "GE_15T_Signa" / "P002"
    loop.symlink_to(loop)
    check = _check(tmp_path, site_id="Center004")
    assert check.can_take_part
    assert _finding(check, "paths unreadable").value == "0"


def test_the_command_exits_1_and_counts_the_unreadable_paths(tmp_path, deny_access, capsys):
    _site_with_an_unreadable_patient(tmp_path, deny_access)
    code = main(["check-site", "--data-path", str(tmp_path), "--site-id", "Center004",
                 "--json", str(tmp_path / "check.json"), "--timing-steps", "0", *TINY])  # fmt: skip
    assert code == 1
    assert "1 path(s) under the data could not be used" in capsys.readouterr().out
