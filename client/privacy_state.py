"""Where a site keeps its DP-SGD accountant between rounds: the ClientApp's ``context.state``.

Flower calls the ClientApp afresh for every message, so the accountant's history (three
lists, cardiomm/privacy/accountant.py) is read at the start of a round and written back at
its end; ``context.state`` persists per node for the run. The lists travel as they are to a
site worker (client/worker.py), so reading them needs neither Opacus nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flwr.app import MetricRecord, RecordDict

if TYPE_CHECKING:  # Opacus takes a second to import: a ClientApp that forwards never does
    from cardiomm.privacy.accountant import SiteAccountant

# Key of the accountant's record in ``context.state``.
ACCOUNTANT_RECORD = "dp-sgd-accountant"
# Where the history was kept, for error messages.
ACCOUNTANT_WHERE = f"the {ACCOUNTANT_RECORD} record in context.state"


def stored_history(state: RecordDict) -> dict[str, list] | None:
    """The accountant's history lists from ``context.state`` (None in a site's first round)."""
    if ACCOUNTANT_RECORD not in state:
        return None
    record = state[ACCOUNTANT_RECORD]
    if not isinstance(record, MetricRecord):
        raise ValueError(
            f"context.state[{ACCOUNTANT_RECORD!r}] is a {type(record).__name__}, "
            "not the MetricRecord the DP-SGD accountant writes"
        )
    return {key: value if isinstance(value, list) else [value] for key, value in record.items()}


def store_history(state: RecordDict, history: dict[str, list]) -> None:
    """Write the accountant's history lists into ``context.state`` (replacing the last)."""
    state[ACCOUNTANT_RECORD] = MetricRecord(history)


def load_accountant(state: RecordDict) -> SiteAccountant:
    """The site's accountant from ``context.state`` (a fresh one in its first round)."""
    from cardiomm.privacy.accountant import SiteAccountant

    history = stored_history(state)
    if history is None:
        return SiteAccountant()
    return SiteAccountant.from_lists(history, ACCOUNTANT_WHERE)


def store_accountant(state: RecordDict, accountant: SiteAccountant) -> None:
    """Write the accountant into ``context.state`` (replacing the previous round's)."""
    store_history(state, accountant.to_lists())
