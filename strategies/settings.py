"""The aggregation part of a run's settings: the ``strategy`` section of the composed config.

Read once here from the typed section (federation/schema.py, StrategyConfig, holds every
default; ``configs/strategy/`` only overrides them) and checked here; the server's settings
(server/settings.py) hold one :class:`StrategySettings` and the factory
(strategies/factory.py) builds the Flower strategy from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from federation.schema import StrategyConfig
from strategies.reducers import REDUCERS
from strategies.registry import strategy_builder
from strategies.vendor_weights import VENDOR_WEIGHTINGS


@dataclasses.dataclass(frozen=True)
class StrategySettings:
    """How the server aggregates the sites' updates.

    Attributes:
        name: the strategy's name in reports (``strategy.name``, e.g. ``fedavg``).
        server_optimizer: the registered builder (strategies/registry.py): ``none`` (the
            aggregate is the new model; FedProx when ``proximal_mu`` > 0), ``fedadam`` or
            ``fedyogi`` (an adaptive step along the aggregate's pseudo-gradient), or one a
            strategy module registers.
        proximal_mu: FedProx mu (sent to the sites; 0: no proximal term).
        vendor_weighting: across-vendor weights (``equal``, ``sqrt``, or ``examples`` =
            FedAvg's weights); sites of one vendor always share by examples.
        reducer: ``mean``, ``median`` or ``trimmed_mean`` over the weighted sites.
        trim_fraction: share of the weight the trimmed mean cuts from each tail.
        personalised: parameter name patterns kept per vendor (empty: all shared).
        personalise_from_round: the first round that keeps them per vendor (shared
            before: FedAvg, then per-vendor fine-tuning).
        server_learning_rate, beta_1, beta_2, tau: FedAdam's / FedYogi's server optimiser.
        site_learning_rate: the sites' learning rate (``train.learning_rate``; Flower's
            FedOpt records it as ``eta_l``).
        options: the whole ``strategy`` section as plain values, for the keys of a
            registered strategy that the fields above do not name.
    """

    name: str = StrategyConfig.name
    server_optimizer: str = StrategyConfig.server_optimizer
    proximal_mu: float = StrategyConfig.proximal_mu
    vendor_weighting: str = StrategyConfig.vendor_weighting
    reducer: str = StrategyConfig.reducer
    trim_fraction: float = StrategyConfig.trim_fraction
    personalised: tuple[str, ...] = ()
    personalise_from_round: int = StrategyConfig.personalise_from_round
    server_learning_rate: float = StrategyConfig.server_learning_rate
    beta_1: float = StrategyConfig.beta_1
    beta_2: float = StrategyConfig.beta_2
    tau: float = StrategyConfig.tau
    site_learning_rate: float = 0.1  # from_config sets train.learning_rate
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_config(cls, config: DictConfig) -> StrategySettings:
        """The typed ``strategy`` section's values (federation/schema.py, StrategyConfig,
        holds the defaults; unchecked: :meth:`validate` checks them)."""
        section = config.strategy
        typed = {field.name: section[field.name] for field in dataclasses.fields(StrategyConfig)}
        typed["server_optimizer"] = section.server_optimizer.lower()
        typed["personalised"] = tuple(section.personalised)
        return cls(
            **typed,
            site_learning_rate=float(config.train.learning_rate),
            options=OmegaConf.to_container(section, resolve=True),  # type: ignore[arg-type]
        )

    @property
    def vendor_aware(self) -> bool:
        """Whether aggregation departs from FedAvg's example-weighted mean."""
        return self.vendor_weighting != "examples" or self.reducer != "mean"

    def validate(self, num_rounds: int) -> None:
        """Raise ValueError for settings no run of ``num_rounds`` rounds could use."""
        strategy_builder(self.server_optimizer)  # refuses a name no module registers
        if self.vendor_weighting not in VENDOR_WEIGHTINGS:
            raise ValueError(
                f"strategy.vendor_weighting must be one of {', '.join(VENDOR_WEIGHTINGS)}, "
                f"got {self.vendor_weighting!r}"
            )
        if self.reducer not in REDUCERS:
            raise ValueError(
                f"strategy.reducer must be one of {', '.join(REDUCERS)}, got {self.reducer!r}"
            )
        if not 0.0 <= self.trim_fraction < 0.5:
            raise ValueError(
                f"strategy.trim_fraction must be in [0, 0.5), got {self.trim_fraction}"
            )
        if self.proximal_mu < 0:
            raise ValueError(f"strategy.proximal_mu must be >= 0, got {self.proximal_mu}")
        if self.personalised and not 1 <= self.personalise_from_round <= num_rounds:
            raise ValueError(
                "strategy.personalise_from_round must be a round of the run (1 to "
                f"{num_rounds}), got {self.personalise_from_round}"
            )

    def option(self, key: str, default: Any) -> Any:
        """``strategy.<key>`` for a registered strategy's own setting (``default`` when the
        config leaves it out or null)."""
        value = self.options.get(key)
        return default if value is None else value
