"""Model sizes and variants, from configs/model/*.yaml."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cardiomm.model.unet import UNetConfig

ARCHITECTURES = ("cardiomm", "dcunet")
# How the network uses a cine's time: ``none`` reconstructs each frame alone (the released
# CardioMM); ``window`` reconstructs frame t from frames t-r..t+r (cyclic), each kept
# consistent with its own mask (cardiomm/model/window.py).
TEMPORAL_DESIGNS = ("none", "window")
# What seeds the sensitivity net (ModelConfig.calibration).
CALIBRATIONS = ("acs", "espirit-frames")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What network to build.

    Attributes:
        architecture: ``cardiomm`` (text-conditioned) or ``dcunet`` (the same cascades with a
            plain U-Net: no prompts, no metadata, no texts).
        num_cascades: unrolled cascades K.
        image_net: sizes of each cascade's U-Net (its conditioning flags are set from the
            architecture and the text encoder).
        sensitivity_net: sizes of the sensitivity U-Net.
        embedding_dim: size of the projected text embeddings.
        gradient_checkpointing: recompute each cascade in the backward pass (saves memory).
        coil_batching: run the sensitivity net on all coils at once (turn off for DP).
        temporal: ``none`` (each frame alone) or ``window`` (frame t sees its neighbours
            t - window_radius .. t + window_radius, cyclic, as input channels).
        window_radius: neighbours on each side of the frame in a ``window`` network (>= 1;
            ignored by ``none``).
        calibration: what seeds the sensitivity net: ``acs`` (one frame's ACS region,
            Hamming-windowed, as the released CardioMM; the centre frame of a window) or
            ``espirit-frames`` (ESPIRiT on the time-averaged k-space of the frames the network
            sees, :func:`~cardiomm.model.calibration.estimate_sensitivities_from_frames`).
    """

    architecture: str = "cardiomm"
    num_cascades: int = 2
    image_net: UNetConfig = dataclasses.field(
        default_factory=lambda: UNetConfig(widths=(8, 12, 16, 20))
    )
    sensitivity_net: UNetConfig = dataclasses.field(
        default_factory=lambda: UNetConfig(widths=(4, 6, 8, 10))
    )
    embedding_dim: int = 256
    gradient_checkpointing: bool = False
    coil_batching: bool = True
    temporal: str = "none"
    window_radius: int = 2
    calibration: str = "acs"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.num_cascades < 1:
            raise ValueError(f"num_cascades must be >= 1, got {self.num_cascades}")
        if self.temporal not in TEMPORAL_DESIGNS:
            raise ValueError(f"temporal must be one of {TEMPORAL_DESIGNS}, got {self.temporal!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.temporal == "window" and self.window_radius < 1:
            raise ValueError(f"window_radius must be >= 1, got {self.window_radius}")

    @property
    def window_frames(self) -> int:
        """Frames the network sees per reconstructed frame: 1, or 2 * window_radius + 1."""
        return 2 * self.window_radius + 1 if self.temporal == "window" else 1

    @property
    def uses_text(self) -> bool:
        return self.architecture == "cardiomm"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build from a (Hydra / OmegaConf) mapping with nested ``image_net`` and
        ``sensitivity_net`` sections; unknown keys are an error naming them."""
        values = dict(values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - {"name"})
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        for key in ("image_net", "sensitivity_net"):
            if key in values and not isinstance(values[key], UNetConfig):
                values[key] = _unet_config(values[key])
        values.pop("name", None)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _unet_config(values: Mapping[str, Any]) -> UNetConfig:
    values = dict(values)
    known = {field.name for field in dataclasses.fields(UNetConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown U-Net config keys: {', '.join(unknown)}")
    for key in ("widths", "prompt_channels", "prompt_sizes"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])
    return UNetConfig(**values)
