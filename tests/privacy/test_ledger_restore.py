"""``PrivacyLedger.restore`` and ``cardiomm ledger restore``: a deleted ledger is rebuilt
from its journal with every charge, never over an existing ledger, never from a journal that
fails the checks every read makes."""

import json

import pytest

from cardiomm.cli import main
from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.ledger import LedgerError, PrivacyLedger


def _accountant(steps, noise=1.0, rate=0.01):
    accountant = SiteAccountant()
    accountant.step(noise, rate, steps)
    return accountant


@pytest.fixture
def ledger(tmp_path):
    """A ledger charged three times (run 1: 10 then 20 steps; run 2: 5 steps)."""
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("1", _accountant(10))
    ledger.record("1", _accountant(20))
    ledger.record("2", _accountant(5))
    return ledger


def _steps(runs):
    return {run: accountant.steps for run, accountant in runs.items()}


def test_a_deleted_ledger_is_restored_with_every_charge_of_its_journal(ledger):
    ledger.path.unlink()
    assert _steps(ledger.restore()) == {"1": 20, "2": 5}
    assert _steps(ledger.runs()) == {"1": 20, "2": 5}


def test_a_restored_ledger_takes_the_next_charge(ledger):
    ledger.path.unlink()
    ledger.restore()
    ledger.record("2", _accountant(7))
    assert _steps(ledger.runs()) == {"1": 20, "2": 7}


def test_a_restore_leaves_the_journal_as_it_was(ledger):
    before = ledger.journal.read_bytes()
    ledger.path.unlink()
    ledger.restore()
    assert ledger.journal.read_bytes() == before


def test_a_restore_never_overwrites_an_existing_ledger(ledger):
    before = ledger.path.read_bytes()
    with pytest.raises(LedgerError, match="exists: a restore never overwrites a ledger"):
        ledger.restore()
    assert ledger.path.read_bytes() == before


def test_a_restore_without_a_journal_is_refused(tmp_path):
    with pytest.raises(LedgerError, match="does not exist: nothing to restore"):
        PrivacyLedger(tmp_path / "ledger.json").restore()


def test_a_journal_that_takes_a_charge_back_restores_nothing(ledger):
    ledger.path.unlink()
    with open(ledger.journal, "a") as handle:
        handle.write(json.dumps({"run": "1", **_accountant(3).to_lists()}) + "\n")
    with pytest.raises(LedgerError, match="line 4: run 1 goes from 20 to 3 DP-SGD steps"):
        ledger.restore()
    assert not ledger.path.exists()


def test_a_journal_value_that_fails_the_checks_restores_nothing(ledger):
    ledger.path.unlink()
    lines = ledger.journal.read_text().splitlines()
    lines[1] = lines[1].replace('"noise-multiplier": [1.0]', '"noise-multiplier": [NaN]')
    ledger.journal.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match="line 2"):
        ledger.restore()
    assert not ledger.path.exists()


def _policy(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_epsilon_total: 10.0\nledger: ledger.json\n")
    return policy


def test_the_command_restores_the_ledger_of_a_policy_and_shows_the_spent_epsilon(
    ledger, tmp_path, capsys
):
    ledger.path.unlink()
    assert main(["ledger", "restore", "--policy", str(_policy(tmp_path))]) == 0
    spent = ledger.total_epsilon(1e-5)
    assert f"2 run(s), 25 DP-SGD steps; epsilon {spent:.4g} spent" in capsys.readouterr().out


def test_the_command_refusing_a_restore_is_one_line_and_exit_2(ledger, capsys):
    assert main(["ledger", "restore", "--ledger", str(ledger.path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cardiomm ledger restore: error: privacy ledger {ledger.path} exists")
