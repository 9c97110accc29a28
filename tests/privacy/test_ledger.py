"""A site's privacy ledger: steps per run on disk, the total over runs, and a damaged file."""

import json

import pytest
from opacus.accountants import RDPAccountant

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.ledger import LedgerError, PrivacyLedger
from tests.deadline import deadline

DELTA = 1e-5
GOOD_ENTRY = {"noise-multiplier": [1.0], "sample-rate": [0.05], "steps": [10]}


def _accountant(steps, noise=1.0, rate=0.01):
    accountant = SiteAccountant()
    accountant.step(noise, rate, steps)
    return accountant


def _ledger_with(tmp_path, entry):
    """A ledger file holding run 7 as ``entry`` (written by hand, as a damaged one is)."""
    path = tmp_path / "ledger.json"
    content = {"format": "cardiomm-privacy-ledger", "version": 1, "runs": {"7": entry}}
    path.write_text(json.dumps(content))  # json writes NaN and Infinity as such
    return PrivacyLedger(path)


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


def test_a_run_is_never_recorded_with_fewer_steps_than_it_was_charged(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("7", _accountant(30))
    with pytest.raises(LedgerError, match=r"run 7 would go from 30 to 20 .*never taken back"):
        ledger.record("7", _accountant(20))
    assert ledger.run("7").steps == 30


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
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "ledger.json",
        "ledger.json.journal",
        "ledger.json.lock",
    ]


def test_a_well_formed_entry_written_by_hand_reads(tmp_path):
    assert _ledger_with(tmp_path, GOOD_ENTRY).run("7").steps == 10


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("noise-multiplier", float("nan"), "nan is not a finite number > 0"),
        ("noise-multiplier", float("inf"), "inf is not a finite number > 0"),
        ("noise-multiplier", 0.0, "0.0 is not a finite number > 0"),
        ("noise-multiplier", -1.0, "-1.0 is not a finite number > 0"),
        ("noise-multiplier", "1.0", "'1.0' is not a finite number > 0"),
        ("noise-multiplier", True, "True is not a finite number > 0"),
        ("sample-rate", 0.0, r"0.0 is not a number in \(0, 1\]"),
        ("sample-rate", 1.5, r"1.5 is not a number in \(0, 1\]"),
        ("sample-rate", float("nan"), r"nan is not a number in \(0, 1\]"),
        ("steps", 2.5, "2.5 is not a whole number >= 0"),
        ("steps", 3.0, "3.0 is not a whole number >= 0"),
        ("steps", -1, "-1 is not a whole number >= 0"),
        ("steps", True, "True is not a whole number >= 0"),
        ("steps", None, "None is not a whole number >= 0"),
    ],
)
def test_every_ledger_value_is_checked_and_a_bad_one_named_by_path_run_entry_and_field(
    tmp_path, field, value, problem
):
    ledger = _ledger_with(tmp_path, {**GOOD_ENTRY, field: [value]})
    with deadline(20), pytest.raises(LedgerError) as refused:
        ledger.total_epsilon(DELTA)
    message = str(refused.value)
    assert f"privacy ledger {ledger.path}, run 7: entry 0: {field} " in message
    assert refused.match(problem)
    assert "\n" not in message


def test_a_list_that_is_not_a_list_is_refused(tmp_path):
    ledger = _ledger_with(tmp_path, {**GOOD_ENTRY, "steps": "10"})
    with pytest.raises(LedgerError, match="run 7: steps is a str, not a list"):
        ledger.runs()


def test_an_entry_with_an_unknown_field_is_refused(tmp_path):
    ledger = _ledger_with(tmp_path, {**GOOD_ENTRY, "epsilon": [0.0]})
    with pytest.raises(LedgerError, match="run 7: unknown field\\(s\\) epsilon"):
        ledger.runs()


def test_an_entry_whose_time_is_not_text_is_refused(tmp_path):
    ledger = _ledger_with(tmp_path, {**GOOD_ENTRY, "updated": 17})
    with pytest.raises(LedgerError, match="run 7: updated 17 is not a time"):
        ledger.runs()


def test_a_bad_entry_refuses_a_charge_too_and_nothing_is_written(tmp_path):
    ledger = _ledger_with(tmp_path, {**GOOD_ENTRY, "noise-multiplier": [float("nan")]})
    before = ledger.path.read_bytes()
    with deadline(20), pytest.raises(LedgerError, match="noise-multiplier nan"):
        ledger.record("8", _accountant(3))
    assert ledger.path.read_bytes() == before and not ledger.journal.exists()
