"""A site's round: load the global weights, train locally, validate, report numbers only.

With ``privacy.dp_sgd.enabled`` the local training is sample-level DP-SGD
(:mod:`cardiomm.privacy.dp_sgd`), charged to the site's accountant that the ClientApp keeps in
``context.state`` across rounds and, for a site with a privacy policy, in its ledger across
runs (:mod:`cardiomm.privacy.site_budget`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf

from cardiomm.config import config_section
from cardiomm.data.builders import evaluation_dataset, training_dataset
from cardiomm.data.dataset import SliceDataset
from cardiomm.model.factory import network_from_config
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.privacy.settings import DPSGDSettings, PrivacySettings
from cardiomm.train import TrainConfig, evaluate_reconstructor, train_model
from cardiomm.train.evaluate import EvaluationResult
from client.site import SiteData, SiteDataError
from federation.protocol import (
    BAD_FILE_COUNT,
    BUILD_SECONDS,
    DP_BUDGET_EXHAUSTED,
    DP_DELTA,
    DP_EPSILON,
    DP_EPSILON_RUN_CAP,
    DP_EPSILON_TOTAL,
    DP_EPSILON_TOTAL_CAP,
    DP_STEPS,
    EVAL_SECONDS,
    FIELD_STRENGTH,
    FINAL_LOSS,
    LOSS,
    NMSE,
    NUM_EXAMPLES,
    PSNR,
    SKIPPED_STEPS,
    SLICES_SEEN,
    SSIM,
    STEPS,
    TRAIN_SECONDS,
    TRAINABLE_PARAMETERS,
    VAL_NMSE,
    VAL_PSNR,
    VAL_SSIM,
    breakdown_group,
    breakdown_key,
)

if TYPE_CHECKING:  # Opacus takes a second to import: only DP-SGD rounds load it
    from cardiomm.privacy.accountant import SiteAccountant
    from cardiomm.privacy.site_budget import SiteBudget

NAN = float("nan")
# How a round gets its network: (config, coil_batching=...) -> (network, text encoder).
# A warm site worker passes a cache (client/model_cache.py); the default builds afresh.
NetworkBuilder = Callable[..., tuple[torch.nn.Module, Any]]
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RoundInstructions:
    """What the server asked for this round (docs/federation-protocol.md)."""

    server_round: int
    local_steps: int
    learning_rate: float
    proximal_mu: float
    seed: int


def train_site(
    site: SiteData,
    global_state: dict[str, torch.Tensor],
    instructions: RoundInstructions,
    config: Any,
    accountant: SiteAccountant | None = None,
    build: NetworkBuilder = network_from_config,
    budget: SiteBudget | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[dict[str, str]]]:
    """Train the global model on the site's train split and validate it.

    Args:
        site: the site's data.
        global_state: the round's global weights.
        instructions: what the server asked for.
        config: the composed federation config (``privacy.dp_sgd`` turns DP-SGD on).
        accountant: the site's DP-SGD accountant over the run so far (required with
            DP-SGD); charged in place for the steps taken this round.
        build: where the network comes from (a warm worker's cache, or built afresh).
        budget: the site's privacy policy and ledger (cardiomm/privacy/site_budget.py):
            its per-run cap replaces the site file's when smaller, no step passes its total
            cap over every run, and the round's steps are charged to the ledger before the
            network is built (a round that fails after that stays charged).

    Returns:
        (the site's new state dict on the CPU, the metrics of the protocol, skipped files).

    Raises:
        PrivacyBudgetSpentError: with DP-SGD, when not one more step fits in the epsilon
            budget (the run's or, with a policy, the total); nothing is trained.
    """
    privacy = PrivacySettings.from_config(config).dp_sgd
    if privacy.enabled and budget is not None:
        privacy = budget.settings_in_force(privacy)
    if privacy.enabled and accountant is None:
        raise ValueError("DP-SGD training needs the site's accountant (from context.state)")
    # One seed per (run, round, site): resumed and uninterrupted runs draw the same.
    seed = instructions.seed * 100_003 + instructions.server_round * 101 + _site_number(site)
    train_data = training_dataset(list(site.train_files), config, seed)
    if len(train_data) == 0:
        raise SiteDataError(f"site {site.site_id}: no usable training data; {_why(train_data)}")
    train_config = _train_config(config, instructions, seed)
    rate, charged_steps = 0.0, 0  # charged_steps: this run's steps in the ledger once charged
    if privacy.enabled:
        from cardiomm.privacy import dp_sgd

        rate = dp_sgd.site_sample_rate(privacy, train_config.batch_size, train_data)
        planned = int(OmegaConf.select(config, "federation.num_rounds", default=1))
        privacy = dp_sgd.calibrated(privacy, rate, planned * instructions.local_steps)
        if budget is not None:
            budget.check_noise(privacy)
        dp_sgd.check_budget(accountant, privacy, rate)  # before anything is built
        if budget is not None:
            train_config = _charged(train_config, budget, accountant, privacy, rate)
            charged_steps = accountant.steps + train_config.max_steps
    began = time.perf_counter()
    network, encoder = build(config, coil_batching=False if privacy.enabled else None)
    network.load_state_dict(global_state, strict=True)
    build_seconds = time.perf_counter() - began
    validation = _validation_data(site, config)
    result = train_model(
        network,
        encoder,
        train_data,
        train_config,
        validation,
        reference_weights=global_state if instructions.proximal_mu else None,
        show_progress=False,
        privacy=privacy if privacy.enabled else None,
        accountant=accountant,
    )
    if accountant is not None and accountant.steps < charged_steps:
        # The ledger holds the steps granted before training; they stay spent.
        logger.warning(
            "DP-SGD: %d of the steps charged to the ledger were not taken; they stay charged",
            charged_steps - accountant.steps,
        )
        accountant.step(privacy.noise_multiplier, rate, charged_steps - accountant.steps)
    skipped = _skipped(train_data) + (_skipped(validation) if validation is not None else [])
    metrics = {
        # FedAvg's n_k: the site's training slices. Every site takes the same local steps, so
        # the slices it saw this round (slices-seen) would weigh all sites alike.
        NUM_EXAMPLES: float(len(train_data)),
        SLICES_SEEN: float(result.examples),
        LOSS: result.loss,
        FINAL_LOSS: result.final_loss,
        STEPS: float(result.steps),
        SKIPPED_STEPS: float(result.skipped_steps),
        TRAIN_SECONDS: result.seconds,
        VAL_PSNR: result.validation.get("psnr", NAN),
        VAL_SSIM: result.validation.get("ssim", NAN),
        VAL_NMSE: result.validation.get("nmse", NAN),
        BAD_FILE_COUNT: float(len(skipped)),
        FIELD_STRENGTH: site.field_strengths[0] if site.field_strengths else NAN,
        BUILD_SECONDS: build_seconds,
        TRAINABLE_PARAMETERS: float(result.trainable_parameters),
    }
    if privacy.enabled:
        metrics.update(_privacy_metrics(privacy, accountant, rate, site, result.loss, budget))
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    return state, metrics, skipped


def evaluate_site(
    site: SiteData,
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder = network_from_config,
) -> dict[str, float]:
    """The global model's scores on the site's validation split (NaN when it has none)."""
    started = time.perf_counter()
    validation = _validation_data(site, config)
    if validation is None or len(validation) == 0:
        return {NUM_EXAMPLES: 0.0, PSNR: NAN, SSIM: NAN, NMSE: NAN, EVAL_SECONDS: 0.0}
    result, build_seconds = _scores(validation, global_state, config, build)
    mean = result.mean()
    return {
        NUM_EXAMPLES: float(len(validation)),
        PSNR: float(mean["psnr"]),
        SSIM: float(mean["ssim"]),
        NMSE: float(mean["nmse"]),
        EVAL_SECONDS: time.perf_counter() - started,
        BUILD_SECONDS: build_seconds,
    }


def score_files(
    site: SiteData,
    files: tuple[Path, ...],
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder = network_from_config,
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """The scores of the model ``global_state`` on ``files``, overall and per group.

    What an evaluation-only site returns for the global model (``files``: all of its files)
    and any site for a model of the cross-site matrix (its test split). The masks are the
    configured evaluation masks (fixed and seeded, the same at every run), the images the
    challenge's ranking selection, the metrics the official ones, averaged per file and then
    over files, as ``cardiomm evaluate`` does.

    Returns:
        (``num-examples`` (images scored), ``psnr`` / ``ssim`` / ``nmse`` over all of them,
        ``eval-seconds``, and per (modality, cardiac view, setting) group
        ``<metric>/<group>`` with ``images/<group>``; the files skipped).

    Raises:
        SiteDataError: no usable image in ``files`` (none given: ``num-examples`` 0, NaN
            scores).
    """
    started = time.perf_counter()
    if not files:  # e.g. a small site without test patients: nothing to score, no failure
        return {NUM_EXAMPLES: 0.0, PSNR: NAN, SSIM: NAN, NMSE: NAN, EVAL_SECONDS: 0.0}, []
    dataset = evaluation_dataset(list(files), config)
    if len(dataset) == 0:
        raise SiteDataError(f"site {site.site_id}: nothing to score on; {_why(dataset)}")
    result, build_seconds = _scores(dataset, global_state, config, build)
    mean = result.mean()
    metrics = {
        NUM_EXAMPLES: float(len(result.records)),
        PSNR: float(mean["psnr"]),
        SSIM: float(mean["ssim"]),
        NMSE: float(mean["nmse"]),
    }
    for row in result.summary(group_by=("modality", "cardiac_view", "mask")):
        group = breakdown_group(row["modality"], row["cardiac_view"], row["mask"])
        metrics[breakdown_key("images", group)] = float(row["images"])
        for metric in ("psnr", "ssim", "nmse"):
            metrics[breakdown_key(metric, group)] = float(row[metric])
    metrics[EVAL_SECONDS] = time.perf_counter() - started
    metrics[BUILD_SECONDS] = build_seconds
    return metrics, _skipped(dataset)


def _scores(
    dataset: SliceDataset,
    global_state: dict[str, torch.Tensor],
    config: Any,
    build: NetworkBuilder,
) -> tuple[EvaluationResult, float]:
    """(the official per-image scores of the model ``global_state`` on ``dataset``, the
    seconds its network and text encoder took to build)."""
    began = time.perf_counter()
    network, encoder = build(config)
    network.load_state_dict(global_state, strict=True)
    build_seconds = time.perf_counter() - began
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network.to(device)
    result = evaluate_reconstructor(
        NetworkReconstructor(network, encoder), dataset, device=device, show_progress=False
    )
    return result, build_seconds


def _train_config(config: Any, instructions: RoundInstructions, seed: int) -> TrainConfig:
    train_settings = config_section(config, "train")
    train_settings.update(
        max_steps=instructions.local_steps,
        learning_rate=instructions.learning_rate,
        proximal_mu=instructions.proximal_mu,
        seed=seed,
        validate_every=0,
    )
    return TrainConfig.from_mapping(train_settings)


def _charged(
    train_config: TrainConfig,
    budget: SiteBudget,
    accountant: SiteAccountant,
    privacy: DPSGDSettings,
    rate: float,
) -> TrainConfig:
    """``train_config`` with the steps the site's ledger granted and charged (both caps,
    one atomic step: cardiomm/privacy/site_budget.py); none left is PrivacyBudgetSpentError
    (nothing is built, trained or charged)."""
    wanted = train_config.max_steps
    allowed = budget.charge(accountant, privacy, rate, wanted)
    if allowed < wanted:
        logger.warning("DP-SGD: the site's budget allows %d of %d steps", allowed, wanted)
    return dataclasses.replace(train_config, max_steps=allowed)


def _privacy_metrics(
    privacy: DPSGDSettings,
    accountant: SiteAccountant,
    rate: float,
    site: SiteData,
    loss: float,
    budget: SiteBudget | None = None,
) -> dict[str, float]:
    """The DP-SGD numbers of the reply; the training losses are withheld.

    The loss is an exact function of the private training slices, released without noise:
    reporting it would step outside the (epsilon, delta) the site reports. It stays in the
    site's own log. The validation scores concern the validation patients, whom DP-SGD does
    not cover anyway (they are not trained on).
    """
    from cardiomm.privacy import dp_sgd

    epsilon = accountant.epsilon(privacy.delta)
    exhausted = (
        privacy.epsilon_budget is not None
        and dp_sgd.affordable_steps(accountant, privacy, rate, 1) == 0
    ) or (
        budget is not None
        and budget.affordable_steps(accountant, privacy.noise_multiplier, rate, 1) == 0
    )
    logger.info(
        "site %s: DP-SGD epsilon %.4g (delta %.3g) after %d steps, training loss %.4f%s",
        site.site_id,
        epsilon,
        privacy.delta,
        accountant.steps,
        loss,
        "; the epsilon budget is spent, the site trains no more" if exhausted else "",
    )
    return {
        LOSS: NAN,
        FINAL_LOSS: NAN,
        DP_EPSILON: epsilon,
        DP_DELTA: privacy.delta,
        DP_STEPS: float(accountant.steps),
        DP_BUDGET_EXHAUSTED: float(exhausted),
        # With a policy: the site's epsilon over every run of its ledger and its caps.
        **(_ledger_metrics(budget, accountant) if budget is not None else {}),
    }


def _ledger_metrics(budget: SiteBudget, accountant: SiteAccountant) -> dict[str, float]:
    policy = budget.policy
    return {
        DP_EPSILON_TOTAL: budget.total_epsilon(accountant),
        DP_EPSILON_TOTAL_CAP: NAN if policy.max_epsilon_total is None else policy.max_epsilon_total,
        DP_EPSILON_RUN_CAP: NAN
        if policy.max_epsilon_per_run is None
        else policy.max_epsilon_per_run,
    }


def skipped_files_json(skipped: list[dict[str, str]]) -> str:
    return json.dumps(skipped)


def _validation_data(site: SiteData, config: Any) -> SliceDataset | None:
    return evaluation_dataset(list(site.val_files), config) if site.val_files else None


def _skipped(dataset: SliceDataset) -> list[dict[str, str]]:
    return [{"path": str(bad.path), "reason": bad.reason} for bad in dataset.bad_files]


def _why(dataset: SliceDataset) -> str:
    """The skipped files of an empty dataset, in a few words."""
    skipped = dataset.bad_files
    if not skipped:
        return "its split holds no images"
    shown = "; ".join(f"{bad.path.name}: {bad.reason}" for bad in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"{len(skipped)} file(s) skipped ({shown}{more})"


def _site_number(site: SiteData) -> int:
    digits = "".join(character for character in site.site_id if character.isdigit())
    return int(digits) if digits else 0
