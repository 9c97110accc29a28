"""A site's privacy ledger: steps per run on disk, the total over runs, and a damaged file."""

import json

import pytest
from opacus.accountants import RDPAccountant

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.ledger import LedgerError, PrivacyLedger

DELTA = 1e-5


def _accountant(steps, noise=1.0, rate=0.01):
    accountant = SiteAccountant()
    accountant.step(noise, rate, steps)
    return accountant


def test_a_recorded_run_reads_back_with_its_steps(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("7", _accountant(30))
    assert ledger.run("7").history == _accountant(30).history
    assert ledger.run("8") is None


def test_recording_a_run_again_replaces_its_entry(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("7", _accountant(30))
    ledger.record("7", _accountant(45))
    assert ledger.run("7").steps == 45


def test_the_total_is_opacus_epsilon_over_every_runs_steps(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("1", _accountant(30))
    ledger.record("2", _accountant(20, noise=1.5, rate=0.02))
    reference = RDPAccountant()
    reference.history = [(1.0, 0.01, 30), (1.5, 0.02, 20)]
    assert ledger.total_epsilon(DELTA) == pytest.approx(reference.get_epsilon(delta=DELTA))


def test_the_other_runs_leave_out_the_current_one(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("1", _accountant(30))
    ledger.record("2", _accountant(20))
    assert [entry.steps for entry in ledger.others("2")] == [30]


def test_a_damaged_ledger_is_an_error_not_a_fresh_budget(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text('{"format": "cardiomm-privacy-ledger", "version": 1, "runs": {"1": ')
    with pytest.raises(LedgerError, match="cannot be read"):
        PrivacyLedger(path).total_epsilon(DELTA)


def test_a_file_of_another_kind_is_not_taken_for_a_ledger(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps({"runs": {}}))
    with pytest.raises(LedgerError, match="not a version-1 CardioMM-FL ledger"):
        PrivacyLedger(path).runs()


def test_a_write_leaves_no_partial_file_beside_the_ledger(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("1", _accountant(3))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ledger.json", "ledger.json.lock"]
