"""The frame-window CardioMM against the 2D one at equal images seen: seconds per train step,
images per second, inference per image, parameters (and peak GPU memory on CUDA).

Run from the repository root::

    .venv/bin/python benchmarks/temporal_speed.py                    # tiny, CPU (+ CUDA if any)
    .venv/bin/python benchmarks/temporal_speed.py --sizes small --radius 1 2 --json t.json
    .venv/bin/python benchmarks/temporal_speed.py --sizes paper --device cuda

Both networks reconstruct (and are trained on) the same number of images per step, the
``--batch`` frames: the 2D network one frame per image, the window network each frame from
its window of 2 r + 1 frames, each frame with its own kt mask. A train step is forward +
(1 - SSIM) loss + backward + AdamW step, as ``cardiomm.train.loop`` takes it (bf16 autocast
when asked, gradient checkpointing of the cascades when asked); times are medians over
``--repeats`` steps after ``--warmup``. On CUDA every case runs in fp32 and in bf16, both
with gradient checkpointing (the ``paper`` preset's setting) and, with ``--checkpointing
both``, without. Synthetic random k-space; the text encoder is ``none`` (embeddings once).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = ("tiny", "small", "paper")
# A cine short-axis slice after readout-oversampling removal (as benchmarks/model_speed.py).
DEFAULT_MATRIX = (204, 256)
DEFAULT_COILS = 10
MASK_PATTERN, MASK_ACCELERATION, ACS_WIDTH = "ktGaussian", 8, 20
LEARNING_RATE, WEIGHT_DECAY = 2e-4, 0.01


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: a network design on a device in a precision.

    Attributes:
        size: model preset in configs/model (tiny, small, paper).
        radius: 0 for the 2D network, r for a window of 2 r + 1 frames.
        device: ``cpu`` or ``cuda``.
        bf16: bf16 autocast (CUDA only).
        checkpointing: gradient checkpointing of the cascades.
    """

    size: str
    radius: int
    device: str
    bf16: bool
    checkpointing: bool

    @property
    def design(self) -> str:
        return "2D (one frame)" if self.radius == 0 else f"window {2 * self.radius + 1} frames"

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"


def build_case_network(case: Case) -> Any:
    """The preset's network, 2D or with a frame window, checkpointing as the case says."""
    from cardiomm.config import load_config
    from cardiomm.model.config import ModelConfig
    from cardiomm.model.factory import build_network
    from cardiomm.text import build_text_encoder

    config = ModelConfig.from_mapping(load_config([f"model={case.size}"]).model)
    temporal = {"temporal": "window", "window_radius": case.radius} if case.radius else {}
    config = dataclasses.replace(config, gradient_checkpointing=case.checkpointing, **temporal)
    return build_network(config, build_text_encoder("none"), seed=0)


def synthetic_inputs(case: Case, arguments: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(masked k-space, masks, target) on the case's device: (B, C, H, W) / (B, H, W) for the
    2D network, (B, F, C, H, W) / (B, F, H, W) for a window, a kt mask per frame."""
    import numpy as np
    import torch

    from cardiomm.masks import make_mask

    frames = 2 * case.radius + 1
    generator = torch.Generator().manual_seed(0)
    shape = (arguments.batch, frames, arguments.coils, *arguments.matrix)
    kspace = torch.randn(*shape, generator=generator, dtype=torch.complex64)
    values = make_mask(
        MASK_PATTERN,
        MASK_ACCELERATION,
        tuple(arguments.matrix),
        num_frames=frames,
        acs_width=ACS_WIDTH,
    ).values
    masks = torch.from_numpy(values.astype(np.float32)).expand(arguments.batch, *values.shape)
    masked = kspace * masks[:, :, None]
    target = torch.rand(arguments.batch, *arguments.matrix, generator=generator)
    if case.radius == 0:
        masked, masks = masked[:, 0], masks[:, 0]
    device = torch.device(case.device)
    return masked.to(device), masks.contiguous().to(device), target.to(device)


def run_case(case: Case, arguments: argparse.Namespace) -> dict[str, Any]:
    """Parameters, train-step and inference times (and CUDA peak memory) of one case."""
    import torch

    from cardiomm.model.network import count_parameters
    from cardiomm.text import build_text_encoder
    from cardiomm.train.loss import reconstruction_loss
    from cardiomm.train.runtime import autocast

    device = torch.device(case.device)
    encoder = build_text_encoder("none")
    network = build_case_network(case).to(device)
    masked, masks, target = synthetic_inputs(case, arguments)
    undersampling = encoder.encode(["Undersampling: 8x random."] * arguments.batch).to(device)
    metadata = encoder.encode(["Adult cardiac MRI reconstruction."] * arguments.batch).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def train_step() -> None:
        network.train()
        optimiser.zero_grad(set_to_none=True)
        with autocast(device, case.bf16):
            output = network(masked, masks, undersampling, metadata)
        reconstruction_loss(output.float(), target).backward()
        optimiser.step()

    @torch.no_grad()
    def inference() -> None:
        network.eval()
        with autocast(device, case.bf16):
            network(masked, masks, undersampling, metadata)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train = _median_seconds(train_step, device, arguments.warmup, arguments.repeats)
    infer = _median_seconds(inference, device, arguments.warmup, arguments.repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        **dataclasses.asdict(case),
        "design": case.design,
        "parameters": count_parameters(network),
        "train_seconds_per_step": train,
        "train_images_per_second": arguments.batch / train,
        "inference_seconds_per_image": infer / arguments.batch,
        "peak_memory_mib": peak,
    }


def _median_seconds(step: Callable[[], None], device: Any, warmup: int, repeats: int) -> float:
    import torch

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        synchronise()
        start = time.perf_counter()
        step()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plan_cases(arguments: argparse.Namespace, devices: Sequence[str]) -> list[Case]:
    """2D and every window radius, per size and device; CUDA in fp32 and bf16, with
    checkpointing (and without, for ``--checkpointing both``); the CPU in fp32 as the preset
    says (no checkpointing: it saves memory, not time)."""
    cases = []
    for size in arguments.sizes:
        for device in devices:
            if device == "cuda":
                precisions = (False, True)
                checkpointing = (True, False) if arguments.checkpointing == "both" else (True,)
            else:
                precisions, checkpointing = (False,), (False,)
            for bf16 in precisions:
                for checkpoint in checkpointing:
                    for radius in (0, *arguments.radius):
                        cases.append(Case(size, radius, device, bf16, checkpoint))
    return cases


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=["tiny"])
    parser.add_argument(
        "--radius", nargs="+", type=int, default=[2], help="window radii r (2 r + 1 frames)"
    )
    parser.add_argument("--device", nargs="+", choices=("auto", "cpu", "cuda"), default=["auto"])
    parser.add_argument("--matrix", nargs=2, type=int, default=list(DEFAULT_MATRIX))
    parser.add_argument("--coils", type=int, default=DEFAULT_COILS)
    parser.add_argument("--batch", type=int, default=1, help="images per step (both designs)")
    parser.add_argument("--checkpointing", choices=("on", "both"), default="on")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    arguments = parser.parse_args(argv)
    for name in ("coils", "batch", "repeats"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(arguments, name)}")
    if min(arguments.radius) < 1 or min(arguments.matrix) < 16 or arguments.warmup < 0:
        parser.error("--radius must be >= 1, --matrix sides >= 16, --warmup >= 0")
    return arguments


def resolve_devices(requested: Sequence[str]) -> tuple[list[str], str | None]:
    """The devices to measure, and a note when CUDA was asked for (or auto) and is absent."""
    import torch

    has_cuda = torch.cuda.is_available()
    devices: list[str] = []
    for name in requested:
        wanted = ["cpu", "cuda"] if name == "auto" else [name]
        devices += [device for device in wanted if device not in devices]
    note = None
    if "cuda" in devices and not has_cuda:
        devices.remove("cuda")
        note = "no GPU: the CPU figures only"
        if not devices:
            devices = ["cpu"]
    return devices, note


def speed_table(results: Sequence[dict[str, Any]]) -> Any:
    """One row per case, with the window's step time relative to the 2D network's."""
    from rich.table import Table

    table = Table(title="frame-window CardioMM against 2D, equal images per step")
    for column in (
        "size", "device", "precision", "ckpt", "design", "params",
        "s/step", "images/s", "vs 2D", "infer s/image", "peak MiB",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    baseline: dict[tuple, float] = {}
    for result in results:
        key = (result["size"], result["device"], result["bf16"], result["checkpointing"])
        if result["radius"] == 0:
            baseline[key] = result["train_seconds_per_step"]
        base = baseline.get(key)
        ratio = f"{result['train_seconds_per_step'] / base:.2f}x" if base else "-"
        peak = result["peak_memory_mib"]
        table.add_row(
            result["size"],
            result["device"],
            "bf16" if result["bf16"] else "fp32",
            "on" if result["checkpointing"] else "off",
            result["design"],
            f"{result['parameters'] / 1e6:.2f}M",
            f"{result['train_seconds_per_step']:.3f}",
            f"{result['train_images_per_second']:.2f}",
            ratio,
            f"{result['inference_seconds_per_image']:.3f}",
            f"{peak:.0f}" if peak is not None else "n/a",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    import torch
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log or a pipe: keep the table's rows whole
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    devices, note = resolve_devices(arguments.device)
    if note:
        console.print(note)
    results = []
    for case in plan_cases(arguments, devices):
        console.print(f"measuring {case.size} {case.design} on {case.device} {case.precision}")
        results.append(run_case(case, arguments))
    console.print(speed_table(results))
    if arguments.json is not None:
        settings = {key: value for key, value in vars(arguments).items() if key != "json"}
        payload = {"settings": {**settings, "devices": devices}, "results": results}
        arguments.json.write_text(json.dumps(payload, indent=2, default=str))
        console.print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
