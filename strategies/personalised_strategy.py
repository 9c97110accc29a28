"""Vendor personalisation as a Strategy wrapper around the aggregation strategy.

The way Flower's DifferentialPrivacy*Clipping wrappers add DP to any strategy, this wrapper
adds per-vendor copies of the personalised parameters (strategies/vendor_personalisation.py)
to any strategy: the train and evaluate messages the inner strategy configures get each
site's vendor copy, and the inner strategy's aggregate gets the fallback in the personalised
parameters while the vendor copies are updated from the same replies. The round loop talks
to it as to any Strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from strategies.vendor_personalisation import VendorPersonalisation

logger = logging.getLogger(__name__)


class VendorPersonalisedStrategy(Strategy):
    """``strategy`` with the parameters ``personalisation`` names kept per vendor.

    Args:
        strategy: the aggregation strategy (it sees the sites' whole replies).
        personalisation: the vendor copies, and which node is which vendor.
    """

    def __init__(self, strategy: Strategy, personalisation: VendorPersonalisation) -> None:
        self.strategy = strategy
        self.personalisation = personalisation

    def __repr__(self) -> str:
        return f"Vendor personalisation wrapper ({', '.join(self.personalisation.patterns)})"

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's messages, each with its site's vendor copy in place."""
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self.personalisation.personalise(messages)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The inner aggregate with the fallback in the personalised parameters; the vendor
        copies are updated from the same ``replies``."""
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is not None:
            arrays = self.personalisation.update(replies, arrays, server_round)
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's messages, each with its site's vendor copy in place."""
        messages = list(self.strategy.configure_evaluate(server_round, arrays, config, grid))
        self.personalisation.personalise(messages)
        return messages

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def observe_train_replies(self, replies: Iterable[Message]) -> None:
        """Learn the vendor of every node that replied to training (before the server's
        screening: a site whose update is rejected still gets its vendor's copy)."""
        self.personalisation.learn_vendors(replies)

    def summary(self) -> None:
        logger.info("\t├──> Vendor-personalised: %s", ", ".join(self.personalisation.patterns))
        self.strategy.summary()
