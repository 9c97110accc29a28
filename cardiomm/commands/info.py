"""``cardiomm info``: versions and compute devices, the first thing to send with a bug report."""

from __future__ import annotations

import argparse
import platform

NAME = "info"
HELP = "Show package versions and the compute devices this machine offers."

_PACKAGES = ("cardiomm-fl", "torch", "flwr", "opacus", "h5py", "hydra-core", "mlflow", "numpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    import torch
    from rich.table import Table

    from cardiomm.progress import make_console

    table = Table(title="CardioMM-FL environment")
    table.add_column("item")
    table.add_column("value")
    table.add_row("python", platform.python_version())
    for package in _PACKAGES:
        try:
            table.add_row(package, version(package))
        except PackageNotFoundError:
            table.add_row(package, "not installed")
    table.add_row("CUDA available", str(torch.cuda.is_available()))
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        table.add_row(
            f"cuda:{index}", f"{properties.name}, {properties.total_memory / 2**30:.1f} GiB"
        )
    make_console().print(table)
    return 0
