"""The aggregation part of a run's settings: the ``strategy`` section of the composed config.

Read once here, with the default used when ``configs/strategy/`` leaves a key out, and checked
here; the server's settings (server/settings.py) hold one :class:`StrategySettings` and the
factory (strategies/factory.py) builds the Flower strategy from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from federation.config import select
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

    name: str = "fedavg"
    server_optimizer: str = "none"
    proximal_mu: float = 0.0
    vendor_weighting: str = "examples"
    reducer: str = "mean"
    trim_fraction: float = 0.2
    personalised: tuple[str, ...] = ()
    personalise_from_round: int = 1
    server_learning_rate: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3
    site_learning_rate: float = 0.1
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_config(cls, config: DictConfig) -> StrategySettings:
        """The ``strategy`` section's values (unchecked: :meth:`validate` checks them)."""
        section = OmegaConf.select(config, "strategy", default=None)
        options = OmegaConf.to_container(section, resolve=True) if section is not None else {}
        return cls(
            name=str(select(config, "strategy.name", "fedavg")),
            server_optimizer=str(select(config, "strategy.server_optimizer", "none")).lower(),
            proximal_mu=float(select(config, "strategy.proximal_mu", 0.0)),
            vendor_weighting=str(select(config, "strategy.vendor_weighting", "examples")),
            reducer=str(select(config, "strategy.reducer", "mean")),
            trim_fraction=float(select(config, "strategy.trim_fraction", 0.2)),
            personalised=tuple(str(p) for p in select(config, "strategy.personalised", [])),
            personalise_from_round=int(select(config, "strategy.personalise_from_round", 1)),
            server_learning_rate=float(select(config, "strategy.server_learning_rate", 0.1)),
            beta_1=float(select(config, "strategy.beta_1", 0.9)),
            beta_2=float(select(config, "strategy.beta_2", 0.99)),
            tau=float(select(config, "strategy.tau", 1e-3)),
            site_learning_rate=float(config.train.learning_rate),
            options=dict(options or {}),  # type: ignore[arg-type]
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
