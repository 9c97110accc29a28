"""The ledger's journal: every charge appended beside the ledger, so a deleted, restored or
edited ledger is caught instead of handing the site a fresh budget; and a deleted ledger is
rebuilt from it (``PrivacyLedger.restore``, ``cardiomm ledger restore``) with every charge,
never over an existing ledger, never from a journal that fails the checks every read makes."""

import json
import logging

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
    """A ledger charged three times: run 1 (10 then 20 steps), run 2 (5 steps)."""
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    ledger.record("1", _accountant(10))
    ledger.record("1", _accountant(20))
    ledger.record("2", _accountant(5))
    return ledger


def _journal_runs(ledger):
    return [json.loads(line)["run"] for line in ledger.journal.read_text().splitlines()]


def test_every_charge_is_one_line_of_the_journal_beside_the_ledger(ledger):
    assert ledger.journal == ledger.path.with_name("ledger.json.journal")
    assert _journal_runs(ledger) == ["1", "1", "2"]
    last = json.loads(ledger.journal.read_text().splitlines()[-1])
    assert (last["steps"], last["noise-multiplier"]) == ([5], [1.0])


def test_a_deleted_ledger_is_refused_not_a_fresh_budget(ledger):
    ledger.path.unlink()
    with pytest.raises(LedgerError) as refused:
        ledger.total_epsilon(1e-5)
    assert refused.match(f"privacy ledger {ledger.path} is missing but its journal")
    assert refused.match("records 3 charge\\(s\\) of 2 run\\(s\\)")


def test_a_deleted_ledger_refuses_a_charge_and_is_not_recreated(ledger):
    ledger.path.unlink()
    with pytest.raises(LedgerError, match="is missing"):
        ledger.record("3", _accountant(1))
    assert not ledger.path.exists() and _journal_runs(ledger) == ["1", "1", "2"]


def test_deleting_both_files_is_a_reset_that_the_first_charge_logs(ledger, caplog):
    ledger.path.unlink()
    ledger.journal.unlink()
    assert ledger.runs() == {}  # nothing records a charge: no code can tell a reset apart
    with caplog.at_level(logging.WARNING, logger="cardiomm.privacy.ledger"):
        ledger.record("3", _accountant(1))
    assert "do not exist" in caplog.text and "reset by its operator" in caplog.text
    assert list(ledger.runs()) == ["3"]


def test_a_ledger_restored_from_an_older_copy_disagrees_with_the_journal(ledger, tmp_path):
    fresh = PrivacyLedger(tmp_path / "older" / "ledger.json")
    fresh.record("1", _accountant(10))  # the ledger as it was two charges ago
    ledger.path.write_bytes(fresh.path.read_bytes())
    with pytest.raises(LedgerError) as refused:
        ledger.runs()
    assert refused.match(f"privacy ledger {ledger.path} disagrees with its journal")
    assert refused.match("run 1 has 10 DP-SGD steps in the ledger, 20 DP-SGD steps in the journal")


def test_a_ledger_edited_to_fewer_steps_disagrees_with_the_journal(ledger):
    content = json.loads(ledger.path.read_text())
    content["runs"]["2"]["steps"] = [1]
    ledger.path.write_text(json.dumps(content))
    with pytest.raises(LedgerError, match="run 2 has 1 DP-SGD steps in the ledger, 5"):
        ledger.record("3", _accountant(1))


def test_a_ledger_with_a_run_removed_disagrees_with_the_journal(ledger):
    content = json.loads(ledger.path.read_text())
    del content["runs"]["1"]
    ledger.path.write_text(json.dumps(content))
    with pytest.raises(LedgerError, match="run 1 has no entry in the ledger, 20 DP-SGD steps"):
        ledger.runs()


def test_a_ledger_one_charge_behind_after_a_crash_reads_as_the_journal_says(ledger, tmp_path):
    # A crash after the journal's line was synced and before the ledger was replaced.
    before = PrivacyLedger(tmp_path / "before" / "ledger.json")
    before.record("1", _accountant(10))
    before.record("1", _accountant(20))
    ledger.path.write_bytes(before.path.read_bytes())
    assert ledger.run("2").steps == 5
    ledger.record("3", _accountant(1))  # the next charge repairs the ledger
    on_disk = json.loads(ledger.path.read_text())["runs"]
    assert sorted(on_disk) == ["1", "2", "3"] and on_disk["2"]["steps"] == [5]


def test_a_journal_line_cut_short_by_a_crash_is_left_out_and_cut_off(ledger):
    with open(ledger.journal, "a") as handle:
        handle.write('{"run": "2", "noise-multi')
    assert ledger.run("2").steps == 5
    ledger.record("2", _accountant(8))
    assert _journal_runs(ledger) == ["1", "1", "2", "2"]
    assert ledger.run("2").steps == 8


def test_an_unreadable_journal_line_is_refused_naming_it(ledger):
    lines = ledger.journal.read_text().splitlines()
    lines[1] = "not json"
    ledger.journal.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match=f"privacy journal {ledger.journal}, line 2 cannot"):
        ledger.runs()


def test_a_journal_value_is_checked_like_the_ledgers(ledger):
    lines = ledger.journal.read_text().splitlines()
    charge = json.loads(lines[0])
    charge["sample-rate"] = [float("nan")]
    lines[0] = json.dumps(charge)
    ledger.journal.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match="line 1, run 1: entry 0: sample-rate nan"):
        ledger.runs()


def test_an_emptied_journal_beside_a_ledger_with_runs_is_refused(ledger):
    ledger.journal.write_text("")
    with pytest.raises(LedgerError, match=r"records 2 run\(s\) but its journal .* is empty"):
        ledger.runs()


def test_a_ledger_without_a_journal_starts_one_from_its_runs(ledger):
    # A ledger from before journals (or a deleted journal): the ledger still holds it all.
    ledger.journal.unlink()
    assert ledger.run("1").steps == 20
    ledger.record("3", _accountant(1))
    assert _journal_runs(ledger) == ["1", "2", "3"]
    ledger.path.unlink()
    with pytest.raises(LedgerError, match="is missing"):
        ledger.runs()


def test_a_crash_after_the_first_journal_line_leaves_a_ledger_one_charge_behind(
    tmp_path, monkeypatch
):
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    write = PrivacyLedger._write

    def crash_after_the_journal(self, runs):
        if runs:  # the write that follows the journal's line
            raise LedgerError("the power went out")
        write(self, runs)

    monkeypatch.setattr(PrivacyLedger, "_write", crash_after_the_journal)
    with pytest.raises(LedgerError, match="the power went out"):
        ledger.record("1", _accountant(10))
    monkeypatch.undo()
    assert ledger.run("1").steps == 10  # charged, as the journal says: not a missing ledger


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
