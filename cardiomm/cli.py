"""The ``cardiomm`` command: one sub-command per module in :mod:`cardiomm.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args)``;
importing a command module must stay cheap, so heavy imports happen inside ``run``. Packages
that build on cardiomm (simulations, server, ...) add commands through the entry-point group
``cardiomm.commands`` in pyproject.toml, so cardiomm never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from types import ModuleType

# Module names under cardiomm.commands, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "info",
    "mask",
    "make_synthetic",
    "reconstruct",
    "phenotype",
    "ledger",
)
COMMAND_ENTRY_POINTS = "cardiomm.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardiomm",
        description=(
            "CardioMM-FL: federated training of CardioMM, a text-conditioned unrolled network "
            "for cardiac MRI reconstruction from undersampled multi-coil k-space."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _command_modules() -> Iterator[ModuleType]:
    for module_name in COMMAND_MODULES:
        yield importlib.import_module(f"cardiomm.commands.{module_name}")
    for entry_point in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda e: e.name):
        yield entry_point.load()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, ValueError) as error:
        # User errors (bad path, bad option value) get one clear line, not a traceback.
        print(f"cardiomm {args.command}: error: {error}", file=sys.stderr)
        return 2


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cardiomm-fl")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
