"""Strategy builders by name: ``strategy.server_optimizer`` picks one.

A strategy module registers its builder with :func:`register_strategy`; the registry imports
every module of the ``strategies`` package the first time a name is looked up, so a new
module is found without being listed anywhere. A builder gets the run's
:class:`strategies.settings.StrategySettings` and the keyword arguments every Flower FedAvg
takes (sampling, metric aggregation, ``weighted_by_key``) and returns the Flower strategy;
the factory (strategies/factory.py) then sets the vendor-aware aggregation, and wraps it in
vendor personalisation or central DP as configured.

Server state beyond FedAdam's / FedYogi's moments: a strategy with methods
``server_state() -> dict`` (torch tensors and plain values) and
``restore_server_state(state)`` has that state kept in the round checkpoints
(strategies/server_state.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flwr.serverapp.strategy import Strategy

if TYPE_CHECKING:
    from strategies.settings import StrategySettings

StrategyBuilder = Callable[["StrategySettings", dict[str, Any]], Strategy]
"""(the strategy settings, FedAvg's common keyword arguments) -> the Flower strategy."""

STRATEGY_BUILDERS: dict[str, StrategyBuilder] = {}
_discovered = False


def register_strategy(name: str) -> Callable[[StrategyBuilder], StrategyBuilder]:
    """Decorator: ``builder`` is what ``strategy.server_optimizer=<name>`` builds.

    Raises:
        ValueError: ``name`` is registered already (two modules would fight over it).
    """
    key = name.lower()

    def register(builder: StrategyBuilder) -> StrategyBuilder:
        if key in STRATEGY_BUILDERS and STRATEGY_BUILDERS[key] is not builder:
            raise ValueError(f"strategy {key!r} is registered twice")
        STRATEGY_BUILDERS[key] = builder
        return builder

    return register


def strategy_names() -> tuple[str, ...]:
    """Every registered name, in the order the modules registered them."""
    _discover()
    return tuple(STRATEGY_BUILDERS)


def strategy_builder(name: str) -> StrategyBuilder:
    """The builder registered as ``name``.

    Raises:
        ValueError: no module registers ``name``.
    """
    names = strategy_names()
    if name not in STRATEGY_BUILDERS:
        raise ValueError(
            f"strategy.server_optimizer must be one of {', '.join(names)}, got {name!r}"
        )
    return STRATEGY_BUILDERS[name]


def _discover() -> None:
    """Import every module of this package once, so that their registrations run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("strategies")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"strategies.{module.name}")
