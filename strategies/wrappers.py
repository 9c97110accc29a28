"""The chain of strategy wrappers: what is inside, and what the wrappers report.

The factory (strategies/factory.py) puts at most one wrapper around the aggregation
strategy: Flower's central-DP wrappers or :class:`VendorPersonalisedStrategy` (the two do
not combine, strategies/settings.py). Every wrapper holds the strategy it wraps as
``.strategy``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from strategies.personalised_strategy import VendorPersonalisedStrategy
from strategies.vendor_personalisation import VendorPersonalisation

CENTRAL_DP_WRAPPERS = (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
)
WRAPPERS = (*CENTRAL_DP_WRAPPERS, VendorPersonalisedStrategy)


def strategy_chain(strategy: Strategy) -> list[Strategy]:
    """``strategy`` and every strategy it wraps, outermost first."""
    chain = [strategy]
    while isinstance(chain[-1], WRAPPERS):
        chain.append(chain[-1].strategy)
    return chain


def inner_strategy(strategy: Strategy) -> Strategy:
    """The aggregation strategy inside the wrappers (``strategy`` itself without any)."""
    return strategy_chain(strategy)[-1]


def central_dp_wrapper(strategy: Strategy) -> Strategy | None:
    """The central-DP wrapper of the chain, or None."""
    return next((s for s in strategy_chain(strategy) if isinstance(s, CENTRAL_DP_WRAPPERS)), None)


def vendor_personalisation(strategy: Strategy) -> VendorPersonalisation | None:
    """The vendor copies of the chain's personalisation wrapper, or None: what the final
    model, the global evaluation and the evaluation-only sites use."""
    for layer in strategy_chain(strategy):
        if isinstance(layer, VendorPersonalisedStrategy):
            return layer.personalisation
    return None


def observe_train_replies(strategy: Strategy, replies: Iterable[Message]) -> None:
    """Show the wrappers that ask for them (``observe_train_replies``) the round's admitted
    train replies before the server screens the updates (server/update_screening.py)."""
    replies = list(replies)
    for layer in strategy_chain(strategy):
        observe = getattr(layer, "observe_train_replies", None)
        if observe is not None:
            observe(replies)


def central_dp_report(strategy: Strategy) -> dict[str, float]:
    """The round's central-DP numbers: clipping norm, and epsilon / delta when accounted."""
    wrapper = central_dp_wrapper(strategy)
    if wrapper is None:
        return {}
    report = {"central-dp-clipping-norm": float(wrapper.clipping_norm)}
    accountant = getattr(wrapper, "accountant", None)
    if accountant is not None and accountant.num_releases > 0:
        spent = accountant.get_privacy_spent()
        report.update({"central-dp-epsilon": spent.epsilon, "central-dp-delta": spent.delta})
    return report
