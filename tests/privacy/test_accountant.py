"""The site's DP-SGD accountant: Opacus' numbers, the budget, and its history as lists."""

import pytest
from opacus.accountants import RDPAccountant

from cardiomm.privacy.accountant import HistoryEntry, SiteAccountant
from tests.deadline import deadline

DELTA = 1e-5
# (noise multiplier, sample rate, steps) of three "rounds"; the third changes the noise.
ROUNDS = [(1.0, 0.05, 20), (1.0, 0.05, 20), (0.8, 1 / 18, 7)]


def _site_accountant() -> SiteAccountant:
    accountant = SiteAccountant()
    for noise, rate, steps in ROUNDS:
        accountant.step(noise, rate, steps)
    return accountant


def test_epsilon_equals_opacus_rdp_accountant_fed_the_same_steps():
    reference = RDPAccountant()
    for noise, rate, steps in ROUNDS:
        for _ in range(steps):
            reference.step(noise_multiplier=noise, sample_rate=rate)
    accountant = _site_accountant()
    assert accountant.history == [HistoryEntry(*entry) for entry in reference.history]
    assert accountant.epsilon(DELTA) == reference.get_epsilon(delta=DELTA)
    assert accountant.steps == 47


def test_a_fresh_accountant_has_spent_nothing():
    assert SiteAccountant().epsilon(DELTA) == 0.0
    assert SiteAccountant().steps == 0


def test_affordable_steps_are_the_most_that_keep_epsilon_within_the_budget():
    accountant = _site_accountant()
    budget = accountant.epsilon(DELTA) + 0.5
    affordable = accountant.affordable_steps(1.0, 0.05, DELTA, budget, wanted=1000)
    assert 0 < affordable < 1000
    within, beyond = SiteAccountant(accountant.history), SiteAccountant(accountant.history)
    within.step(1.0, 0.05, affordable)
    beyond.step(1.0, 0.05, affordable + 1)
    assert within.epsilon(DELTA) <= budget < beyond.epsilon(DELTA)


def test_without_a_budget_every_wanted_step_is_affordable():
    assert _site_accountant().affordable_steps(1.0, 0.05, DELTA, None, wanted=20) == 20


def test_a_spent_budget_affords_no_step():
    accountant = _site_accountant()
    budget = accountant.epsilon(DELTA)
    assert accountant.affordable_steps(1.0, 0.05, DELTA, budget * 0.99, wanted=5) == 0


def test_the_history_survives_a_round_trip_through_its_lists():
    restored = SiteAccountant.from_lists(_site_accountant().to_lists(), "lists")
    assert restored.history == _site_accountant().history


def test_malformed_lists_are_an_error_naming_where_they_were_kept():
    with pytest.raises(ValueError, match="the saved history lacks sample-rate, steps"):
        SiteAccountant.from_lists({"noise-multiplier": [1.0]}, "the saved history")
    lists = {"noise-multiplier": [1.0], "sample-rate": [0.1, 0.2], "steps": [3]}
    with pytest.raises(ValueError, match="the saved history has lists of unequal length"):
        SiteAccountant.from_lists(lists, "the saved history")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("noise", "rate", "steps", "field"),
    [
        (NAN, 0.05, 3, "noise-multiplier nan"),
        (INF, 0.5, 3, "noise-multiplier inf"),
        (1.0, NAN, 3, "sample-rate nan"),
        (1.0, 0.05, 2.5, "steps 2.5"),
    ],
)
def test_the_accountant_refuses_a_value_opacus_cannot_account(noise, rate, steps, field):
    # Opacus' series for a fractional order never ends on a NaN noise multiplier.
    with deadline(20):
        with pytest.raises(ValueError, match=field):
            SiteAccountant([HistoryEntry(noise, rate, steps)])
        with pytest.raises(ValueError, match=field):
            SiteAccountant().step(noise, rate, steps)
        with pytest.raises(ValueError, match=field):
            _site_accountant().affordable_steps(noise, rate, DELTA, 5.0, steps)


@pytest.mark.parametrize("delta", [NAN, 0.0, 1.0, INF])
def test_epsilon_refuses_a_delta_outside_zero_to_one(delta):
    with pytest.raises(ValueError, match="delta must be a number in \\(0, 1\\)"):
        _site_accountant().epsilon(delta)


@pytest.mark.parametrize("budget", [NAN, -1.0, "5"])
def test_affordable_steps_refuses_a_budget_that_is_not_a_number_at_least_zero(budget):
    with pytest.raises(ValueError, match="an epsilon budget must be a number >= 0"):
        _site_accountant().affordable_steps(1.0, 0.05, DELTA, budget, wanted=5)


def test_lists_with_a_non_finite_value_name_where_they_were_kept_the_entry_and_the_field():
    lists = {"noise-multiplier": [1.0, NAN], "sample-rate": [0.1, 0.1], "steps": [3, 3]}
    with pytest.raises(ValueError, match="the saved history: entry 1: noise-multiplier nan"):
        SiteAccountant.from_lists(lists, "the saved history")
