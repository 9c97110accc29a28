"""Charging a site's budget: read, check and write are one step under the ledger's lock, so
two runs at once never spend more than the total cap between them."""

import multiprocessing

import pytest

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.errors import PrivacyBudgetSpentError
from cardiomm.privacy.ledger import LedgerError, PrivacyLedger
from cardiomm.privacy.policy import read_policy
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.privacy.site_budget import SiteBudget

DELTA, NOISE, RATE = 1e-5, 1.0, 0.05
SETTINGS = DPSGDSettings(enabled=True, noise_multiplier=NOISE, delta=DELTA)
# The total cap lies halfway between the epsilon of AFFORDABLE steps and one more, so
# rounding in how the steps are split between runs cannot move the count.
AFFORDABLE = 12


def _epsilon(steps):
    accountant = SiteAccountant()
    accountant.step(NOISE, RATE, steps)
    return accountant.epsilon(DELTA)


TOTAL_CAP = (_epsilon(AFFORDABLE) + _epsilon(AFFORDABLE + 1)) / 2


def _budget(folder, run_id, total=TOTAL_CAP):
    policy = folder / "policy.yaml"
    policy.write_text(f"max_epsilon_total: {total!r}\ndelta: {DELTA}\nledger: ledger.json\n")
    return SiteBudget(read_policy(policy), PrivacyLedger(folder / "ledger.json"), run_id)


def _charge_until_spent(folder, run_id, start, granted):
    """One site process: charge one step at a time until the total is spent."""
    budget, accountant = _budget(folder, run_id), SiteAccountant()
    start.wait()
    while True:
        try:
            steps = budget.charge(accountant, SETTINGS, RATE, 1)
        except PrivacyBudgetSpentError:
            return
        accountant.step(NOISE, RATE, steps)  # what training does
        granted.put(steps)


def test_two_runs_racing_on_one_ledger_spend_exactly_what_the_total_cap_affords(tmp_path):
    context = multiprocessing.get_context("fork")
    start, granted = context.Barrier(2), context.Queue()
    sites = [
        context.Process(target=_charge_until_spent, args=(tmp_path, run, start, granted))
        for run in ("run-a", "run-b")
    ]
    for site in sites:
        site.start()
    for site in sites:
        site.join(120)
    assert [site.exitcode for site in sites] == [0, 0]
    charges = [granted.get(timeout=5) for _ in range(AFFORDABLE)]
    assert granted.empty() and charges == [1] * AFFORDABLE
    ledger = PrivacyLedger(tmp_path / "ledger.json")
    assert sum(run.steps for run in ledger.runs().values()) == AFFORDABLE
    assert ledger.total_epsilon(DELTA) <= TOTAL_CAP


def test_a_charge_is_written_before_it_returns(tmp_path):
    budget = _budget(tmp_path, "7")
    assert budget.charge(SiteAccountant(), SETTINGS, RATE, 5) == 5
    assert budget.ledger.run("7").steps == 5


def test_a_charge_grants_only_the_steps_the_total_cap_affords(tmp_path):
    budget = _budget(tmp_path, "7")
    assert budget.charge(SiteAccountant(), SETTINGS, RATE, 100) == AFFORDABLE
    assert budget.ledger.total_epsilon(DELTA) <= TOTAL_CAP


def test_a_charge_grants_only_the_steps_the_per_run_cap_affords(tmp_path):
    budget = _budget(tmp_path, "7", total=1000.0)
    per_run = DPSGDSettings(
        enabled=True, noise_multiplier=NOISE, delta=DELTA, epsilon_budget=TOTAL_CAP
    )
    assert budget.charge(SiteAccountant(), per_run, RATE, 100) == AFFORDABLE


def test_a_spent_total_refuses_the_charge_and_writes_nothing(tmp_path):
    _budget(tmp_path, "earlier").charge(SiteAccountant(), SETTINGS, RATE, AFFORDABLE)
    budget = _budget(tmp_path, "7")
    with pytest.raises(PrivacyBudgetSpentError, match="the site's total over every run"):
        budget.charge(SiteAccountant(), SETTINGS, RATE, 1)
    assert budget.ledger.run("7") is None


def test_a_charge_from_a_stale_start_of_the_same_run_is_refused(tmp_path):
    # Another process charged run 7 after this round read it: this round must not train.
    budget = _budget(tmp_path, "7")
    budget.charge(SiteAccountant(), SETTINGS, RATE, 3)
    with pytest.raises(LedgerError, match="run 7 holds 3 DP-SGD steps, this round began from 0"):
        budget.charge(SiteAccountant(), SETTINGS, RATE, 3)
    assert budget.ledger.run("7").steps == 3
