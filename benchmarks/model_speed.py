"""Model speed and memory benchmark: parameters, train step, inference per slice, peak memory.

Run from the repository root::

    .venv/bin/python benchmarks/model_speed.py                      # tiny + paper, auto device
    .venv/bin/python benchmarks/model_speed.py --device cpu cuda --json speed.json
    .venv/bin/python benchmarks/model_speed.py --sizes paper --matrix 204 512 --device cuda

What is measured, per model size, device, precision and (training only) gradient checkpointing:

- train step: forward + (1 - SSIM) loss + backward + AdamW step, the way
  ``cardiomm.train.loop`` does it (without its gradient clipping and finiteness check);
- inference: one forward pass in eval mode under ``torch.no_grad``, divided by the batch size;
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (weights, gradients, AdamW state,
  inputs and activations: everything the process allocated on the GPU); on the CPU the peak
  resident set size (``VmHWM``) above the process's resident size just before the network is
  built, so the import of torch and the other libraries is not counted.

Every measurement runs in a fresh subprocess, so its high-water mark (and its CUDA caching
allocator) belongs to it alone and a crash or out-of-memory in one does not stop the others.
Times are medians over ``--repeats`` steps after ``--warmup`` steps.

The text encoder is not part of the timed work: every distinct text is embedded once and
cached, so the per-step ``encode`` call the training loop makes is a cache lookup. The default
``--text none`` therefore times the same network work as MiniLM or CLIP would, except for the
metadata adapters, which the ``none`` encoder leaves out (the paper's CardioSM ablation);
``--text minilm`` builds them. The parameter table also gives the count for the paper's own
text setting (CLIP's 512-d embeddings with metadata), which needs no encoder to compute.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SIZES = ("tiny", "small", "paper")
TEXT_ENCODERS = ("none", "minilm", "clip")
PRECISIONS = ("fp32", "bf16")
CHECKPOINTING_CHOICES = ("auto", "config", "on", "off", "both")
# A cine short-axis slice after readout-oversampling removal: 204 phase-encode lines by
# 256 readout samples (distributed as 204 x 512); --matrix 204 512 gives the full readout.
DEFAULT_MATRIX = (204, 256)
DEFAULT_COILS = 10
# Mask and texts of the timed slice; the pattern does not change the work the network does.
MASK_PATTERN, MASK_ACCELERATION = "ktGaussian", 8
UNDERSAMPLING_TEXT = "Undersampling: 8x random."
METADATA_TEXT = (
    "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis."
)
# The released training setting (AdamW lr 2e-4, weight decay 0.01).
LEARNING_RATE, WEIGHT_DECAY = 2e-4, 0.01
# (warm-up, repeats) when not given: the paper model takes about 25 s per CPU train step on
# two cores, so the CPU defaults keep the whole default run within about five minutes.
DEFAULT_COUNTS = {
    ("cpu", "tiny"): (2, 5),
    ("cpu", "small"): (1, 3),
    ("cpu", "paper"): (1, 2),
    ("cuda", "tiny"): (3, 10),
    ("cuda", "small"): (3, 10),
    ("cuda", "paper"): (3, 10),
}
RESULT_MARKER = "MODEL_SPEED_RESULT "
# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets, by a
# fragment of torch.cuda.get_device_name (checked in order: more specific names first).
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
}
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement, run in its own subprocess.

    Attributes:
        size: model preset in configs/model (tiny, small, paper).
        device: ``cpu`` or ``cuda``.
        precision: ``fp32`` or ``bf16`` (bf16 autocast, CUDA only).
        mode: ``train`` (one optimiser step) or ``infer`` (one no-grad forward pass).
        checkpointing: gradient checkpointing of the cascades (training only).
        matrix: (ky, kx) k-space size.
        coils: receiver coils.
        batch: slices per step.
        warmup: untimed steps first.
        repeats: timed steps.
        text: text encoder name.
        clip_path: local CLIP checkpoint folder (``text == "clip"`` only).
        seed: seed of the weights and the synthetic k-space.
        threads: torch CPU threads (None: torch's default, one per core).
        acs_width: ACS lines of the timed mask (the learned sensitivities work on them).
    """

    size: str
    device: str
    precision: str
    mode: str
    checkpointing: bool
    matrix: tuple[int, int]
    coils: int
    batch: int
    warmup: int
    repeats: int
    text: str
    clip_path: str | None = None
    seed: int = 0
    threads: int | None = None
    acs_width: int = 20

    def label(self) -> str:
        checkpointing = f" ckpt={'on' if self.checkpointing else 'off'}"
        return (
            f"{self.size} {self.device} {self.precision} {self.mode}"
            f"{checkpointing if self.mode == 'train' else ''}"
        )


# --------------------------------------------------------------------------------------------
# Worker: one measurement in a fresh process.
# --------------------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int | None:
    """A ``VmRSS`` / ``VmHWM`` figure of this process in KiB, or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses.

    Without it the peak could still be the import's, which is hardly ever above what a
    model step needs; the subprocess per measurement already keeps other steps out.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class _SyntheticSlices:
    """The timed step's inputs: a batch of random slices (the network's work depends on the
    shapes, not on the values).

    Attributes:
        masked_kspace: (batch, coils, ky, kx) complex, undersampled.
        mask: (batch, ky, kx) float32 sampling mask.
        target: (batch, ky, kx) float32 RSS image of the fully sampled k-space.
        metadata_texts: the metadata text, once per slice.
        undersampling_texts: the undersampling text, once per slice.
    """

    masked_kspace: Any
    mask: Any
    target: Any
    metadata_texts: list[str]
    undersampling_texts: list[str]

    def to(self, device: Any) -> _SyntheticSlices:
        """These inputs on ``device``."""
        return dataclasses.replace(
            self,
            masked_kspace=self.masked_kspace.to(device),
            mask=self.mask.to(device),
            target=self.target.to(device),
        )


def run_case(case: Case) -> dict[str, Any]:
    """Build the network and synthetic inputs, time ``case.mode`` and measure peak memory."""
    import torch

    from cardiomm.config import load_config
    from cardiomm.model.config import ModelConfig
    from cardiomm.model.factory import build_network
    from cardiomm.model.reconstructor import NetworkReconstructor
    from cardiomm.text import build_text_encoder
    from cardiomm.train.runtime import select_device

    device = select_device(case.device)
    if case.threads:
        torch.set_num_threads(case.threads)
    torch.manual_seed(case.seed)
    model_config = dataclasses.replace(
        ModelConfig.from_mapping(load_config([f"model={case.size}"]).model),
        gradient_checkpointing=case.checkpointing,
    )
    encoder = build_text_encoder(case.text, clip_path=case.clip_path)
    # Embed the two texts now: the encoder's first call loads / runs its model, every later
    # call is the cache lookup that the timed steps make.
    encoder.encode([UNDERSAMPLING_TEXT, METADATA_TEXT])
    inputs = _synthetic_slices(case)
    baseline_kib = _reset_peak_memory(device)
    # Inputs are counted on CUDA (moved after the reset) and not on the CPU (made before the
    # baseline): a few tens of MiB at most, next to weights and activations.
    inputs = inputs.to(device)
    network = build_network(model_config, encoder).to(device)
    step = _step(case, network, NetworkReconstructor(network, encoder), inputs, device)
    times, last_value = _time_steps(step, case.warmup, case.repeats, device)
    result = _timing_result(case, times, last_value, _step_flops(step))
    result["parameters"] = _parameter_counts(network, encoder)
    result["torch_threads"] = torch.get_num_threads()
    result.update(_peak_memory(device, baseline_kib))
    return result


def _synthetic_slices(case: Case) -> _SyntheticSlices:
    """Random k-space of ``case``'s shape (seeded), undersampled with the benchmark's mask,
    on the CPU."""
    import torch

    from cardiomm.masks import make_mask
    from cardiomm.physics import ifft2c, rss

    num_ky, num_kx = case.matrix
    generator = torch.Generator().manual_seed(case.seed)
    shape = (case.batch, case.coils, num_ky, num_kx)
    full_kspace = torch.complex(
        torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    )
    mask_values = make_mask(
        MASK_PATTERN, MASK_ACCELERATION, case.matrix, acs_width=case.acs_width, seed=case.seed
    ).values
    mask = torch.from_numpy(mask_values[0]).to(torch.float32).repeat(case.batch, 1, 1)
    return _SyntheticSlices(
        masked_kspace=full_kspace * mask[:, None],
        mask=mask,
        target=rss(ifft2c(full_kspace)).to(torch.float32),
        metadata_texts=[METADATA_TEXT] * case.batch,
        undersampling_texts=[UNDERSAMPLING_TEXT] * case.batch,
    )


def _reset_peak_memory(device: Any) -> int | None:
    """Start the peak-memory count now: CUDA's peak statistics, or the CPU's high-water mark;
    the process's resident KiB at this point (None off Linux), the CPU peak's baseline."""
    import torch

    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_peak_rss()
    return _proc_status_kib("VmRSS")


def _step(
    case: Case, network: Any, reconstructor: Any, inputs: _SyntheticSlices, device: Any
) -> Callable[[], Any]:
    """The timed step of ``case.mode``: a training step (forward, loss, backward, optimiser
    step) or a no-grad forward pass; it returns a scalar tensor."""
    import torch

    from cardiomm.train.loss import reconstruction_loss
    from cardiomm.train.runtime import autocast

    bf16 = case.precision == "bf16"

    def forward() -> torch.Tensor:
        # The per-step encoder call, as in the training loop: a cache lookup.
        undersampling, metadata = reconstructor.embeddings(
            inputs.metadata_texts, inputs.undersampling_texts, device
        )
        with autocast(device, bf16):
            return network(inputs.masked_kspace, inputs.mask, undersampling, metadata)

    if case.mode == "train":
        network.train()
        optimiser = _trainer_optimiser(network)

        def step() -> torch.Tensor:
            optimiser.zero_grad(set_to_none=True)
            loss = reconstruction_loss(forward().float(), inputs.target)
            loss.backward()
            optimiser.step()
            return loss.detach()

        return step
    network.eval()

    def step() -> torch.Tensor:
        with torch.no_grad():
            return forward().mean()

    return step


def _parameter_counts(network: Any, encoder: Any) -> dict[str, Any]:
    """The network's parameter counts (total, one cascade, the sensitivity network) and the
    text settings they depend on."""
    from cardiomm.model.network import count_parameters

    return {
        "total": count_parameters(network),
        "per_cascade": count_parameters(network.cascades[0]),
        "sensitivity_net": count_parameters(network.sensitivity_net),
        "num_cascades": len(network.cascades),
        "text_dim": encoder.dim,
        "metadata_adapters": network.use_metadata,
    }


def _timing_result(case: Case, times: list[float], last_value: float, flops: int) -> dict[str, Any]:
    """The step times (seconds), their median, extremes and rates, and the step's FLOPs."""
    median = statistics.median(times)
    return {
        "times_s": times,
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "per_slice_s": median / case.batch,
        "images_per_s": case.batch / median,
        # Convolutions and matrix products as torch counts them (FFTs and elementwise work
        # not counted): a floor on the work, so achieved TFLOP/s is a floor too.
        "flops": flops,
        "tflops_per_s": flops / median / 1e12,
        "last_value": last_value,
    }


def _peak_memory(device: Any, baseline_kib: int | None) -> dict[str, Any]:
    """The peak since :func:`_reset_peak_memory`: CUDA's allocated and reserved bytes (and the
    GPU's name), or the CPU's resident peak above ``baseline_kib`` (nothing off Linux)."""
    import torch

    if device.type == "cuda":
        return {
            "peak_bytes": torch.cuda.max_memory_allocated(device),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
            "device_name": torch.cuda.get_device_name(device),
        }
    peak_kib = _proc_status_kib("VmHWM")
    if peak_kib is None or baseline_kib is None:
        return {}
    return {
        "peak_bytes": (peak_kib - baseline_kib) * 1024,
        "peak_rss_bytes": peak_kib * 1024,
        "baseline_rss_bytes": baseline_kib * 1024,
    }


def _step_flops(step: Callable[[], Any]) -> int:
    """Floating-point operations of one call of ``step`` (untimed; it changes the weights
    once more, after the timed calls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def bf16_peak_tflops(device_name: str) -> float | None:
    """Dense bf16 tensor-core peak (TFLOP/s, no sparsity) of a known GPU, by its name."""
    for fragment, peak in BF16_PEAK_TFLOPS.items():
        if fragment.lower() in device_name.lower():
            return peak
    return None


def _trainer_optimiser(network: Any) -> Any:
    """The optimiser the trainer of the imported tree builds (AdamW, lr 2e-4, weight decay
    0.01): ``cardiomm.train.loop.build_optimiser`` where the tree has it; plain AdamW as
    trees before it built inline."""
    import torch

    try:
        from cardiomm.train.loop import build_optimiser
    except ImportError:
        return torch.optim.AdamW(
            (p for p in network.parameters() if p.requires_grad),
            lr=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY,
        )
    from cardiomm.train.config import TrainConfig

    settings = TrainConfig(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    return build_optimiser(network, settings)


def _time_steps(
    step: Callable[[], Any], warmup: int, repeats: int, device: Any
) -> tuple[list[float], float]:
    """Wall time of each of ``repeats`` calls after ``warmup`` untimed ones.

    CUDA work is asynchronous, so the device is synchronised before and after each call.
    """
    import torch

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    value = None
    for _ in range(warmup):
        value = step()
    times = []
    for _ in range(repeats):
        synchronise()
        started = time.perf_counter()
        value = step()
        synchronise()
        times.append(time.perf_counter() - started)
    return times, float(value)


def worker_main(spec: str) -> int:
    """Entry of the subprocess: run one case, print its result as one marked JSON line."""
    data = json.loads(spec)
    data["matrix"] = tuple(data["matrix"])
    case = Case(**data)
    try:
        result = run_case(case)
    except Exception as error:  # reported in the table; the other cases still run
        message = f"{type(error).__name__}: {error}"
        if "out of memory" in str(error).lower():
            message = f"out of memory ({type(error).__name__})"
        result = {"error": message.splitlines()[0][:300]}
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Driver: plan the cases, run each in a subprocess, print tables.
# --------------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "CardioMM model speed and memory: parameters, train step time, inference time per "
            "slice, peak memory, for each model size on CPU and (when there is one) CUDA."
        )
    )
    _case_arguments(parser)
    _run_arguments(parser)
    arguments = parser.parse_args(argv)
    if min(arguments.matrix) < 16 or arguments.coils < 1 or arguments.batch < 1:
        parser.error("--matrix needs at least 16 x 16, --coils and --batch at least 1")
    if arguments.repeats is not None and arguments.repeats < 1:
        parser.error("--repeats must be at least 1")
    if arguments.warmup is not None and arguments.warmup < 0:
        parser.error("--warmup must be at least 0")
    if arguments.text == "clip" and not arguments.clip_path:
        parser.error("--text clip needs --clip-path (a local CLIP checkpoint folder)")
    return arguments


def _case_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: what is timed (model sizes, devices, k-space size, coils, batch)."""
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=["tiny", "paper"])
    parser.add_argument(
        "--device",
        nargs="+",
        choices=("auto", "cpu", "cuda"),
        default=["auto"],
        help="auto: CUDA if torch sees a GPU, else CPU; give 'cpu cuda' for both",
    )
    parser.add_argument(
        "--matrix",
        nargs=2,
        type=int,
        metavar=("KY", "KX"),
        default=list(DEFAULT_MATRIX),
        help="k-space size (default 204 256: cine without readout oversampling; 204 512 as "
        "distributed)",
    )
    parser.add_argument("--coils", type=int, default=DEFAULT_COILS)
    parser.add_argument("--batch", type=int, default=1, help="slices per step")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: how it is timed (precision, checkpointing, repeats, threads, baseline)."""
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=None,
        help="default: fp32 on CPU, fp32 and bf16 (autocast) on CUDA; bf16 is CUDA only",
    )
    parser.add_argument(
        "--checkpointing",
        choices=CHECKPOINTING_CHOICES,
        default="auto",
        help="gradient checkpointing for the train step; auto: on and off for paper on CUDA, "
        "the preset's setting otherwise; config: the preset's setting",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed steps (default depends on size/device)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps first (default: by size/device)"
    )
    parser.add_argument("--text", choices=TEXT_ENCODERS, default="none")
    parser.add_argument("--clip-path", default=None, help="local CLIP folder for --text clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per measurement (default: torch's, one per core); on a "
        "machine shared with other jobs fewer threads can be much faster",
    )
    parser.add_argument(
        "--acs-width", type=int, default=20, help="ACS lines of the timed mask (default 20)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="GIT_REF",
        help="also time the same cases on this commit (checked out in a temporary git "
        "worktree) and print both side by side with the speed-up; runs alternate between "
        "the two trees so that a change in the machine's load hits both",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def resolve_devices(requested: Sequence[str]) -> list[str]:
    """Expand ``auto``, drop duplicates, and refuse CUDA when torch sees no GPU."""
    import torch

    devices: list[str] = []
    for name in requested:
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda was asked for but torch sees no CUDA device")
        if name not in devices:
            devices.append(name)
    return devices


def preset_checkpointing(size: str) -> bool:
    """The ``gradient_checkpointing`` setting of configs/model/<size>.yaml."""
    from cardiomm.config import load_config

    return bool(load_config([f"model={size}"]).model.gradient_checkpointing)


def plan_cases(arguments: argparse.Namespace, devices: Sequence[str]) -> list[Case]:
    """Every measurement to run, in table order."""
    cases = []
    for size in arguments.sizes:
        preset = preset_checkpointing(size)
        for device in devices:
            precisions = arguments.precision or (["fp32", "bf16"] if device == "cuda" else ["fp32"])
            # bf16 autocast is CUDA-only in cardiomm.train.runtime; on CPU it would be fp32.
            precisions = [p for p in precisions if device == "cuda" or p == "fp32"]
            warmup, repeats = DEFAULT_COUNTS[(device, size)]
            warmup = warmup if arguments.warmup is None else arguments.warmup
            repeats = repeats if arguments.repeats is None else arguments.repeats
            settings = {
                "auto": [True, False] if device == "cuda" and size == "paper" else [preset],
                "config": [preset],
                "on": [True],
                "off": [False],
                "both": [True, False],
            }[arguments.checkpointing]
            common = {
                "size": size,
                "device": device,
                "matrix": tuple(arguments.matrix),
                "coils": arguments.coils,
                "batch": arguments.batch,
                "warmup": warmup,
                "repeats": repeats,
                "text": arguments.text,
                "clip_path": arguments.clip_path,
                "seed": arguments.seed,
                "threads": arguments.threads,
                "acs_width": arguments.acs_width,
            }
            for precision in precisions:
                for checkpointing in settings:
                    cases.append(
                        Case(
                            precision=precision, mode="train", checkpointing=checkpointing, **common
                        )
                    )
                # Checkpointing only acts in training: one inference per precision.
                cases.append(
                    Case(precision=precision, mode="infer", checkpointing=preset, **common)
                )
    if not cases:
        raise SystemExit("nothing to measure: bf16 autocast runs on CUDA only (add fp32 for CPU)")
    return cases


def run_in_subprocess(case: Case, tree: Path | None = None) -> dict[str, Any]:
    """Run ``case`` in a fresh interpreter; its result, or ``{"error": ...}``.

    Args:
        tree: a source tree whose ``cardiomm`` (and configs/) the worker imports instead of
            the installed one (PYTHONPATH goes before the editable install's finder).
    """
    spec = json.dumps(dataclasses.asdict(case))
    environment = dict(os.environ)
    if tree is not None:
        environment["PYTHONPATH"] = str(tree)
        environment.pop("CARDIOMM_CONFIG_DIR", None)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", spec],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        cwd=tree,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    # Killed (e.g. by the kernel's out-of-memory killer) before it could report.
    tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
    return {"error": f"worker exited with code {completed.returncode}: {tail}"[:300]}


def reference_parameters(size: str) -> dict[str, int]:
    """Trainable parameters with the paper's text setting: CLIP's 512-d embeddings and the
    metadata adapters (computable without the encoder)."""
    from cardiomm.config import load_config
    from cardiomm.model.config import ModelConfig
    from cardiomm.model.network import CardioMMNet, count_parameters

    config = ModelConfig.from_mapping(load_config([f"model={size}"]).model)
    network = CardioMMNet(config, text_dim=512, use_metadata=True)
    return {
        "total": count_parameters(network),
        "per_cascade": count_parameters(network.cascades[0]),
        "sensitivity_net": count_parameters(network.sensitivity_net),
        "num_cascades": len(network.cascades),
    }


def machine_info(devices: Sequence[str]) -> dict[str, Any]:
    """CPU model, cores, load, torch and CUDA versions, GPU name."""
    import torch

    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    if "cuda" in devices:
        info["gpu"] = torch.cuda.get_device_name(0)
        # fp32 convolutions on CUDA may use TF32 under torch's defaults.
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_precision"] = torch.get_float32_matmul_precision()
    return info


def _millions(count: int) -> str:
    return f"{count / 1e6:.3f} M" if count >= 1e5 else f"{count:,}"


def _seconds(result: dict[str, Any] | None, key: str) -> str:
    if result is None:
        return ""
    if "error" in result:
        return "[red]failed[/red]"
    value = result[key]
    text = f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    if key == "median_s" and len(result["times_s"]) > 1:
        low, high = result["min_s"], result["max_s"]
        spread = f"{low * 1e3:.0f}-{high * 1e3:.0f} ms" if high < 1 else f"{low:.1f}-{high:.1f} s"
        text += f" [dim]({spread})[/dim]"
    return text


def _memory(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    if "error" in result:
        return "[red]failed[/red]"
    if "peak_bytes" not in result:
        return "n/a"
    value = result["peak_bytes"] / MIB
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def print_report(
    console: Any,
    arguments: argparse.Namespace,
    cases: Sequence[Case],
    results: Sequence[dict[str, Any]],
    references: dict[str, dict[str, int]],
) -> None:
    """The parameter table and the speed / memory table."""
    console.print(parameter_table(arguments, cases, results, references))
    console.print(
        f"[dim]timed network: text encoder '{arguments.text}'"
        + (" (no metadata adapters)" if arguments.text == "none" else "")
        + "; last column: the paper's setting, CLIP text embeddings with metadata adapters.[/dim]"
    )
    console.print(speed_table(cases, results))
    console.print(compute_table(cases, results))
    ky, kx = arguments.matrix
    console.print(
        f"[dim]slice {ky} x {kx}, {arguments.coils} coils, batch {arguments.batch}; "
        "train step = forward + (1 - SSIM) + backward + AdamW; inference = no_grad eval forward "
        "(checkpointing does not apply); peak memory: CUDA max_memory_allocated (weights, "
        "grads, optimiser state, activations), CPU peak RSS (VmHWM) above the process before "
        "the network was built.[/dim]"
    )
    for case, result in zip(cases, results, strict=True):
        if "error" in result:
            console.print(f"[red]{case.label()}: {result['error']}[/red]")


def parameter_table(
    arguments: argparse.Namespace,
    cases: Sequence[Case],
    results: Sequence[dict[str, Any]],
    references: dict[str, dict[str, int]],
) -> Any:
    """Trainable parameters per size: the timed network's (total, per cascade, sensitivity
    network) and the paper's text setting's total."""
    from rich.table import Table

    parameters = Table(title="Trainable parameters")
    for column in ("size", "timed network", "per cascade", "sensitivity net", "CLIP 512-d + meta"):
        parameters.add_column(column, justify="left" if column == "size" else "right")
    for size in arguments.sizes:
        timed = next(
            (
                r["parameters"]
                for c, r in zip(cases, results, strict=True)
                if c.size == size and "parameters" in r
            ),
            None,
        )
        reference = references[size]
        parameters.add_row(
            size,
            _millions(timed["total"]) if timed else "n/a",
            _millions(timed["per_cascade"]) + f" x {timed['num_cascades']}" if timed else "n/a",
            _millions(timed["sensitivity_net"]) if timed else "n/a",
            _millions(reference["total"]),
        )
    return parameters


def speed_table(cases: Sequence[Case], results: Sequence[dict[str, Any]]) -> Any:
    """Per size, device and precision: the train step (one row per checkpointing setting)
    and its peak memory, inference per slice and its peak memory."""
    from rich.table import Table

    table = Table(title="Speed and peak memory (median over repeats, min-max in brackets)")
    for column in ("size", "device", "precision", "ckpt", "warm-up/repeats"):
        table.add_column(column)
    for column in ("train step", "train peak mem", "inference / slice", "infer peak mem"):
        table.add_column(column, justify="right")
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for case, result in zip(cases, results, strict=True):
        group = groups.setdefault((case.size, case.device, case.precision), {"train": []})
        if case.mode == "train":
            group["train"].append((case, result))
        else:
            group["infer"] = (case, result)
    for (size, device, precision), group in groups.items():
        infer_case, infer_result = group.get("infer", (None, None))
        rows = group["train"] or [(infer_case, None)]
        for index, (case, result) in enumerate(rows):
            first = index == 0
            table.add_row(
                size,
                device,
                precision,
                ("on" if case.checkpointing else "off") if result is not None else "",
                f"{case.warmup} / {case.repeats}",
                _seconds(result, "median_s"),
                _memory(result),
                _seconds(infer_result, "per_slice_s") if first else "",
                _memory(infer_result) if first else "",
            )
    return table


def compute_table(cases: Sequence[Case], results: Sequence[dict[str, Any]]) -> Any:
    """Work per step, achieved TFLOP/s, its share of the GPU's bf16 peak and images/s."""
    from rich.table import Table

    table = Table(title="Achieved compute (median step)")
    for column in ("size", "device", "precision", "ckpt", "mode"):
        table.add_column(column)
    for column in ("GFLOP / step", "TFLOP/s", "share of bf16 peak", "images / s"):
        table.add_column(column, justify="right")
    for case, result in zip(cases, results, strict=True):
        if "error" in result:
            continue
        peak = bf16_peak_tflops(result.get("device_name", "")) if case.device == "cuda" else None
        share = f"{100 * result['tflops_per_s'] / peak:.1f} %" if peak else "n/a"
        table.add_row(
            case.size,
            case.device,
            case.precision,
            ("on" if case.checkpointing else "off") if case.mode == "train" else "",
            case.mode,
            f"{result['flops'] / 1e9:.1f}",
            f"{result['tflops_per_s']:.3f}",
            share,
            f"{result['images_per_s']:.2f}",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.worker is not None:
        return worker_main(arguments.worker)
    from rich.console import Console

    # Off a terminal (a log, a pipe) rich would wrap the wide table at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=150)
    started = time.perf_counter()
    devices = resolve_devices(arguments.device)
    cases = plan_cases(arguments, devices)
    machine = machine_info(devices)
    _print_plan(console, arguments, devices, cases, machine)
    references = {size: reference_parameters(size) for size in arguments.sizes}
    results, baseline_results = _measure_cases(console, arguments, cases)
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    console.print()
    print_report(console, arguments, cases, results, references)
    if baseline_results:
        print_comparison(console, arguments, cases, baseline_results, results)
    elapsed = time.perf_counter() - started
    end_load = machine["load_average_end"]
    console.print(
        f"total {elapsed:.0f} s"
        + (
            f"; load average at the end {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}"
            if end_load
            else ""
        )
        + " (other jobs on the machine inflate CPU times)"
    )
    if arguments.json is not None:
        payload = {
            "settings": _settings(arguments, devices),
            "machine": machine,
            "reference_parameters_clip512_metadata": references,
            "results": _case_results(cases, results),
            "baseline": arguments.baseline,
            # Empty without --baseline (zipping it with the cases failed at the very end).
            "baseline_results": _case_results(cases, baseline_results) if baseline_results else [],
            "seconds": elapsed,
        }
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        console.print(f"wrote {arguments.json}")
    return 1 if any("error" in result for result in [*results, *baseline_results]) else 0


def _print_plan(
    console: Any,
    arguments: argparse.Namespace,
    devices: Sequence[str],
    cases: Sequence[Case],
    machine: dict[str, Any],
) -> None:
    """What is about to be measured, and on what machine."""
    ky, kx = arguments.matrix
    console.print(
        f"[bold]CardioMM model speed[/bold]: sizes {', '.join(arguments.sizes)} on "
        f"{', '.join(devices)}; slice {ky} x {kx}, {arguments.coils} coils, batch "
        f"{arguments.batch}; text encoder '{arguments.text}' (embeddings cached, not timed); "
        f"mask {MASK_PATTERN} R={MASK_ACCELERATION}; {len(cases)} measurements, each in a "
        "fresh subprocess."
    )
    load = machine["load_average_start"]
    console.print(
        f"CPU {machine['cpu_model']}, {machine['usable_cpus']} usable cores, torch "
        f"{machine['torch']} ({arguments.threads or machine['torch_threads']} threads)"
        + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
        + (f"; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else "")
    )
    if "cuda" not in devices:
        console.print("no GPU: the CPU figures only (torch sees no CUDA device)")


def _measure_cases(
    console: Any, arguments: argparse.Namespace, cases: Sequence[Case]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every case in this tree and, with ``--baseline``, in the baseline's too:
    (this tree's results, the baseline's; empty without one)."""
    with baseline_tree(arguments.baseline) as baseline:
        results, baseline_results = [], []
        for index, case in enumerate(cases, start=1):
            label = f"[{index}/{len(cases)}] {case.label()}"
            if baseline is None:
                results.append(_measure(console, case, label, None))
                continue
            # Alternate which tree goes first, so that a drift in load hits both alike.
            runs = {}
            for tree in [None, baseline] if index % 2 else [baseline, None]:
                name = f"{label} {'current' if tree is None else arguments.baseline}"
                runs[tree] = _measure(console, case, name, tree)
            results.append(runs[None])
            baseline_results.append(runs[baseline])
    return results, baseline_results


def _settings(arguments: argparse.Namespace, devices: Sequence[str]) -> dict[str, Any]:
    """The run's settings as the JSON file records them."""
    settings = {
        key: value for key, value in vars(arguments).items() if key not in ("worker", "json")
    }
    return {**settings, "devices": devices, "mask": [MASK_PATTERN, MASK_ACCELERATION]}


def _case_results(cases: Sequence[Case], results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each result with its case, as the JSON file records them."""
    return [
        {"case": dataclasses.asdict(case), **result}
        for case, result in zip(cases, results, strict=True)
    ]


def _measure(console: Any, case: Case, label: str, tree: Path | None) -> dict[str, Any]:
    """Run one case (in ``tree`` when given) and print its progress line."""
    console.print(
        f"{label} (warm-up {case.warmup}, repeats {case.repeats}) ...",
        end=" ",
        highlight=False,
        markup=False,
    )
    started = time.perf_counter()
    result = run_in_subprocess(case, tree)
    # The load while it ran tells how far other jobs may have inflated a CPU time.
    if hasattr(os, "getloadavg"):
        result["load_average_1min_after"] = os.getloadavg()[0]
    if "error" in result:
        console.print(f"[red]failed[/red] ({result['error']})")
        return result
    console.print(
        f"median {result['median_s']:.3f} s, peak {_memory(result)} "
        f"[dim]({time.perf_counter() - started:.0f} s wall"
        + (
            f", load {result['load_average_1min_after']:.1f}"
            if "load_average_1min_after" in result
            else ""
        )
        + ")[/dim]"
    )
    return result


@contextlib.contextmanager
def baseline_tree(reference: str | None) -> Iterator[Path | None]:
    """A temporary detached git worktree of ``reference`` (None: no baseline), removed after."""
    if reference is None:
        yield None
        return
    repository = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="cardiomm-baseline-") as folder:
        tree = Path(folder) / "tree"
        added = subprocess.run(
            ["git", "-C", str(repository), "worktree", "add", "--detach", str(tree), reference],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"--baseline {reference}: git worktree add failed: {added.stderr}")
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(repository), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
                check=False,
            )


def print_comparison(
    console: Any,
    arguments: argparse.Namespace,
    cases: Sequence[Case],
    baseline_results: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any]],
) -> None:
    """Baseline and current tree side by side: time per step or slice, parameters, speed-up."""
    from rich.table import Table

    table = Table(title=f"{arguments.baseline} versus the current tree (median over repeats)")
    for column in ("size", "device", "precision", "mode"):
        table.add_column(column)
    for column in ("parameters then / now", arguments.baseline, "current", "speed-up"):
        table.add_column(column, justify="right")
    for case, before, after in zip(cases, baseline_results, results, strict=True):
        key = "median_s" if case.mode == "train" else "per_slice_s"
        ratio = ""
        if "error" not in before and "error" not in after:
            ratio = f"{before[key] / after[key]:.2f}x"
        counts = [r["parameters"]["total"] if "parameters" in r else 0 for r in (before, after)]
        table.add_row(
            case.size,
            case.device,
            case.precision,
            "train step" if case.mode == "train" else "inference / slice",
            " / ".join(_millions(count) for count in counts),
            _seconds(before, key),
            _seconds(after, key),
            ratio,
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
