"""Make the cross-site matrix of a finished simulated federation, training nothing.

The run's own overrides (its ``run_config.toml``, as `cardiomm simulate` writes it) are
replayed through `flwr run .` with ``federation.resume=true`` and the cross-site phase on: the
ServerApp finds every round done, and goes straight to the matrix (server/cross_site.py).
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import held_out_sites, internal_sites
from client.site_config import compose_site_config
from federation.config import RUN_CONFIG_OVERRIDES
from federation.protocol import NODE_SITE_CONFIG
from federation.records import read_history
from simulations.study.composition import hydra_value
from simulations.study.flower_run import RUN_CONFIG_FILE, FlowerRun, run_flower_simulation

CROSS_SITE_FILE = "cross_site.csv"
SITE_FILE = "site_config.yaml"


def cross_site_again(
    run_dir: Path,
    models: Mapping[str, str],
    num_sites: int | None = None,
    timeout: float = 3600.0,
) -> Path:
    """The matrix of the federation in ``run_dir``, with ``models`` ({name: checkpoint})
    among its models; returns ``run_dir/cross_site.csv``.

    Raises:
        FileNotFoundError: ``run_dir`` holds no finished federation or no run config.
    """
    run_dir = Path(run_dir).resolve()
    history = run_dir / "history.json"
    config_file = run_dir / RUN_CONFIG_FILE
    for needed in (history, config_file):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{run_dir}: no {needed.name}; give the folder of a finished federation run "
                "by `cardiomm simulate` (each experiment's seed-<s> folder)"
            )
    overrides = shlex.split(tomllib.loads(config_file.read_text())["overrides"])
    entries = ",".join(f"{name}:{hydra_value(path)}" for name, path in models.items())
    overrides += [
        "federation.resume=true",
        "federation.cross_site.enabled=true",
        f"++federation.cross_site.models={{{entries}}}",
    ]
    rounds = max((record.round for record in read_history(history)), default=0)
    site_file = run_dir / SITE_FILE
    result = run_flower_simulation(
        FlowerRun(
            output_dir=run_dir,
            overrides=tuple(overrides),
            num_sites=num_sites or _all_sites(overrides, site_file),
            rounds=rounds,
            timeout=timeout,
            site_config=site_file if site_file.is_file() else None,
        )
    )
    del result  # its final model is the run's own, written again unchanged
    matrix = run_dir / CROSS_SITE_FILE
    if not matrix.is_file():
        raise FileNotFoundError(f"{run_dir}: the run finished but wrote no {CROSS_SITE_FILE}")
    return matrix


def _all_sites(overrides: list[str], site_file: Path) -> int:
    """Every centre of the run's partition: its internal sites, then its held-out centres
    (the data as the sites see it: the run's site file on top of its overrides)."""
    node_config = {NODE_SITE_CONFIG: str(site_file)} if site_file.is_file() else {}
    config = compose_site_config({RUN_CONFIG_OVERRIDES: shlex.join(overrides)}, node_config)
    manifest = load_partition(config.data, int(config.seed), show_progress=False)
    return len(internal_sites(manifest)) + len(held_out_sites(manifest))
