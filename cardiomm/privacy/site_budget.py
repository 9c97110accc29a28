"""The budget a site holds itself to: its privacy policy and its ledger, for one run.

The per-run cap (the smaller of the policy's and the site file's ``epsilon_budget``) works
as before, through the run's own accountant. The total cap needs the other runs' steps too:
:meth:`SiteBudget.affordable_steps` composes them (RDP) with this run's and allows only as
many steps as keep that total within the cap.

:meth:`SiteBudget.charge` is what spends: under the ledger's one lock it reads every run,
grants as many steps as both caps allow and writes them, before anything is trained. A
second run at once waits for the lock and sees the first one's charge; the charge stays
whatever happens to the training (steps granted may have been taken, and a failed round
must not hand its budget back).

A :class:`ConfirmedBudget` asks before it spends: the budget of a round that a ClientApp
handed to its site worker (client/worker.py), charged only once the ClientApp, asked over
the task's connection, has agreed. A ClientApp that gave up on the task (timed out, fell back
to doing the round itself) cannot agree, so the round is charged once, by whoever trains it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.errors import PrivacyBudgetSpentError
from cardiomm.privacy.ledger import LedgerError, PrivacyLedger
from cardiomm.privacy.policy import PolicyViolationError, PrivacyPolicy, run_budget
from cardiomm.privacy.settings import DPSGDSettings


@dataclasses.dataclass(frozen=True)
class SiteBudget:
    """A site's policy and ledger for the run ``run_id``."""

    policy: PrivacyPolicy
    ledger: PrivacyLedger
    run_id: str

    def settings_in_force(self, settings: DPSGDSettings) -> DPSGDSettings:
        """``settings`` with the per-run cap in force (the policy's or the site file's)."""
        return dataclasses.replace(
            settings, epsilon_budget=run_budget(self.policy, settings.epsilon_budget)
        )

    def check_noise(self, settings: DPSGDSettings) -> None:
        """Refuse (PolicyViolationError) noise below the policy's minimum, also when it was
        calibrated from a target epsilon."""
        if settings.noise_multiplier < self.policy.min_noise_multiplier:
            raise PolicyViolationError(
                f"DP-SGD noise multiplier {settings.noise_multiplier:.4g} is below the minimum "
                f"{self.policy.min_noise_multiplier:g} of the site's privacy policy "
                f"({self.policy.path})"
            )

    def accountant(self, state_history: Mapping[str, Sequence[float]] | None) -> SiteAccountant:
        """This run's accountant: the ledger's entry, or the lists the node kept in its
        ``context.state`` when they hold more steps (a run that began before the policy)."""
        recorded = self.ledger.run(self.run_id)
        kept = (
            SiteAccountant.from_lists(state_history, "the run's context.state")
            if state_history is not None
            else None
        )
        candidates = [accountant for accountant in (recorded, kept) if accountant is not None]
        return max(candidates, key=lambda a: a.steps) if candidates else SiteAccountant()

    def total_epsilon(self, accountant: SiteAccountant) -> float:
        """Epsilon (at the policy's delta) of every other run's steps and this run's."""
        return SiteAccountant([*self.ledger.others(self.run_id), *accountant.history]).epsilon(
            self.policy.delta
        )

    def affordable_steps(
        self, accountant: SiteAccountant, noise_multiplier: float, rate: float, wanted: int
    ) -> int:
        """How many of ``wanted`` further steps keep the total within the policy's cap."""
        combined = SiteAccountant([*self.ledger.others(self.run_id), *accountant.history])
        return combined.affordable_steps(
            noise_multiplier, rate, self.policy.delta, self.policy.max_epsilon_total, wanted
        )

    def charge(
        self, accountant: SiteAccountant, settings: DPSGDSettings, rate: float, wanted: int
    ) -> int:
        """Charge this run, in the ledger, for as many of ``wanted`` steps (at the noise of
        ``settings`` and sampling rate ``rate``) as the per-run cap in force
        (``settings.epsilon_budget``) and the policy's total cap allow, and return that
        count; ``accountant`` (this run's steps so far) is not changed: training charges it.

        Raises:
            PrivacyBudgetSpentError: not one step fits (nothing is written).
            LedgerError: the ledger holds more of this run than ``accountant``: another
                process charged the same run meanwhile (nothing is written).
        """
        granted = 0

        def charged(runs: dict[str, SiteAccountant]) -> SiteAccountant:
            nonlocal granted
            recorded = runs.get(self.run_id)
            if recorded is not None and recorded.steps > accountant.steps:
                raise LedgerError(
                    f"privacy ledger {self.ledger.path}: run {self.run_id} holds "
                    f"{recorded.steps} DP-SGD steps, this round began from {accountant.steps}: "
                    "another process charged the same run meanwhile, so this round does not train"
                )
            noise, delta = settings.noise_multiplier, self.policy.delta
            per_run = accountant.affordable_steps(
                noise, rate, settings.delta, settings.epsilon_budget, wanted
            )
            others = [e for run, a in runs.items() if run != self.run_id for e in a.history]
            combined = SiteAccountant([*others, *accountant.history])
            total = combined.affordable_steps(
                noise, rate, delta, self.policy.max_epsilon_total, per_run
            )
            if per_run == 0:
                raise PrivacyBudgetSpentError(
                    accountant.epsilon(settings.delta),
                    float(settings.epsilon_budget or 0.0),
                    settings.delta,
                    accountant.steps,
                )
            if total == 0:
                raise PrivacyBudgetSpentError(
                    combined.epsilon(delta),
                    float(self.policy.max_epsilon_total or 0.0),
                    delta,
                    accountant.steps,
                    scope=f"the site's total over every run, {self.ledger.path}",
                )
            granted = total
            after = SiteAccountant(accountant.history)
            after.step(noise, rate, total)
            return after

        self.ledger.update(self.run_id, charged)
        return granted


@dataclasses.dataclass(frozen=True)
class ConfirmedBudget(SiteBudget):
    """A :class:`SiteBudget` whose :meth:`charge` first calls ``confirm``, which raises
    when the charge must not happen (a site worker whose ClientApp gave up on the task)."""

    confirm: Callable[[], None]

    def charge(
        self, accountant: SiteAccountant, settings: DPSGDSettings, rate: float, wanted: int
    ) -> int:
        self.confirm()
        return super().charge(accountant, settings, rate, wanted)
