"""A site's round: load the global weights, train locally, validate, report numbers only."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any

import torch
from omegaconf import OmegaConf

from cardiomm.data.dataset import SliceDataset
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network, build_text_encoder_for
from cardiomm.model.network import CardioMMNet
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.text import TextEncoder
from cardiomm.train import TrainConfig, evaluate_reconstructor, train_model
from client.site import SiteData
from simulations.training import evaluation_dataset, training_dataset

NAN = float("nan")


@dataclasses.dataclass
class RoundInstructions:
    """What the server asked for this round (docs/federation-protocol.md)."""

    server_round: int
    local_steps: int
    learning_rate: float
    proximal_mu: float
    seed: int


def build_site_network(config: Any) -> tuple[CardioMMNet, TextEncoder | None]:
    """The network the federation trains, with its (cached, frozen) text encoder."""
    model_config = ModelConfig.from_mapping(OmegaConf.to_container(config.model, resolve=True))
    encoder = _text_encoder(model_config, OmegaConf.to_yaml(config.text, resolve=True))
    return build_network(model_config, encoder), encoder


@functools.lru_cache(maxsize=2)
def _text_encoder(model_config: ModelConfig, text_yaml: str) -> TextEncoder | None:
    # Loaded once per process: a simulated site keeps its encoder across rounds.
    return build_text_encoder_for(model_config, OmegaConf.to_container(OmegaConf.create(text_yaml)))


def train_site(
    site: SiteData,
    global_state: dict[str, torch.Tensor],
    instructions: RoundInstructions,
    config: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[dict[str, str]]]:
    """Train the global model on the site's train split and validate it.

    Returns:
        (the site's new state dict on the CPU, the metrics of the protocol, skipped files).
    """
    network, encoder = build_site_network(config)
    network.load_state_dict(global_state, strict=True)
    # One seed per (run, round, site): resumed and uninterrupted runs draw the same.
    seed = instructions.seed * 100_003 + instructions.server_round * 101 + _site_number(site)
    train_data = training_dataset(list(site.train_files), config, seed)
    validation = _validation_data(site, config)
    train_settings = OmegaConf.to_container(config.train, resolve=True)
    train_settings.update(
        max_steps=instructions.local_steps,
        learning_rate=instructions.learning_rate,
        proximal_mu=instructions.proximal_mu,
        seed=seed,
        validate_every=0,
    )
    result = train_model(
        network,
        encoder,
        train_data,
        TrainConfig.from_mapping(train_settings),
        validation,
        reference_weights=global_state if instructions.proximal_mu else None,
        show_progress=False,
    )
    skipped = _skipped(train_data) + (_skipped(validation) if validation is not None else [])
    metrics = {
        "num-examples": float(result.examples),
        "loss": result.loss,
        "final-loss": result.final_loss,
        "steps": float(result.steps),
        "skipped-steps": float(result.skipped_steps),
        "train-seconds": result.seconds,
        "val-psnr": result.validation.get("psnr", NAN),
        "val-ssim": result.validation.get("ssim", NAN),
        "val-nmse": result.validation.get("nmse", NAN),
        "bad-files": float(len(skipped)),
        "field-strength": site.field_strengths[0] if site.field_strengths else NAN,
    }
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    return state, metrics, skipped


def evaluate_site(
    site: SiteData, global_state: dict[str, torch.Tensor], config: Any
) -> dict[str, float]:
    """The global model's scores on the site's validation split (NaN when it has none)."""
    started = time.perf_counter()
    validation = _validation_data(site, config)
    if validation is None or len(validation) == 0:
        return {"num-examples": 0.0, "psnr": NAN, "ssim": NAN, "nmse": NAN, "eval-seconds": 0.0}
    network, encoder = build_site_network(config)
    network.load_state_dict(global_state, strict=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network.to(device)
    result = evaluate_reconstructor(
        NetworkReconstructor(network, encoder), validation, device=device, show_progress=False
    )
    mean = result.mean()
    return {
        "num-examples": float(len(validation)),
        "psnr": float(mean["psnr"]),
        "ssim": float(mean["ssim"]),
        "nmse": float(mean["nmse"]),
        "eval-seconds": time.perf_counter() - started,
    }


def skipped_files_json(skipped: list[dict[str, str]]) -> str:
    return json.dumps(skipped)


def _validation_data(site: SiteData, config: Any) -> SliceDataset | None:
    return evaluation_dataset(list(site.val_files), config) if site.val_files else None


def _skipped(dataset: SliceDataset) -> list[dict[str, str]]:
    return [{"path": str(bad.path), "reason": bad.reason} for bad in dataset.bad_files]


def _site_number(site: SiteData) -> int:
    digits = "".join(character for character in site.site_id if character.isdigit())
    return int(digits) if digits else 0
