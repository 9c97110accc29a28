"""The privacy side of a site's round: its policy check, its DP-SGD accountant, the noise
calibrated from a target epsilon, the budget check and the ledger's charge, and the numbers
the site may release.

A site with a privacy policy (``privacy.policy``, cardiomm/privacy/policy.py) refuses a run
that breaks it before reading any data; with DP-SGD its accountant is then the ledger's
entry for the run (cardiomm/privacy/site_budget.py), and the round's steps are charged to
the ledger before the network is built: an update released is always charged, and a round
that fails after the charge stays charged. Without a policy the accountant is the history
the site kept between rounds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cardiomm.config import config_value
from cardiomm.privacy.settings import DPSGDSettings, PrivacySettings
from cardiomm.train.config import TrainConfig

if TYPE_CHECKING:  # Opacus takes a second to import: only DP-SGD rounds load it
    from cardiomm.data.dataset import SliceDataset
    from cardiomm.privacy.accountant import SiteAccountant
    from cardiomm.privacy.policy import PrivacyPolicy
    from cardiomm.privacy.site_budget import SiteBudget

# How the accountant's history is named in errors when the caller does not say.
HISTORY_WHERE = "the site's stored DP-SGD history"
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LedgerReport:
    """With a policy: the site's epsilon over every run of its ledger, and the policy's caps
    (None: no cap)."""

    total_epsilon: float
    total_cap: float | None
    run_cap: float | None


@dataclasses.dataclass(frozen=True)
class PrivacyReport:
    """The DP-SGD numbers a site releases after a round (never its training loss).

    Attributes:
        epsilon: the run's epsilon so far at ``delta``.
        delta: the guarantee's delta.
        steps: the run's DP-SGD steps so far.
        budget_exhausted: not one more step fits in the run's or the total budget.
        ledger: the totals over every run (a site with a policy), else None.
    """

    epsilon: float
    delta: float
    steps: int
    budget_exhausted: bool
    ledger: LedgerReport | None = None


@dataclasses.dataclass
class RoundPrivacy:
    """The DP-SGD state of one round (``settings.enabled`` False: a plain round).

    Attributes:
        settings: DP-SGD in force: the site file's, the policy's per-run cap, then the noise
            calibrated from a target epsilon (:meth:`plan`).
        accountant: the run's accountant (DP-SGD only), charged in place by training.
        budget: the site's policy and ledger (a site with a policy and DP-SGD).
        rate: the accountant's sampling rate (set by :meth:`plan`).
        charged_steps: the run's steps in the ledger once this round was charged.
    """

    settings: DPSGDSettings
    accountant: SiteAccountant | None = None
    budget: SiteBudget | None = None
    rate: float = 0.0
    charged_steps: int = 0

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @classmethod
    def open(
        cls,
        config: Any,
        history: Mapping[str, Sequence[float]] | None = None,
        run_id: str = "",
        confirm_charge: Callable[[], None] | None = None,
        history_where: str = HISTORY_WHERE,
    ) -> RoundPrivacy:
        """The round's privacy before any data is read: the policy checked, the accountant
        found.

        Args:
            config: the composed federation config (``privacy``).
            history: the accountant lists the site kept from earlier rounds (None: none).
            run_id: the run's key in the site's privacy ledger.
            confirm_charge: called right before the ledger is charged; raising stops the
                round uncharged (a site worker asks its ClientApp).
            history_where: how ``history`` is named in errors.

        Raises:
            PolicyViolationError: the run breaks the site's privacy policy.
        """
        privacy = PrivacySettings.from_config(config)
        policy = _checked_policy(privacy)
        if not privacy.dp_sgd.enabled:
            return cls(privacy.dp_sgd)
        # Imported here: Opacus takes a second to load, and only DP-SGD runs need it.
        from cardiomm.privacy.accountant import SiteAccountant

        if policy is None:
            accountant = (
                SiteAccountant()
                if history is None
                else SiteAccountant.from_lists(history, history_where)
            )
            return cls(privacy.dp_sgd, accountant)
        budget = _budget(policy, run_id or "unknown", confirm_charge)
        accountant = budget.accountant(history)
        return cls(budget.settings_in_force(privacy.dp_sgd), accountant, budget)

    def plan(
        self, train_data: SliceDataset, train_config: TrainConfig, local_steps: int, config: Any
    ) -> TrainConfig:
        """Calibrate, check and charge the round before anything is built; returns
        ``train_config`` with the steps granted (unchanged for a plain round or without a
        ledger).

        Raises:
            PolicyViolationError: the noise (calibrated from a target epsilon) is below
                the policy's minimum.
            PrivacyBudgetSpentError: not one more step fits in the budget (the run's or,
                with a policy, the total); nothing is charged.
        """
        if not self.enabled:
            return train_config
        from cardiomm.privacy import dp_sgd

        self.rate = dp_sgd.site_sample_rate(self.settings, train_config.batch_size, train_data)
        planned = int(config_value(config, "federation.num_rounds", 1))
        self.settings = dp_sgd.calibrated(self.settings, self.rate, planned * local_steps)
        if self.budget is not None:
            self.budget.check_noise(self.settings)
        dp_sgd.check_budget(self.accountant, self.settings, self.rate)
        if self.budget is None:
            return train_config
        charged = self._charged(train_config)
        self.charged_steps = self.accountant.steps + charged.max_steps
        return charged

    def _charged(self, train_config: TrainConfig) -> TrainConfig:
        """``train_config`` with the steps the site's ledger granted and charged (both caps,
        one atomic step); none left is PrivacyBudgetSpentError (nothing is charged)."""
        wanted = train_config.max_steps
        allowed = self.budget.charge(self.accountant, self.settings, self.rate, wanted)
        if allowed < wanted:
            logger.warning("DP-SGD: the site's budget allows %d of %d steps", allowed, wanted)
        return dataclasses.replace(train_config, max_steps=allowed)

    def settle(self) -> None:
        """After training: the steps charged to the ledger but not taken stay spent, so the
        accountant takes them too."""
        if self.accountant is None or self.accountant.steps >= self.charged_steps:
            return
        untaken = self.charged_steps - self.accountant.steps
        logger.warning(
            "DP-SGD: %d of the steps charged to the ledger were not taken; they stay charged",
            untaken,
        )
        self.accountant.step(self.settings.noise_multiplier, self.rate, untaken)

    def report(self, site_id: str, loss: float) -> PrivacyReport | None:
        """The numbers the site releases (None for a plain round); the training ``loss``,
        an exact function of the private slices, goes to the site's own log only."""
        if not self.enabled:
            return None
        from cardiomm.privacy import dp_sgd

        settings, accountant, budget = self.settings, self.accountant, self.budget
        epsilon = accountant.epsilon(settings.delta)
        exhausted = (
            settings.epsilon_budget is not None
            and dp_sgd.affordable_steps(accountant, settings, self.rate, 1) == 0
        ) or (
            budget is not None
            and budget.affordable_steps(accountant, settings.noise_multiplier, self.rate, 1) == 0
        )
        logger.info(
            "site %s: DP-SGD epsilon %.4g (delta %.3g) after %d steps, training loss %.4f%s",
            site_id,
            epsilon,
            settings.delta,
            accountant.steps,
            loss,
            "; the epsilon budget is spent, the site trains no more" if exhausted else "",
        )
        ledger = None
        if budget is not None:
            policy = budget.policy
            ledger = LedgerReport(
                budget.total_epsilon(accountant),
                policy.max_epsilon_total,
                policy.max_epsilon_per_run,
            )
        return PrivacyReport(epsilon, settings.delta, accountant.steps, exhausted, ledger)

    def history(self) -> dict[str, list] | None:
        """The accountant's lists for the site to keep until its next round (None: plain)."""
        return self.accountant.to_lists() if self.accountant is not None else None


def _checked_policy(privacy: PrivacySettings) -> PrivacyPolicy | None:
    """The site's privacy policy (None without one), after checking the run against it."""
    path = privacy.policy
    if not path:
        return None
    from cardiomm.privacy.policy import check_run, read_policy

    policy = read_policy(str(path))
    check_run(policy, privacy)
    return policy


def _budget(
    policy: PrivacyPolicy, run_id: str, confirm_charge: Callable[[], None] | None
) -> SiteBudget:
    from cardiomm.privacy.ledger import PrivacyLedger
    from cardiomm.privacy.site_budget import ConfirmedBudget, SiteBudget

    ledger = PrivacyLedger(policy.ledger)
    if confirm_charge is None:
        return SiteBudget(policy, ledger, run_id)
    # A worker's round: charged only while its ClientApp still waits for it.
    return ConfirmedBudget(policy, ledger, run_id, confirm_charge)
