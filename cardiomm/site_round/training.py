"""The training of a site's round: the round's data, its privacy planned and charged, the
global model trained on the train split and validated on the val split."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from cardiomm.config import config_section
from cardiomm.data.dataset import SliceDataset
from cardiomm.site_round.data import (
    RoundInstructions,
    SiteSplits,
    round_seed,
    skipped_files,
    training_data,
    validation_data,
)
from cardiomm.site_round.evaluation import NetworkBuilder
from cardiomm.site_round.privacy import PrivacyReport, RoundPrivacy
from cardiomm.train import TrainConfig, TrainingRun, TrainResult, train_model


@dataclasses.dataclass
class TrainedRound:
    """What a site's training round produced.

    Attributes:
        state: the site's new state dict, on the CPU.
        result: the training run (steps, slices seen, losses, validation scores).
        train_examples: the site's training slices (FedAvg's n_k).
        skipped: the files skipped, ``{"path", "reason"}`` each (training, then validation).
        build_seconds: the network's and text encoder's build time.
        privacy: the DP-SGD numbers the site releases (None without DP-SGD).
        history: the DP-SGD accountant's lists to keep until the next round (None without).
    """

    state: dict[str, torch.Tensor]
    result: TrainResult
    train_examples: int
    skipped: list[dict[str, str]]
    build_seconds: float
    privacy: PrivacyReport | None = None
    history: dict[str, list] | None = None


def train_round(
    site: SiteSplits,
    config: Any,
    build: NetworkBuilder,
    global_state: dict[str, torch.Tensor],
    instructions: RoundInstructions,
    privacy: RoundPrivacy,
) -> TrainedRound:
    """Train the global model on the site's train split and validate it.

    Args:
        site: the site's data.
        config: the composed federation config.
        build: where the network comes from (a warm worker's cache, or built afresh).
        global_state: the round's global weights.
        instructions: what the server asked for.
        privacy: the round's privacy (:meth:`RoundPrivacy.open`): planned, charged and
            settled here.

    Raises:
        SiteDataError: no usable training slice.
        PolicyViolationError, PrivacyBudgetSpentError: from :meth:`RoundPrivacy.plan`;
            nothing is built, trained or charged.
    """
    seed = round_seed(instructions, site)
    train_data = training_data(site, config, seed)
    train_config = privacy.plan(
        train_data, _train_config(config, instructions, seed), instructions.local_steps, config
    )
    began = time.perf_counter()
    network, encoder = build(config, coil_batching=False if privacy.enabled else None)
    network.load_state_dict(global_state, strict=True)
    build_seconds = time.perf_counter() - began
    validation = validation_data(site, config)
    result = _train(network, encoder, train_data, train_config, validation, global_state, privacy)
    privacy.settle()
    return TrainedRound(
        state={key: value.detach().cpu() for key, value in network.state_dict().items()},
        result=result,
        train_examples=len(train_data),
        skipped=skipped_files(train_data, validation),
        build_seconds=build_seconds,
        privacy=privacy.report(site.site_id, result.loss),
        history=privacy.history(),
    )


def _train(
    network: torch.nn.Module,
    encoder: Any,
    train_data: SliceDataset,
    train_config: TrainConfig,
    validation: SliceDataset | None,
    global_state: dict[str, torch.Tensor],
    privacy: RoundPrivacy,
) -> TrainResult:
    """The local training run: FedProx anchored on the global weights when asked."""
    return train_model(
        TrainingRun(
            network,
            encoder,
            train_data,
            train_config,
            validation,
            reference_weights=global_state if train_config.proximal_mu else None,
            show_progress=False,
            privacy=privacy.settings if privacy.enabled else None,
            accountant=privacy.accountant,
        )
    )


def _train_config(config: Any, instructions: RoundInstructions, seed: int) -> TrainConfig:
    """The site's ``train`` settings with the server's steps, learning rate and FedProx mu,
    the round's seed, and no validation until the end."""
    train_settings = config_section(config, "train")
    train_settings.update(
        max_steps=instructions.local_steps,
        learning_rate=instructions.learning_rate,
        proximal_mu=instructions.proximal_mu,
        seed=seed,
        validate_every=0,
    )
    return TrainConfig.from_mapping(train_settings)
