"""Build a network with the text encoder it needs, from config or from a checkpoint."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from cardiomm.config import config_section
from cardiomm.model.checkpoint import network_from_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.network import CardioMMNet
from cardiomm.model.reconstructor import NetworkReconstructor, WindowReconstructor
from cardiomm.model.vendor_personalised import VENDOR_PARTS_KEY, VendorPartsReconstructor
from cardiomm.text import TextEncoder, build_text_encoder, build_text_encoder_from_config


def build_network(
    config: ModelConfig, text_encoder: TextEncoder | None, seed: int = 0
) -> CardioMMNet:
    """A fresh network sized for ``text_encoder`` (None only for ``dcunet``).

    The initial weights are a function of ``seed`` alone: they are drawn from a forked,
    freshly seeded RNG, so neither what ran before (text encoder loading, data indexing)
    nor what runs after changes them or is changed by them.
    """
    if config.uses_text and text_encoder is None:
        raise ValueError("a cardiomm network needs a text encoder (text.name=minilm|clip|none)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if not config.uses_text:
            return CardioMMNet(config, text_dim=0, use_metadata=False)
        return CardioMMNet(
            config, text_dim=text_encoder.dim, use_metadata=text_encoder.conditions_on_metadata
        )


def network_from_config(
    config: Any, seed: int = 0, coil_batching: bool | None = None
) -> tuple[CardioMMNet, TextEncoder | None]:
    """The network a composed config describes (its ``model`` and ``text`` sections), with its
    frozen text encoder: what a site trains, the server aggregates and the harness trains.

    Args:
        config: a composed Hydra config (configs/config.yaml or configs/federation.yaml).
        seed: seed of the initial weights (see :func:`build_network`).
        coil_batching: override ``model.coil_batching`` (False for DP-SGD); it changes how
            the sensitivity net runs, not the weights, so state dicts fit either way.

    The encoder is built once per process and text setting: a simulated site keeps its
    encoder (and its embedding cache) across rounds.
    """
    values = config_section(config, "model")
    if coil_batching is not None:
        values["coil_batching"] = coil_batching
    model_config = ModelConfig.from_mapping(values)
    encoder = None
    if model_config.uses_text:
        encoder = _cached_encoder(tuple(sorted(config_section(config, "text").items())))
    return build_network(model_config, encoder, seed), encoder


@functools.lru_cache(maxsize=4)
def _cached_encoder(text: tuple[tuple[str, Any], ...]) -> TextEncoder:
    settings = dict(text)
    if "name" not in settings:
        raise ValueError("a cardiomm network needs a text encoder configuration (text.name)")
    return build_text_encoder_from_config(settings)


def encoder_settings(text_config: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder settings a checkpoint records (name, and the CLIP path if any)."""
    settings = {"name": text_config["name"]}
    if text_config.get("path"):
        settings["path"] = str(text_config["path"])
    return settings


def reconstructor_from_checkpoint(
    content: Mapping[str, Any], name: str | None = None, clip_path: str | None = None
) -> NetworkReconstructor | VendorPartsReconstructor | WindowReconstructor:
    """Network + its text encoder, ready to reconstruct (with the per-vendor parameters of a
    vendor-personalised model picked by each scan's metadata vendor; a frame-window model as
    a :class:`WindowReconstructor`, which takes a slice's frames together).

    Args:
        content: a read checkpoint (``read_checkpoint``).
        name: how reports call the method (default: from the checkpoint).
        clip_path: where the CLIP checkpoint lives on this machine, if not where it was.
    """
    network = network_from_checkpoint(content)
    text = content.get("text_encoder")
    encoder = None
    if text is not None:
        encoder = build_text_encoder(text["name"], clip_path=clip_path or text.get("path"))
        if encoder.dim != content["text_dim"]:
            raise ValueError(
                f"the {text['name']} encoder gives {encoder.dim}-d embeddings but the checkpoint "
                f"was trained with {content['text_dim']}-d ones"
            )
    extra = content.get("extra", {})
    method = name or extra.get("method") or network.config.architecture
    reconstructor: NetworkReconstructor | VendorPartsReconstructor = NetworkReconstructor(
        network, encoder, name=method
    )
    if extra.get(VENDOR_PARTS_KEY):
        # A vendor-personalised federated model: each scan gets its vendor's parameters.
        reconstructor = VendorPartsReconstructor(reconstructor, extra[VENDOR_PARTS_KEY])
    if network.is_temporal:
        # A frame-window model reconstructs a slice's frames together, each from its window.
        return WindowReconstructor(reconstructor, network)
    return reconstructor
