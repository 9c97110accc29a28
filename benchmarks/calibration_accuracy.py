"""How good the coil maps that seed CardioMM's sensitivity net are: the one-frame ACS seed,
the frames' seed (ESPIRiT in torch on the time-averaged k-space, and its low-resolution
alternative) and sigpy's ESPIRiT on the same time-averaged data, on a cine phantom with known
coil maps.

    .venv/bin/python benchmarks/calibration_accuracy.py
    .venv/bin/python benchmarks/calibration_accuracy.py --matrix 204 256 --frames 12 --device cuda

For each coil model (``blobs``: the test phantom's smooth Gaussian coils; ``loops``: the
synthetic data's Biot-Savart cardiac array around a torso of the phantom's size) and each mask
(Uniform 8x, ktGaussian 16x, ktRadial 24x, 20 ACS lines / a 20 x 20 square, CMRxRecon's
definitions) it prints:

- **map error**: relative error of the maps inside the object after removing the per-pixel
  phase by which maps are defined (tests/model/phantom.py ``map_error``), against the true
  maps normalised to RSS 1; for the one-frame seed, the mean over frames (each frame seeds
  its own maps in the 2D network);
- **SENSE PSNR**: mean over ``--sense-frames`` evenly spaced frames of the PSNR of one fixed
  reconstruction per frame, sigpy's CG-SENSE (``SenseRecon``, lamda ``--lamda``,
  ``--sense-iterations`` iterations) with that frame's mask and each set of maps, against the
  noise-free coil-combined image |x| RSS(S) over the whole field of view; the true maps
  (uncropped) for comparison. A crop (``crop 0.95``, as the classical baselines run ESPIRiT)
  zeros the maps outside the object, which a noise-free reference rewards: its background
  is exactly 0, as measured data's is not;
- **s / call**: median seconds of one estimate for the slice (all frames), torch on
  ``--device``, sigpy on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cardiomm.classical.calibration import EspiritSettings, espirit_maps
from cardiomm.metrics.image_quality import psnr
from cardiomm.model.calibration import EspiritOptions, estimate_sensitivities_from_frames
from cardiomm.model.sensitivities import estimate_sensitivities
from cardiomm.physics import rss
from tests.model.phantom import (
    cine_mask,
    coil_sensitivities,
    make_cine_problem,
)
from tests.model.phantom import map_error as phantom_map_error

MASKS = (("Uniform", 8), ("ktGaussian", 16), ("ktRadial", 24))
COIL_MODELS = ("blobs", "loops")
# The classical baselines' ESPIRiT crop (cardiomm.classical.calibration.EspiritSettings).
CROP = 0.95
# The phantom's torso spans 0.8 / 0.85 of the half field of view along y / x: a field of view
# that makes it the synthetic subject's torso in mm.
TORSO_SHARE = (0.8, 0.85)

Estimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Row:
    mask: str
    method: str
    map_error: float
    sense_psnr: float
    seconds: float


def loop_sensitivities(matrix: tuple[int, int], num_coils: int, seed: int = 5) -> torch.Tensor:
    """complex128 (coils, ky, kx): the synthetic data's cardiac array (anterior and posterior
    loops, Biot-Savart fields) around a sampled subject's torso centred in the image, scaled
    so that the largest RSS is 1."""
    from cardiomm.data.synthetic.coils import body_array, sensitivity_maps
    from cardiomm.data.synthetic.shapes import ImageGrid
    from cardiomm.data.synthetic.subjects import sample_subject

    body = sample_subject(np.random.default_rng(seed)).body
    body = dataclasses.replace(body, offset_mm=(0.0, 0.0), rotation_deg=0.0)
    field_y = body.depth / TORSO_SHARE[0]
    field_x = body.width / TORSO_SHARE[1]
    grid = ImageGrid(matrix[0], matrix[1], field_y / matrix[0], field_x / matrix[1])
    array = body_array(num_coils, body, np.random.default_rng([seed, 2]))
    maps = torch.from_numpy(sensitivity_maps(array, grid, np.array([0.0]))[0])
    maps = maps.to(torch.complex128)
    return maps / rss(maps, dim=0).max()


def estimators(device: str) -> dict[str, Estimator]:
    """name -> (masked (T, C, H, W), mask (T, H, W)) -> maps (T or 1, C, H, W) on the CPU."""

    def one_frame(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return estimate_sensitivities(masked.to(device), mask.to(device)).cpu()

    def frames(method: str, crop: float = 0.0) -> Estimator:
        def estimate(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            maps = estimate_sensitivities_from_frames(
                masked[None].to(device), mask[None].to(device), method, EspiritOptions(crop=crop)
            )
            return maps.cpu()

        return estimate

    def sigpy_espirit(crop: float) -> Estimator:
        def estimate(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            maps = espirit_maps(masked.numpy(), mask.numpy() > 0.5, EspiritSettings(crop=crop))
            return torch.from_numpy(maps)[None]

        return estimate

    return {
        "old: one frame's ACS, low-res": one_frame,
        "new: frames, ESPIRiT (torch)": frames("espirit"),
        "alt: frames, low-res": frames("acs_lowres"),
        "sigpy ESPIRiT, time-averaged": sigpy_espirit(0.0),
        f"new, crop {CROP}": frames("espirit", CROP),
        f"sigpy ESPIRiT, crop {CROP}": sigpy_espirit(CROP),
    }


def sense_psnr(
    masked: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor, reference: torch.Tensor, args
) -> float:
    """Mean of CG-SENSE's PSNR over ``--sense-frames`` evenly spaced frames; ``maps`` (T or 1,
    C, H, W)."""
    from sigpy.mri.app import SenseRecon

    scores = []
    count = min(args.sense_frames, masked.shape[0])
    for frame in np.linspace(0, masked.shape[0] - 1, count).round().astype(int).tolist():
        frame_maps = maps[frame if maps.shape[0] > 1 else 0].numpy().astype(np.complex64)
        image = SenseRecon(
            masked[frame].numpy(),
            frame_maps,
            lamda=args.lamda,
            weights=mask[frame].numpy(),
            max_iter=args.sense_iterations,
            show_pbar=False,
        ).run()
        scores.append(psnr(reference[frame].numpy(), np.abs(np.asarray(image))))
    return float(np.mean(scores))


def map_error(maps: torch.Tensor, truth: torch.Tensor, support: torch.Tensor) -> float:
    """Mean over the maps' frames of the phantom's map error."""
    return float(np.mean([phantom_map_error(frame, truth, support) for frame in maps]))


def timed(estimate: Estimator, masked: torch.Tensor, mask: torch.Tensor, repeats: int):
    """(maps, median seconds) of ``repeats`` calls after one warm-up."""
    maps = estimate(masked, mask)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimate(masked, mask)
        seconds.append(time.perf_counter() - start)
    return maps, statistics.median(seconds)


def run_coil_model(coil_model: str, args) -> list[Row]:
    matrix = tuple(args.matrix)
    if coil_model == "loops":
        sensitivities = loop_sensitivities(matrix, args.coils)
    else:
        sensitivities = coil_sensitivities(matrix, args.coils)
    problem = make_cine_problem(matrix, args.coils, args.frames, args.noise, sensitivities)
    truth = problem.sensitivities / rss(problem.sensitivities, dim=0)
    reference = problem.images.abs() * rss(problem.sensitivities, dim=0)
    rows = []
    for pattern, acceleration in MASKS:
        mask = cine_mask(pattern, acceleration, matrix, args.frames)
        masked = problem.kspace * mask[:, None]
        label = f"{pattern} {acceleration}x"
        for name, estimate in estimators(args.device).items():
            maps, seconds = timed(estimate, masked, mask, args.repeats)
            rows.append(
                Row(
                    label,
                    name,
                    map_error(maps, truth, problem.support),
                    sense_psnr(masked, mask, maps, reference.to(torch.float32), args),
                    seconds,
                )
            )
            print(f"  {coil_model} {label}: {name} done", file=sys.stderr, flush=True)
        ceiling = sense_psnr(masked, mask, truth[None], reference.to(torch.float32), args)
        rows.append(Row(label, "true maps", 0.0, ceiling, float("nan")))
    return rows


def print_table(coil_model: str, rows: Sequence[Row]) -> None:
    print(f"\ncoil model: {coil_model}")
    print(f"{'mask':<15} {'maps':<32} {'map error':>10} {'SENSE PSNR':>12} {'s / call':>9}")
    for row in rows:
        seconds = "" if np.isnan(row.seconds) else f"{row.seconds:9.3f}"
        print(
            f"{row.mask:<15} {row.method:<32} {row.map_error:10.4f} "
            f"{row.sense_psnr:9.2f} dB {seconds:>9}"
        )


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", type=int, nargs=2, default=(160, 192), metavar=("KY", "KX"))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--coils", type=int, default=10)
    parser.add_argument("--noise", type=float, default=2e-3, help="std per k-space sample")
    parser.add_argument("--coil-models", nargs="+", choices=COIL_MODELS, default=COIL_MODELS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lamda", type=float, default=1e-2, help="CG-SENSE's L2 weight")
    parser.add_argument("--sense-iterations", type=int, default=30)
    parser.add_argument("--sense-frames", type=int, default=4, help="frames reconstructed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    print(
        f"matrix {args.matrix[0]} x {args.matrix[1]}, {args.frames} frames, {args.coils} coils, "
        f"noise {args.noise:g}, device {args.device}, torch threads {args.threads}"
    )
    for coil_model in args.coil_models:
        print_table(coil_model, run_coil_model(coil_model, args))


if __name__ == "__main__":
    main()
