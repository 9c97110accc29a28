"""Make the cross-site matrix of a finished simulated federation, training nothing and
changing nothing of the run.

Everything is checked before Flower starts: the run is finished (its last checkpoint holds
every planned round), its final state reads, and every extra model is a readable checkpoint
of the run's model. Then the run's own overrides (its ``run_config.toml``, as `cardiomm
simulate` writes it) are replayed through `flwr run .` in a working copy: a temporary folder
holding copies of the checkpoints the matrix needs, resumed from its final state by explicit
path (``federation.resume=<copy>``: no fallback to an earlier round, so no round is played
again) with the cross-site phase on and MLflow off. Only the matrix (``cross_site.csv`` and
``cross_site.png``) comes back into the run's folder, after a check that no round was played
and the model scored is the run's; an earlier matrix there is replaced only when asked. The
working copy is removed however the evaluation ends (a failed Flower run keeps its log, a file
of its own in the temporary folder, named in the error).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import held_out_sites, internal_sites
from cardiomm.model.checkpoint import read_checkpoint
from client.site_config import compose_site_config
from federation.config import RUN_CONFIG_OVERRIDES
from federation.protocol import NODE_SITE_CONFIG
from federation.records import HISTORY_FILE, history_from_json, read_history
from server.checkpoints import (
    FINAL,
    LATEST,
    RoundCheckpoint,
    checkpoint_dir,
    load_round_checkpoint,
    round_path,
)
from server.cross_site import (
    CROSS_SITE_FIGURE,
    CROSS_SITE_FILE,
    best_validation_round,
    named_model_state,
)
from simulations.study.composition import hydra_value
from simulations.study.flower_run import (
    LOG_FILE,
    RUN_CONFIG_FILE,
    FlowerRun,
    FlowerRunError,
    run_flower_simulation,
)

logger = logging.getLogger(__name__)

MATRIX_FILES = (CROSS_SITE_FILE, CROSS_SITE_FIGURE)  # all the evaluation writes
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
        warnings: what was worked around to read it (a damaged ``latest.pt``).
    """

    folder: Path
    overrides: list[str]
    rounds: int
    final_state: Path
    best_state: Path | None
    arrays: Mapping[str, torch.Tensor]
    warnings: tuple[str, ...] = ()


class CrossSiteEvalError(RuntimeError):
    """The evaluation ran but did not give the run's matrix (a round was played, no matrix
    was written); the run's files are untouched."""


def cross_site_again(
    run_dir: Path,
    models: Mapping[str, str],
    num_sites: int | None = None,
    timeout: float = 3600.0,
    overwrite: bool = False,
    warn: Callable[[str], None] = logger.warning,
) -> Path:
    """The matrix of the federation in ``run_dir``, with ``models`` ({name: checkpoint})
    among its models; returns ``run_dir/cross_site.csv``. No file of the run is changed but
    the matrix's own two, and an earlier matrix only with ``overwrite``. ``warn`` is told
    what the evaluation works around (a damaged ``latest.pt``) before Flower starts.

    Raises:
        FileNotFoundError: ``run_dir`` holds no finished federation, or a named checkpoint
            does not exist.
        ValueError: the run is unfinished or its final state cannot be read, a named
            checkpoint cannot be scored, the run already holds a matrix (without
            ``overwrite``) or cannot take one (one line naming it and why).
        simulations.study.flower_run.FlowerRunError: the Flower run failed (its log is kept
            in the temporary folder and named; the working copy is removed).
        CrossSiteEvalError: the Flower run played a round or wrote no matrix.
    """
    run = read_finished_run(Path(run_dir))
    for name, path in models.items():
        named_model_state(f"--model {name}", name, path, run.arrays)
    _check_matrix_place(run.folder, overwrite)
    if num_sites is not None and num_sites < 1:
        raise ValueError(f"--num-sites {num_sites}: a federation needs at least one site")
    for note in run.warnings:
        warn(note)
    site_file = run.folder / SITE_FILE
    num_sites = num_sites or _all_sites(run.overrides, site_file)
    work = Path(tempfile.mkdtemp(prefix=f"cardiomm-cross-site-{run.folder.name}-")).resolve()
    try:  # whatever happens (an error, Ctrl-C), the working copy goes
        flower_run = _working_copy(work, run, models, num_sites, timeout)
        try:
            run_flower_simulation(flower_run)
        except FlowerRunError as error:
            raise FlowerRunError(_keep_log(error, work / LOG_FILE)) from error
        _check_nothing_trained(work, run)
        return _bring_back(work, run.folder, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _working_copy(
    work: Path, run: FinishedRun, models: Mapping[str, str], num_sites: int, timeout: float
) -> FlowerRun:
    """The Flower run that makes the matrix in ``work``, with the checkpoints it reads
    copied there: resumed from the copy of the final state by its path (no fallback to an
    earlier round), every output in ``work``, MLflow off (its store is one of the run's
    files)."""
    final_state = _copy_into(work, run.final_state, LATEST)
    if run.best_state is not None:
        _copy_into(work, run.best_state, run.best_state.name)
    entries = ",".join(
        f"{name}:{hydra_value(str(Path(path).resolve()))}" for name, path in models.items()
    )
    overrides = [
        *run.overrides,
        f"output_dir={hydra_value(str(work))}",
        f"federation.resume={hydra_value(str(final_state))}",
        "federation.cross_site.enabled=true",
        f"++federation.cross_site.models={{{entries}}}",
        "tracking.enabled=false",
    ]
    site_file = run.folder / SITE_FILE
    return FlowerRun(
        output_dir=work,
        overrides=tuple(overrides),
        num_sites=num_sites,
        rounds=run.rounds,
        timeout=timeout,
        site_config=site_file if site_file.is_file() else None,
    )


def _check_matrix_place(folder: Path, overwrite: bool) -> None:
    """The matrix can be written into the run's ``folder`` when the evaluation is done: it
    holds no earlier matrix (unless ``overwrite``) and can be written to."""
    present = [name for name in MATRIX_FILES if (folder / name).exists()]
    for name in present:
        if not (folder / name).is_file():
            raise ValueError(f"{folder / name}: not a file; cross-site-eval writes its matrix here")
    if present and not overwrite:
        raise ValueError(
            f"{folder} already holds {' and '.join(present)} (an earlier cross-site matrix); "
            "pass --overwrite to replace it"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder}: no permission to write {CROSS_SITE_FILE} there")


def _keep_log(error: FlowerRunError, log: Path) -> str:
    """``error``'s message, its log copied out of the working copy (which is removed) into
    a file of its own in the temporary folder, and named there."""
    message = str(error)
    if not log.is_file():
        return message
    handle, kept = tempfile.mkstemp(prefix=f"{log.parent.name}-", suffix=f"-{LOG_FILE}")
    os.close(handle)
    shutil.copyfile(log, kept)
    return message.replace(str(log), kept)


def _check_nothing_trained(work: Path, run: FinishedRun) -> None:
    """The Flower run in ``work`` played no round and scored the run's own final model.

    Raises:
        CrossSiteEvalError: a round checkpoint was written, the history does not end at the
            run's last round, or the final model is not the run's.
    """
    copied = {run.best_state.name} if run.best_state is not None else set()
    played = sorted(
        path.name for path in checkpoint_dir(work).glob("round-*.pt") if path.name not in copied
    )
    last = max((record.round for record in read_history(work / HISTORY_FILE)), default=0)
    if played or last != run.rounds:
        raise CrossSiteEvalError(
            f"the evaluation played a round ({', '.join(played) or f'history ends at {last}'}, "
            f"the run at round {run.rounds}); its matrix is not the run's and was not kept"
        )
    scored = read_checkpoint(checkpoint_dir(work) / FINAL)["state_dict"]
    changed = [
        key
        for key, value in run.arrays.items()
        if key not in scored or not torch.equal(scored[key], value)
    ]
    if changed:
        raise CrossSiteEvalError(
            f"the evaluation's final model differs from the run's ({changed[0]}); its matrix "
            "is not the run's and was not kept"
        )


def _bring_back(work: Path, folder: Path, overwrite: bool) -> Path:
    """Put the matrix written in ``work`` into the run's ``folder`` (each file whole: written
    beside its place, then renamed into it); returns the CSV's place.

    Raises:
        CrossSiteEvalError: the evaluation wrote no matrix.
    """
    if not (work / CROSS_SITE_FILE).is_file():
        raise CrossSiteEvalError(f"the evaluation finished but wrote no {CROSS_SITE_FILE}")
    made = [name for name in MATRIX_FILES if (work / name).is_file()]
    staged = {name: folder / f".{name}.partial" for name in made}
    try:
        for name, partial in staged.items():
            shutil.copyfile(work / name, partial)
        for name, partial in staged.items():
            os.replace(partial, folder / name)
    finally:
        for partial in staged.values():
            partial.unlink(missing_ok=True)
    if overwrite:  # an earlier figure would not be this matrix's
        for name in set(MATRIX_FILES) - set(made):
            (folder / name).unlink(missing_ok=True)
    return folder / CROSS_SITE_FILE


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
    final_state, saved, warnings = _final_state(run_dir, rounds)
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
    return FinishedRun(run_dir, overrides, rounds, final_state, best_state, saved.arrays, warnings)


def _run_overrides(path: Path) -> list[str]:
    try:
        return shlex.split(str(tomllib.loads(path.read_text())["overrides"]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a run config with overrides ({error})") from error


def _final_state(run_dir: Path, rounds: int) -> tuple[Path, RoundCheckpoint, tuple[str, ...]]:
    """(the checkpoint of the state after round ``rounds``, read, the warnings of reading it)."""
    latest, last = checkpoint_dir(run_dir) / LATEST, round_path(run_dir, rounds)
    try:
        return latest, load_round_checkpoint(latest), ()
    except (FileNotFoundError, ValueError) as error:
        problem = str(error)
    try:
        saved = load_round_checkpoint(last)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"{run_dir}: the run's final state cannot be read ({problem}; {error}); "
            "cross-site-eval trains nothing, so it refuses rather than play a round again"
        ) from error
    # save_round_checkpoint writes the round's file and latest.pt with the same content.
    return last, saved, (f"{problem}; the final state is read from {last} instead",)


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
