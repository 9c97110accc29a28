"""Where a site keeps its DP-SGD accountant between rounds: the ClientApp's ``context.state``.

Flower calls the ClientApp afresh for every message, so the accountant's history (three
lists, cardiomm/privacy/accountant.py) is read at the start of a round and written back at
its end; ``context.state`` persists per node for the run.
"""

from __future__ import annotations

from flwr.app import MetricRecord, RecordDict

from cardiomm.privacy.accountant import SiteAccountant

# Key of the accountant's record in ``context.state``.
ACCOUNTANT_RECORD = "dp-sgd-accountant"


def load_accountant(state: RecordDict) -> SiteAccountant:
    """The site's accountant from ``context.state`` (a fresh one in its first round)."""
    if ACCOUNTANT_RECORD not in state:
        return SiteAccountant()
    record = state[ACCOUNTANT_RECORD]
    if not isinstance(record, MetricRecord):
        raise ValueError(
            f"context.state[{ACCOUNTANT_RECORD!r}] is a {type(record).__name__}, "
            "not the MetricRecord the DP-SGD accountant writes"
        )
    return SiteAccountant.from_lists(record, f"the {ACCOUNTANT_RECORD} record in context.state")


def store_accountant(state: RecordDict, accountant: SiteAccountant) -> None:
    """Write the accountant into ``context.state`` (replacing the previous round's)."""
    state[ACCOUNTANT_RECORD] = MetricRecord(accountant.to_lists())
