"""Make the cross-site matrix of a finished simulated federation, training nothing and
changing nothing of the run.

Everything is checked before Flower starts: the run is finished (its last checkpoint holds
every planned round), its final state reads, and every extra model is a readable checkpoint
of the run's model. Then the run's own overrides (its ``run_config.toml``, as `cardiomm
simulate` writes it) are replayed through `flwr run .` in a working copy: a temporary folder
holding copies of the checkpoints the matrix needs, resumed from its final state by explicit
path (``federation.resume=<copy>``: no fallback to an earlier round, so no round is played
again) with the cross-site phase on and MLflow off. Only the matrix (``cross_site.csv`` and
``cross_site.png``) comes back into the run's folder.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

import torch
from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import held_out_sites, internal_sites
from client.site_config import compose_site_config
from federation.config import RUN_CONFIG_OVERRIDES
from federation.protocol import NODE_SITE_CONFIG
from federation.records import history_from_json, read_history
from server.checkpoints import (
    FINAL,
    LATEST,
    RoundCheckpoint,
    checkpoint_dir,
    load_round_checkpoint,
    round_path,
)
from server.cross_site import CROSS_SITE_FIGURE, best_validation_round, named_model_state
from simulations.study.composition import hydra_value
from simulations.study.flower_run import RUN_CONFIG_FILE, FlowerRun, run_flower_simulation

logger = logging.getLogger(__name__)

CROSS_SITE_FILE = "cross_site.csv"
SITE_FILE = "site_config.yaml"


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """What the matrix needs of a finished run, read and checked.

    Attributes:
        folder: the run's output_dir.
        overrides: the run's Hydra overrides (its ``run_config.toml``).
        rounds: its completed (and planned) rounds.
        final_state: the checkpoint holding the state after the last round.
        best_state: the checkpoint of the best validation round, when not the last.
        arrays: the global weights after the last round (what the named models must fit).
    """

    folder: Path
    overrides: list[str]
    rounds: int
    final_state: Path
    best_state: Path | None
    arrays: Mapping[str, torch.Tensor]


def cross_site_again(
    run_dir: Path,
    models: Mapping[str, str],
    num_sites: int | None = None,
    timeout: float = 3600.0,
) -> Path:
    """The matrix of the federation in ``run_dir``, with ``models`` ({name: checkpoint})
    among its models; returns ``run_dir/cross_site.csv``. No file of the run is changed but
    the matrix's own two.

    Raises:
        FileNotFoundError: ``run_dir`` holds no finished federation, or a named checkpoint
            does not exist.
        ValueError: the run is unfinished or its final state cannot be read, or a named
            checkpoint cannot be scored (one line naming it and why).
        simulations.study.flower_run.FlowerRunError: the Flower run failed (the working copy
            with its log is kept and named).
    """
    run = read_finished_run(Path(run_dir))
    for name, path in models.items():
        named_model_state(f"--model {name}", name, path, run.arrays)
    checked = {name: str(Path(path).resolve()) for name, path in models.items()}
    site_file = run.folder / SITE_FILE
    num_sites = num_sites or _all_sites(run.overrides, site_file)
    work = Path(tempfile.mkdtemp(prefix=f"cardiomm-cross-site-{run.folder.name}-"))
    final_state = _copy_into(work, run.final_state, LATEST)
    if run.best_state is not None:
        _copy_into(work, run.best_state, run.best_state.name)
    entries = ",".join(f"{name}:{hydra_value(path)}" for name, path in checked.items())
    overrides = [
        *run.overrides,
        f"output_dir={hydra_value(str(work))}",
        f"federation.resume={hydra_value(str(final_state))}",
        "federation.cross_site.enabled=true",
        f"++federation.cross_site.models={{{entries}}}",
        "tracking.enabled=false",  # the run's MLflow store is one of its files
    ]
    run_flower_simulation(
        FlowerRun(
            output_dir=work,
            overrides=tuple(overrides),
            num_sites=num_sites,
            rounds=run.rounds,
            timeout=timeout,
            site_config=site_file if site_file.is_file() else None,
        )
    )
    played = max((record.round for record in read_history(work / "history.json")), default=0)
    if played != run.rounds:
        raise RuntimeError(f"{work}: the evaluation ended at round {played}, not {run.rounds}")
    matrix = work / CROSS_SITE_FILE
    if not matrix.is_file():
        raise FileNotFoundError(f"{work}: the run finished but wrote no {CROSS_SITE_FILE}")
    for name in (CROSS_SITE_FILE, CROSS_SITE_FIGURE):
        if (work / name).is_file():
            shutil.copyfile(work / name, run.folder / name)
    shutil.rmtree(work)
    return run.folder / CROSS_SITE_FILE


def read_finished_run(run_dir: Path) -> FinishedRun:
    """The run in ``run_dir``, checked to be finished with a final state that reads.

    The final state is ``checkpoints/latest.pt``; when that does not read, the last round's
    own checkpoint (written with the same content) stands in for it, with a warning. An
    unfinished run is refused: resuming it would train its remaining rounds.

    Raises:
        FileNotFoundError: no history, run config or final model (not a finished run).
        ValueError: the final state cannot be read, or the run is unfinished.
    """
    run_dir = run_dir.resolve()
    history = run_dir / "history.json"
    for needed in (history, run_dir / RUN_CONFIG_FILE, checkpoint_dir(run_dir) / FINAL):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{run_dir}: no {needed.relative_to(run_dir)}; give the folder of a finished "
                "federation run by `cardiomm simulate` (each experiment's seed-<s> folder)"
            )
    overrides = _run_overrides(run_dir / RUN_CONFIG_FILE)
    rounds = max((record.round for record in read_history(history)), default=0)
    final_state, saved = _final_state(run_dir, rounds)
    planned = _planned_rounds(saved.config_yaml)
    if saved.server_round != rounds or planned != rounds:
        raise ValueError(
            f"{final_state}: the run is not finished (round {saved.server_round} of "
            f"{planned} checkpointed, {rounds} in history.json); cross-site-eval trains "
            "nothing: finish the run first (`cardiomm simulate` resumes it)"
        )
    best = best_validation_round(history_from_json(saved.history))
    best_state = round_path(run_dir, best) if best is not None and best != rounds else None
    if best_state is not None:
        _readable(best_state, "the best validation round's checkpoint")
    return FinishedRun(run_dir, overrides, rounds, final_state, best_state, saved.arrays)


def _run_overrides(path: Path) -> list[str]:
    try:
        return shlex.split(str(tomllib.loads(path.read_text())["overrides"]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a run config with overrides ({error})") from error


def _final_state(run_dir: Path, rounds: int) -> tuple[Path, RoundCheckpoint]:
    latest, last = checkpoint_dir(run_dir) / LATEST, round_path(run_dir, rounds)
    try:
        return latest, load_round_checkpoint(latest)
    except (FileNotFoundError, ValueError) as error:
        problem = str(error)
    try:
        saved = load_round_checkpoint(last)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"{run_dir}: the run's final state cannot be read ({problem}; {error}); "
            "cross-site-eval trains nothing, so it refuses rather than play a round again"
        ) from error
    logger.warning("%s; the final state is read from %s (the same content)", problem, last)
    return last, saved


def _readable(path: Path, what: str) -> None:
    try:
        load_round_checkpoint(path)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"{what} cannot be read: {error}") from error


def _planned_rounds(config_yaml: str) -> int | None:
    value = OmegaConf.select(OmegaConf.create(config_yaml), "federation.num_rounds")
    return int(value) if value is not None else None


def _copy_into(work: Path, source: Path, name: str) -> Path:
    target = checkpoint_dir(work) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _all_sites(overrides: list[str], site_file: Path) -> int:
    """Every centre of the run's partition: its internal sites, then its held-out centres
    (the data as the sites see it: the run's site file on top of its overrides)."""
    node_config = {NODE_SITE_CONFIG: str(site_file)} if site_file.is_file() else {}
    config = compose_site_config({RUN_CONFIG_OVERRIDES: shlex.join(overrides)}, node_config)
    manifest = load_partition(config.data, int(config.seed), show_progress=False)
    return len(internal_sites(manifest)) + len(held_out_sites(manifest))
