"""The site's round: the one entry point a federated site calls for its part of a round."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cardiomm.model.factory import network_from_config
from cardiomm.site_round.data import RoundInstructions, SiteSplits, validation_data
from cardiomm.site_round.evaluation import (
    NetworkBuilder,
    Scores,
    file_scores,
    validation_scores,
)
from cardiomm.site_round.privacy import HISTORY_WHERE, RoundPrivacy
from cardiomm.site_round.training import TrainedRound, train_round


@dataclasses.dataclass(frozen=True)
class SiteRound:
    """A site's part of a federated round, in plain values (no Flower, no wire keys).

    Attributes:
        site: the site's data (its id and its train and val files).
        config: the composed federation config, the site's own file applied.
        build: where the network comes from: (config, coil_batching=...) -> (network, text
            encoder); a warm site worker passes its cache.
    """

    site: SiteSplits
    config: Any
    build: NetworkBuilder = network_from_config

    def train(
        self,
        global_state: dict[str, torch.Tensor],
        instructions: RoundInstructions,
        history: Mapping[str, Sequence[float]] | None = None,
        run_id: str = "",
        confirm_charge: Callable[[], None] | None = None,
        history_where: str = HISTORY_WHERE,
    ) -> TrainedRound:
        """Check the run against the site's privacy policy, find its DP-SGD accountant,
        calibrate the noise, check the budget and charge the ledger, then train the global
        model and validate it (:func:`cardiomm.site_round.training.train_round`).

        Args:
            global_state: the round's global weights.
            instructions: what the server asked for.
            history: the DP-SGD accountant lists the site kept from its earlier rounds.
            run_id: the run's key in the site's privacy ledger.
            confirm_charge: called right before the ledger is charged; raising stops the
                round uncharged.
            history_where: how ``history`` is named in errors.

        Raises:
            PolicyViolationError: the run, or its calibrated noise, breaks the site's policy.
            PrivacyBudgetSpentError: not one more DP-SGD step fits in the budget.
            SiteDataError: no usable training slice.
        """
        privacy = RoundPrivacy.open(self.config, history, run_id, confirm_charge, history_where)
        return train_round(self.site, self.config, self.build, global_state, instructions, privacy)

    def evaluate(self, global_state: dict[str, torch.Tensor]) -> Scores | None:
        """The scores of the model ``global_state`` on the site's validation split (None
        when it has none)."""
        started = time.perf_counter()
        validation = validation_data(self.site, self.config)
        return validation_scores(validation, global_state, self.config, self.build, started)

    def score(
        self, files: tuple[Path, ...], global_state: dict[str, torch.Tensor]
    ) -> Scores | None:
        """The scores of the model ``global_state`` on ``files``, overall and per group
        (None when no file is given): what an evaluation-only site returns for the global
        model and any site for a model of the cross-site matrix.

        Raises:
            SiteDataError: no usable image in ``files``.
        """
        return file_scores(self.site, files, global_state, self.config, self.build)
