"""A site's privacy budget that asks before it spends: the budget of a round a ClientApp
handed to its site worker (client/worker.py).

The worker charges the site's ledger (:meth:`SiteBudget.charge`) only once the ClientApp,
asked over the task's connection, has agreed; a ClientApp that gave up on the task (timed
out, fell back to doing the round itself) cannot agree, so the round is charged once, by
whoever trains it, never by both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.privacy.site_budget import SiteBudget


@dataclasses.dataclass(frozen=True)
class ConfirmedBudget(SiteBudget):
    """A :class:`SiteBudget` whose :meth:`charge` first calls ``confirm``, which raises
    (client.worker.ClientAppGoneError) when the charge must not happen."""

    confirm: Callable[[], None]

    def charge(
        self, accountant: SiteAccountant, settings: DPSGDSettings, rate: float, wanted: int
    ) -> int:
        self.confirm()
        return super().charge(accountant, settings, rate, wanted)
