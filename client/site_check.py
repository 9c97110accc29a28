"""What a site checks before it joins a consortium: its data, its config and its machine.

:func:`check_site` reads the site's own files and configuration only and returns a
:class:`SiteCheck`: one :class:`Finding` per item (files found, readable and skipped with
reasons; images per modality, view and vendor; matrix sizes and coil counts; metadata found
or missing; free disk; the GPU; seconds per local step on this machine; the site config;
with a privacy policy, its ledger).
A finding of status ``problem`` means the site cannot take part as it stands. Nothing here
sends anything anywhere: the operator decides what to share.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import shutil
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cardiomm.cohort.layout import CENTRE_FOLDER
from cardiomm.cohort.manifest import partition_dataset
from cardiomm.data.builders import evaluation_dataset, training_dataset
from cardiomm.data.errors import DataFileError
from cardiomm.data.readers import open_series
from cardiomm.model.factory import network_from_config
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.privacy import PrivacySettings
from cardiomm.progress import progress_bar
from cardiomm.train import TrainConfig, TrainingRun, evaluate_reconstructor, train_model
from cardiomm.train.runtime import select_device
from cardiomm.train.schema import configured_device
from client.site_config import SiteConfigError, compose_site_config
from federation.protocol import NODE_SITE_CONFIG, ROLE_TRAIN, SITE_ROLES
from federation.reply_checks import IDENTIFIER

OK, WARNING, PROBLEM = "ok", "warning", "problem"
# Below this much free space a site's logs, caches and checkpoints may not fit.
MIN_FREE_BYTES = 1 << 30
METADATA_FIELDS = ("vendor", "field_strength", "scanner_model", "modality", "view")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the check: what was looked at, what was found, and whether it is fine."""

    item: str
    value: str
    status: str = OK


@dataclasses.dataclass
class SiteCheck:
    """The findings of :func:`check_site` and the figures behind them (``details``)."""

    findings: list[Finding] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def can_take_part(self) -> bool:
        return not any(finding.status == PROBLEM for finding in self.findings)

    def add(self, item: str, value: Any, status: str = OK) -> None:
        self.findings.append(Finding(item, str(value), status))

    def to_json(self) -> dict[str, Any]:
        return {
            "can-take-part": self.can_take_part,
            "findings": [dataclasses.asdict(finding) for finding in self.findings],
            "details": self.details,
        }


@dataclasses.dataclass(frozen=True)
class CheckRequest:
    """What to check.

    Attributes:
        data_path: the site's data root (default: ``data.root`` of its site file).
        site_id: the centre this site plays (default: the only centre under the root).
        role: ``train`` or ``evaluate``.
        site_config: the site's own YAML file (client/site_config.py), if any.
        overrides: Hydra overrides of the coordinator's recipe to time a step with
            (e.g. ``model=small``).
        timing_steps: local steps to time (0: no timing).
        output_dir: where the site writes (its free disk is checked).
    """

    data_path: Path | None = None
    site_id: str | None = None
    role: str = ROLE_TRAIN
    site_config: Path | None = None
    overrides: tuple[str, ...] = ()
    timing_steps: int = 3
    output_dir: Path = Path(".")


def check_site(request: CheckRequest, show_progress: bool = True) -> SiteCheck:
    """Run every check of the module docstring; never raises for a problem it can name."""
    check = SiteCheck()
    if request.role not in SITE_ROLES:
        check.add("role", f"{request.role!r} is not one of {', '.join(SITE_ROLES)}", PROBLEM)
        return check
    check.add("role", request.role)
    config = _site_config(request, check)
    _check_disk(request.output_dir, check)
    _check_device(config, check)
    if config is None:
        return check
    _check_privacy_ledger(config, check)
    root = request.data_path or _configured_root(config)
    site = _site_files(root, request, check, show_progress)
    if site is None:
        return check
    base = Path(check.details["root"])
    readable = _read_check(site, base, check, show_progress)
    _summarise(readable, request.role, check)
    if request.timing_steps > 0 and readable:
        _time_work(readable, base, request, config, check)
    return check


def _site_config(request: CheckRequest, check: SiteCheck) -> DictConfig | None:
    node_config = {NODE_SITE_CONFIG: str(request.site_config)} if request.site_config else {}
    run_config = {"overrides": " ".join(request.overrides)}
    try:
        config = compose_site_config(run_config, node_config)
    except SiteConfigError as error:
        check.add("site config", error, PROBLEM)
        return None
    except ValueError as error:  # an unknown key or value among the overrides
        check.add("overrides", error, PROBLEM)
        return None
    check.add("site config", request.site_config or "none (defaults of configs/federation.yaml)")
    return config


def _check_privacy_ledger(config: DictConfig, check: SiteCheck) -> None:
    """With a privacy policy in the site file: the policy readable, its ledger readable and
    agreeing with its journal (cardiomm/privacy/ledger.py), and the epsilon spent so far. A
    site whose ledger is refused trains with DP-SGD no more: a problem."""
    policy_path = PrivacySettings.read(config).policy
    if not policy_path:
        return
    # Imported here: the ledger's accountant loads Opacus, which only a policy needs.
    from cardiomm.privacy.ledger import LedgerError, PrivacyLedger
    from cardiomm.privacy.policy import PrivacyPolicyError, read_policy

    try:
        policy = read_policy(str(policy_path))
        spent = PrivacyLedger(policy.ledger).total_epsilon(policy.delta)
    except (PrivacyPolicyError, LedgerError) as error:
        check.add("privacy ledger", error, PROBLEM)
        return
    cap = "no cap" if policy.max_epsilon_total is None else f"{policy.max_epsilon_total:g}"
    check.add("privacy ledger", f"epsilon {spent:.4g} spent of {cap} ({policy.ledger})")


def _configured_root(config: DictConfig) -> Path | None:
    root = OmegaConf.select(config, "data.root", default=None)
    return Path(str(root)) if root else None


def _check_disk(output_dir: Path, check: SiteCheck) -> None:
    where = output_dir if output_dir.exists() else Path(".")
    free = shutil.disk_usage(where).free
    check.details["free-bytes"] = free
    status = OK if free >= MIN_FREE_BYTES else WARNING
    check.add("free disk", f"{free / 2**30:.1f} GiB at {where.resolve()}", status)


def _check_device(config: DictConfig | None, check: SiteCheck) -> None:
    gpus = [
        {
            "name": torch.cuda.get_device_properties(index).name,
            "memory-bytes": torch.cuda.get_device_properties(index).total_memory,
        }
        for index in range(torch.cuda.device_count())
    ]
    check.details["gpus"] = gpus
    shown = "; ".join(f"{gpu['name']} {gpu['memory-bytes'] / 2**30:.0f} GiB" for gpu in gpus)
    check.add("GPU", shown or "none (training runs on the CPU)", OK if gpus else WARNING)
    wanted = configured_device(config)
    try:
        device = select_device(wanted)
        if device.type == "cuda" and device.index is not None and device.index >= len(gpus):
            raise RuntimeError(f"{device} requested but {len(gpus)} GPU(s) present")
    except (RuntimeError, ValueError) as error:
        check.add("train.device", f"{wanted}: {error}", PROBLEM)
        return
    check.details["device"] = str(device)
    check.add("train.device", f"{wanted} -> {device}")


def _site_files(
    root: Path | None, request: CheckRequest, check: SiteCheck, show_progress: bool
) -> dict | None:
    """The manifest entry of the site (its files with shapes, metadata and splits)."""
    if root is None:
        check.add("data path", "not given (--data-path, or data.root in the site file)", PROBLEM)
        return None
    try:
        manifest = partition_dataset(root, show_progress=show_progress)
    except (FileNotFoundError, ValueError) as error:
        check.add("data path", error, PROBLEM)
        return None
    check.add("data path", manifest["root"])
    check.details["root"] = manifest["root"]
    centres = [site["site"] for site in manifest["sites"]]
    check.details["centres"] = centres
    wanted = request.site_id or (centres[0] if len(centres) == 1 else None)
    _list_unreadable_paths(manifest, wanted, check)
    site = next((entry for entry in manifest["sites"] if entry["site"] == wanted), None)
    if site is None:
        reason = (
            f"{request.site_id} not among the centres found ({', '.join(centres) or 'none'})"
            if request.site_id
            else f"several centres under the root ({', '.join(centres)}): name one with --site-id"
        )
        check.add("site", reason, PROBLEM)
        return None
    status = OK if IDENTIFIER.match(site["site"]) and IDENTIFIER.match(site["vendor"]) else PROBLEM
    check.add("site", f"{site['site']} (vendor {site['vendor']})", status)
    # A file that could not be indexed has no metadata: it is the site's when its path runs
    # through the site's centre folder.
    check.details["skipped"] = [
        {**bad, "stage": "index"}
        for bad in manifest["bad_files"]
        if site["site"] in Path(bad["path"]).parts
    ]
    check.details["site"] = site["site"]
    check.details["vendor"] = site["vendor"]
    return site


def _list_unreadable_paths(manifest: dict, centre: str | None, check: SiteCheck) -> None:
    """One problem row per path the walk could not use (a folder it cannot list, a symlink
    loop, a dangling symlink, a file it cannot open...): whatever lay below is missing from
    the site, so the site cannot take part as it stands. Paths of other centres are left
    out; those above every centre (or all, when the centre is not known) are the site's."""
    root = Path(manifest["root"])

    def is_mine(path: Path) -> bool:
        folders = path.relative_to(root).parts
        return centre in folders or not any(CENTRE_FOLDER.match(part) for part in folders)

    mine = [
        bad for bad in manifest["unreadable_paths"] if centre is None or is_mine(Path(bad["path"]))
    ]
    check.details["unreadable-paths"] = mine
    for bad in mine:
        shown = Path(bad["path"]).relative_to(root)
        check.add("unreadable path", f"{shown}: {bad['reason']}", PROBLEM)
    check.add("paths unreadable", len(mine), PROBLEM if mine else OK)


def _read_check(site: dict, base: Path, check: SiteCheck, show_progress: bool) -> list[dict]:
    """The site's file entries whose middle image reads as finite, non-zero k-space."""
    readable, skipped = [], check.details["skipped"]
    for entry in progress_bar(site["files"], "reading one image per file", show_progress):
        path = base / entry["path"]
        try:
            with open_series(path) as series:
                series.read_kspace(0, entry["slices"] // 2)
        except (DataFileError, OSError) as error:
            skipped.append({"path": str(path), "reason": str(error), "stage": "read"})
            continue
        readable.append(entry)
    total = len(site["files"]) + sum(1 for bad in skipped if bad["stage"] == "index")
    check.add("files found", total)
    check.add("files readable", len(readable), OK if readable else PROBLEM)
    reasons = collections.Counter(_short_reason(bad["reason"]) for bad in skipped)
    shown = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(3))
    summary = f"{len(skipped)}: {shown}" if shown else "0"
    check.add("files skipped", summary, WARNING if skipped else OK)
    return readable


def _short_reason(reason: str) -> str:
    # "<path>: <why>" -> "<why>", so that one cause across many files counts once.
    return reason.rsplit(": ", 1)[-1][:80]


def _summarise(readable: list[dict], role: str, check: SiteCheck) -> None:
    """Images per modality, view, vendor and split; matrices, coils, metadata coverage."""
    images: dict[str, collections.Counter] = {
        key: collections.Counter() for key in ("modality", "view", "vendor", "split")
    }
    matrices, coils, missing = collections.Counter(), collections.Counter(), collections.Counter()
    for entry in readable:
        metadata = entry["metadata"]
        for key in ("modality", "view", "vendor"):
            images[key][str(metadata.get(key) or "unknown")] += entry["num_images"]
        images["split"][entry["split"]] += entry["num_images"]
        matrices[f"{entry['ky']} x {entry['kx']}"] += 1
        coils[str(entry["coils"])] += 1
        for field in METADATA_FIELDS:
            missing[field] += metadata.get(field) in (None, "")
    if role == ROLE_TRAIN and not images["split"]["train"]:
        check.add("training images", "none in the train split: a training site needs some", PROBLEM)
    for key, counts in images.items():
        check.details[f"images-per-{key}"] = dict(counts)
        check.add(f"images per {key}", _counts(counts))
    check.details["matrix-sizes"] = dict(matrices)
    check.details["coil-counts"] = dict(coils)
    check.add("matrix sizes (ky x kx: files)", _counts(matrices))
    check.add("coil counts (coils: files)", _counts(coils))
    check.details["metadata-missing"] = dict(missing)
    gaps = [f"{field} in {count} file(s)" for field, count in missing.items() if count]
    check.add(
        "metadata missing",
        "; ".join(gaps) or "none",
        WARNING if gaps else OK,  # unknown fields make a weaker prompt, not a failure
    )


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items())) or "none"


def _time_work(
    readable: list[dict], base: Path, request: CheckRequest, config: DictConfig, check: SiteCheck
) -> None:
    """Seconds per local training step (train role) or per reconstructed image (evaluate)."""
    entries = [entry for entry in readable if entry["split"] == "train"] or readable
    files = [base / entry["path"] for entry in entries[:2]]
    model = str(OmegaConf.select(config, "model.name", default="cardiomm"))
    try:
        if request.role == ROLE_TRAIN:
            seconds = _seconds_per_step(files, config, request.timing_steps)
            item = f"seconds per local step (model {model}, after one warm-up step)"
        else:
            seconds = _seconds_per_image(files, config, request.timing_steps)
            item = f"seconds per evaluated image (model {model})"
    except Exception as error:  # a site learns here, not in round 1, that its step fails
        check.add("timing", f"{type(error).__name__}: {error}", PROBLEM)
        return
    check.details["seconds-per-unit"] = seconds
    check.add(item, f"{seconds:.3f}")


def _seconds_per_step(files: list[Path], config: DictConfig, steps: int) -> float:
    """Median time between local steps, the first (warm-up) step excluded."""
    dataset = training_dataset(files, config, int(config.seed))
    network, encoder = network_from_config(config)
    stamps: list[float] = []
    train_settings = dict(OmegaConf.to_container(config.train, resolve=True))
    train_settings.update(max_steps=steps + 1, validate_every=0)
    began = time.perf_counter()
    train_model(
        TrainingRun(
            network,
            encoder,
            dataset,
            TrainConfig.from_mapping(train_settings),
            show_progress=False,
            on_step=_stamp_into(stamps),
        )
    )
    intervals = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    return statistics.median(intervals) if intervals else time.perf_counter() - began


def _stamp_into(stamps: list[float]) -> Callable[[int, float], None]:
    def stamp(step: int, loss: float) -> None:
        del step, loss
        stamps.append(time.perf_counter())

    return stamp


def _seconds_per_image(files: list[Path], config: DictConfig, images: int) -> float:
    """Mean time per scored image, after one warm-up image."""
    dataset = evaluation_dataset(files, config)
    network, encoder = network_from_config(config)
    device = select_device(configured_device(config))
    network.to(device).eval()
    reconstructor = NetworkReconstructor(network, encoder)
    evaluate_reconstructor(reconstructor, dataset, device, max_items=1, show_progress=False)
    count = max(1, min(images, len(dataset)))
    began = time.perf_counter()
    evaluate_reconstructor(reconstructor, dataset, device, max_items=count, show_progress=False)
    return (time.perf_counter() - began) / count
