"""``cardiomm mask``: make one CMRxRecon 2025 mask, print its real sampling rate, plot it."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "mask"
HELP = "Make an undersampling mask (Uniform, ktGaussian, ktRadial), report its true rate, plot it."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pattern", default="ktGaussian", help="Uniform | ktGaussian | ktRadial")
    parser.add_argument("--acceleration", type=int, default=8, help="nominal R (default 8)")
    parser.add_argument(
        "--matrix",
        type=int,
        nargs=2,
        default=(246, 512),
        metavar=("KY", "KX"),
        help="k-space size: phase-encode lines and readout samples (default 246 512)",
    )
    parser.add_argument("--frames", type=int, default=12, help="frames (default 12)")
    parser.add_argument("--acs-width", type=int, default=20, help="ACS lines / square side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ktGaussian draws")
    parser.add_argument(
        "--reference-matrix",
        type=int,
        nargs=2,
        default=None,
        metavar=("KY", "KX"),
        help="make the mask as hard as the same setting on this full-size matrix (ACS "
        "scaled with ky, radial beams matched; e.g. 246 512)",
    )
    parser.add_argument("--png", type=Path, help="write a picture of the mask here")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cardiomm.masks import make_mask
    from cardiomm.progress import make_console

    mask = make_mask(
        args.pattern,
        args.acceleration,
        tuple(args.matrix),
        num_frames=args.frames,
        acs_width=args.acs_width,
        seed=args.seed,
        reference_matrix=tuple(args.reference_matrix) if args.reference_matrix else None,
    )
    table = Table(title=f"{mask.name} on {args.matrix[0]} x {args.matrix[1]}, {args.frames} frames")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("nominal acceleration", f"{mask.acceleration}")
    table.add_row("ACS lines / square side", f"{mask.acs_width}")
    table.add_row("true acceleration (ACS included)", f"{mask.true_acceleration:.2f}")
    table.add_row("sampling fraction", f"{mask.sampling_fraction:.4f}")
    fractions = mask.frame_sampling_fractions
    table.add_row("per-frame fraction min / max", f"{fractions.min():.4f} / {fractions.max():.4f}")
    table.add_row("undersampling text", mask.text)
    console = make_console()
    console.print(table)
    if args.png:
        from cardiomm.masks.plot import save_mask_figure

        save_mask_figure(mask, args.png)
        console.print(f"mask picture written to {args.png}")
    return 0
