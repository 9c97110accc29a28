"""Round checkpoints of a federated run (resumable) and the final CardioMM model checkpoint.

``<output_dir>/checkpoints/round-XXX.pt`` and ``latest.pt`` hold the global weights, the round,
the strategy's server state, the composed config, the history and the RNG state. Each file is
written under a temporary name and renamed, so a crash never leaves a truncated checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import random
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cardiomm.model.checkpoint import OLD_LAYOUT_HINT, load_problem
from cardiomm.privacy.schema import PRIVACY_GROUP, PrivacyConfig
from cardiomm.train.schema import TRAIN_GROUP, TrainSchema
from federation.schema import SCHEMAS, schema_defaults

logger = logging.getLogger(__name__)

FORMAT = "cardiomm-fl federation checkpoint"
# 2: the global weights are those of the version 2 network (cardiomm/model/checkpoint.py).
VERSION = 2
LATEST = "latest.pt"
FINAL = "final.pt"


def checkpoint_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def round_path(output_dir: Path, server_round: int) -> Path:
    return checkpoint_dir(output_dir) / f"round-{server_round:03d}.pt"


@dataclasses.dataclass
class RoundCheckpoint:
    """What a resumed run needs to continue where the last one stopped.

    Attributes:
        server_round: the last completed round.
        arrays: the global state dict after that round.
        strategy: the strategy's server state (``strategies.server_state.strategy_state``).
        config_yaml: the composed config of the run that wrote it (resolved).
        history: one record per completed round.
        rng: Python's and torch's RNG state when it was written.
        tracking_run_id: the MLflow run to continue (None when tracking was off).
    """

    server_round: int
    arrays: dict[str, torch.Tensor]
    strategy: dict[str, Any]
    config_yaml: str
    history: list[dict[str, Any]]
    rng: dict[str, Any]
    tracking_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **dataclasses.asdict(self),
        }


def rng_state() -> dict[str, Any]:
    """Python's and torch's global RNG state (the server draws site samples with Python's).

    NumPy's is left out on purpose: Flower's central-DP wrappers draw their noise from it,
    and a checkpoint holding that state would let whoever reads it predict the next noise.
    """
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def restore_rng_state(state: dict[str, Any]) -> None:
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])


def save_round_checkpoint(output_dir: Path, checkpoint: RoundCheckpoint) -> Path:
    """Write ``round-XXX.pt`` and ``latest.pt`` atomically; returns the round's file."""
    content = checkpoint.to_dict()
    path = round_path(output_dir, checkpoint.server_round)
    _atomic_save(content, path)
    _atomic_save(content, checkpoint_dir(output_dir) / LATEST)
    return path


def load_round_checkpoint(path: Path) -> RoundCheckpoint:
    """Read a round checkpoint, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such federation checkpoint")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise ValueError(
            f"{path}: not a readable federation checkpoint ({load_problem(error)})"
        ) from error
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(f"{path}: not a CardioMM-FL federation checkpoint")
    version = content.get("version")
    if version != VERSION:
        hint = f": {OLD_LAYOUT_HINT}" if version == 1 else ""
        raise ValueError(f"{path}: checkpoint version {version} is not {VERSION}{hint}")
    fields = {field.name for field in dataclasses.fields(RoundCheckpoint)}
    return RoundCheckpoint(**{key: value for key, value in content.items() if key in fields})


def resume_path(output_dir: Path, resume: bool | str) -> Path | None:
    """The checkpoint to resume from: None (fresh run), ``latest.pt`` or the given path.

    ``resume=True`` with no checkpoint yet starts fresh (so a job can always be launched with
    resume on); a path that does not exist is an error.
    """
    if resume is False:
        return None
    if resume is True:
        latest = checkpoint_dir(output_dir) / LATEST
        return latest if latest.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"federation.resume={resume}: no such checkpoint")
    return path


def load_resume_point(output_dir: Path, resume: bool | str) -> tuple[Path, RoundCheckpoint] | None:
    """The checkpoint to resume from, read: None for a fresh run (see :func:`resume_path`).

    With ``resume=True``, an unreadable ``latest.pt`` (a disk fault, a partial copy) falls
    back to the newest round checkpoint that reads, with a warning naming both; only when
    none reads is it an error. An explicit path is read as given, without fallback.

    Raises:
        ValueError: no readable checkpoint (the message lists what was tried and why).
    """
    path = resume_path(output_dir, resume)
    if path is None:
        return None
    if resume is not True:
        return path, load_round_checkpoint(path)
    problems = []
    rounds = sorted(checkpoint_dir(output_dir).glob("round-*.pt"), reverse=True)
    for candidate in [path, *rounds]:
        try:
            checkpoint = load_round_checkpoint(candidate)
        except (ValueError, FileNotFoundError) as error:
            problems.append(str(error))
            continue
        if problems:
            logger.warning(
                "%s; resuming from %s (round %d), the newest intact checkpoint",
                "; ".join(problems),
                candidate,
                checkpoint.server_round,
            )
        return candidate, checkpoint
    raise ValueError("no readable checkpoint to resume from: " + "; ".join(problems))


# A resumed run continues the training of the run that wrote its checkpoint: every setting
# of the composed config is part of that recipe (the network, the data and its split, the
# masks, the sites' training, the strategy, privacy, the rounds), except the settings below
# (a key or a whole section): how the run runs, where its files are, and what is evaluated or
# reported after it. A setting not named here is part of the recipe, so a new one is too.
NOT_RECIPE = frozenset(
    {
        "output_dir",
        "method",
        "tracking",
        "sharing",  # a site's own choices; the coordinator's copy changes nothing
        "data.root",
        "data.index_cache",
        "model.gradient_checkpointing",
        "model.coil_batching",
        "text.path",
        "text.cache_dir",
        "train.device",
        "train.devices",
        "train.distributed_backend",
        "train.num_workers",
        "train.num_threads",
        "train.deterministic",
        "federation.resume",
        "federation.timeout",
        "federation.reply_poll_seconds",
        "federation.pack_arrays",  # lossless: the same weights in fewer arrays
        "federation.cross_site",
        "federation.zero_shot_every",
        "federation.global_evaluation",
        "federation.eval_splits",
        "federation.max_eval_items",
        "federation.replies.max_text",
        "federation.replies.max_bad_files",
    }
)
ROUNDS = "federation.num_rounds"


def check_same_recipe(saved_yaml: str, config: DictConfig, path: Path) -> None:
    """Raise ValueError naming every recipe setting (all but :data:`NOT_RECIPE`) in which
    ``config`` differs from the run that wrote the checkpoint at ``path`` (whose resolved
    config is ``saved_yaml``), with the checkpoint's value and this run's.

    The number of rounds is part of the recipe: the last round's evaluations and a DP target
    epsilon's noise follow from it, so a run is resumed to the rounds it was planned for; to
    train a finished run further, a new run starts from its final model.
    """
    before = dict(_leaves(OmegaConf.to_container(OmegaConf.create(saved_yaml), resolve=True)))
    # A checkpoint written before the typed schemas lacks the keys whose default the code
    # supplied then (the same values the schemas hold now, e.g. strategy.personalise_from_round,
    # train.warmup_steps).
    for key, value in _schema_leaves():
        before.setdefault(key, value)
    now = dict(_leaves(OmegaConf.to_container(config, resolve=True)))
    differences = [
        f"{key}: checkpoint {before.get(key)!r}, this run {now.get(key)!r}"
        for key in sorted(set(before) | set(now))
        if not _outside_recipe(key) and before.get(key) != now.get(key)
    ]
    if not differences:
        return
    changed = "; ".join(differences)
    if before.get(ROUNDS) != now.get(ROUNDS):
        changed += (
            f" (the checkpoint's run was planned for {before.get(ROUNDS)} rounds and is resumed "
            "to that plan; to train a finished run further, start a new output_dir with "
            f"federation.initial_checkpoint={Path(path).parent / FINAL})"
        )
    raise ValueError(
        f"{path} was written with another training recipe; resume with the same settings or "
        f"start a new output_dir ({changed})"
    )


def _schema_leaves() -> list[tuple[str, Any]]:
    """(dotted key, default) of every key the typed schemas of a federated run hold
    (federation/schema.py, cardiomm/privacy/schema.py, cardiomm/train/schema.py)."""
    leaves = []
    for (_, group, package), node in SCHEMAS.items():
        leaves += _leaves(schema_defaults(node), str(package or group))
    for section, node in ((PRIVACY_GROUP, PrivacyConfig), (TRAIN_GROUP, TrainSchema)):
        leaves += _leaves(schema_defaults(node), section)
    return leaves


def _outside_recipe(key: str) -> bool:
    """Whether ``key`` (dotted) or a section above it is in :data:`NOT_RECIPE`."""
    parts = key.split(".")
    return any(".".join(parts[:end]) in NOT_RECIPE for end in range(1, len(parts) + 1))


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [
            leaf
            for key, item in value.items()
            for leaf in _leaves(item, f"{prefix}.{key}" if prefix else str(key))
        ]
    return [(prefix, value)]


def _atomic_save(content: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(content, partial)
    partial.replace(path)
