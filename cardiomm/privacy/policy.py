"""A site's own privacy policy: what the site operator allows, whatever a run config asks.

The policy is a YAML file the site operator owns (named by the site file's
``privacy.policy``, which a coordinator cannot set)::

    max_epsilon_per_run: 4.0          # DP-SGD epsilon one federated run may spend
    max_epsilon_total: 10.0           # over every run the ledger remembers
    delta: 1.0e-5                     # the largest delta the site accepts
    min_noise_multiplier: 0.8
    allowed_mechanisms: [dp_sgd, secure_aggregation]   # central_dp not accepted here
    required_mechanisms: [dp_sgd]     # no training without DP-SGD
    unit: patient                     # DP-SGD must protect whole patients (or: slice)
    ledger: privacy_ledger.json       # the spent budget, relative to this file

:func:`check_run` refuses a run whose privacy settings the policy does not allow, before
anything is read or trained; the ledger (cardiomm/privacy/ledger.py) enforces the epsilon
caps step by step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cardiomm.config import read_yaml_file
from cardiomm.privacy.settings import PRIVACY_UNITS, PrivacySettings

MECHANISMS = ("dp_sgd", "central_dp", "secure_aggregation")
_KEYS = (
    "max_epsilon_per_run",
    "max_epsilon_total",
    "delta",
    "min_noise_multiplier",
    "allowed_mechanisms",
    "required_mechanisms",
    "unit",
    "ledger",
)


class PrivacyPolicyError(ValueError):
    """The policy file cannot be used; the message names the file and the key."""


class PolicyViolationError(RuntimeError):
    """A run asks for privacy settings the site's policy does not allow."""


@dataclasses.dataclass(frozen=True)
class PrivacyPolicy:
    """The site operator's privacy policy (module docstring).

    Attributes:
        path: the policy file.
        max_epsilon_per_run: DP-SGD epsilon one run may spend (None: no cap).
        max_epsilon_total: epsilon over every run in the ledger (None: no cap).
        delta: the largest delta the site accepts; its epsilons are accounted at it.
        min_noise_multiplier: the smallest DP-SGD noise multiplier accepted.
        allowed_mechanisms: mechanisms a run may use (:data:`MECHANISMS`).
        required_mechanisms: mechanisms a run must use for the site to train.
        unit: the unit DP-SGD must protect (``patient`` or ``slice``; None: either).
        ledger: the ledger file.
    """

    path: Path
    max_epsilon_per_run: float | None
    max_epsilon_total: float | None
    delta: float
    min_noise_multiplier: float
    allowed_mechanisms: tuple[str, ...]
    required_mechanisms: tuple[str, ...]
    unit: str | None
    ledger: Path


def read_policy(path: str | Path) -> PrivacyPolicy:
    """The policy at ``path``; PrivacyPolicyError names the file and what is wrong."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PrivacyPolicyError(f"privacy policy {path}: no such file")
    try:
        values = read_yaml_file(path)
    except (OSError, ValueError) as error:
        raise PrivacyPolicyError(f"privacy policy {path}: cannot be read ({error})") from error
    if not isinstance(values, Mapping):
        raise PrivacyPolicyError(f"privacy policy {path}: expected a mapping of settings")
    unknown = sorted(set(map(str, values)) - set(_KEYS))
    if unknown:
        raise PrivacyPolicyError(
            f"privacy policy {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}"
        )
    ledger = values.get("ledger")
    if not isinstance(ledger, str) or not ledger.strip():
        raise PrivacyPolicyError(f"privacy policy {path}: ledger must name the ledger file")
    allowed = _mechanisms(values.get("allowed_mechanisms", list(MECHANISMS)), path, "allowed")
    required = _mechanisms(values.get("required_mechanisms", []), path, "required")
    if set(required) - set(allowed):
        raise PrivacyPolicyError(
            f"privacy policy {path}: required_mechanisms must also be allowed_mechanisms"
        )
    unit = values.get("unit")
    if unit is not None and unit not in PRIVACY_UNITS:
        raise PrivacyPolicyError(
            f"privacy policy {path}: unit must be one of {', '.join(PRIVACY_UNITS)}, got {unit!r}"
        )
    return PrivacyPolicy(
        path=path,
        unit=unit,
        max_epsilon_per_run=_epsilon(
            values.get("max_epsilon_per_run"), path, "max_epsilon_per_run"
        ),
        max_epsilon_total=_epsilon(values.get("max_epsilon_total"), path, "max_epsilon_total"),
        delta=_delta(values.get("delta", 1e-5), path),
        min_noise_multiplier=_number(
            values.get("min_noise_multiplier", 0.0),
            path,
            "min_noise_multiplier",
            0.0,
            math.inf,
            True,
        ),
        allowed_mechanisms=allowed,
        required_mechanisms=required,
        ledger=(path.parent / ledger).expanduser(),
    )


def check_run(policy: PrivacyPolicy, privacy: PrivacySettings) -> None:
    """Refuse (PolicyViolationError) a run whose privacy settings the policy does not allow."""
    used = {
        "dp_sgd": privacy.dp_sgd.enabled,
        "central_dp": privacy.central_dp.enabled,
        "secure_aggregation": privacy.secure_aggregation.enabled,
    }
    refused = [name for name, on in used.items() if on and name not in policy.allowed_mechanisms]
    if refused:
        raise PolicyViolationError(
            f"the run uses {', '.join(refused)}, which the site's privacy policy "
            f"({policy.path}) does not allow (allowed: {', '.join(policy.allowed_mechanisms)})"
        )
    missing = [name for name in policy.required_mechanisms if not used[name]]
    if missing:
        raise PolicyViolationError(
            f"the site's privacy policy ({policy.path}) requires {', '.join(missing)}, which "
            "the run does not use"
        )
    if not privacy.dp_sgd.enabled:
        return
    if privacy.dp_sgd.noise_multiplier < policy.min_noise_multiplier:
        raise PolicyViolationError(
            f"DP-SGD noise multiplier {privacy.dp_sgd.noise_multiplier:g} is below the "
            f"minimum {policy.min_noise_multiplier:g} of the site's privacy policy ({policy.path})"
        )
    if policy.unit is not None and privacy.dp_sgd.unit != policy.unit:
        raise PolicyViolationError(
            f"DP-SGD protects one {privacy.dp_sgd.unit}; the site's privacy policy "
            f"({policy.path}) requires the {policy.unit} as the unit"
        )
    if privacy.dp_sgd.delta > policy.delta:
        raise PolicyViolationError(
            f"DP-SGD delta {privacy.dp_sgd.delta:g} is above the {policy.delta:g} the site's "
            f"privacy policy ({policy.path}) accepts"
        )


def run_budget(policy: PrivacyPolicy, site_budget: float | None) -> float | None:
    """The per-run epsilon cap in force: the smaller of the policy's and the site file's."""
    caps = [cap for cap in (policy.max_epsilon_per_run, site_budget) if cap is not None]
    return min(caps) if caps else None


def _mechanisms(value: Any, path: Path, which: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PrivacyPolicyError(f"privacy policy {path}: {which}_mechanisms must be a list")
    unknown = sorted(set(value) - set(MECHANISMS))
    if unknown:
        raise PrivacyPolicyError(
            f"privacy policy {path}: unknown mechanism(s) {', '.join(unknown)} in "
            f"{which}_mechanisms; known: {', '.join(MECHANISMS)}"
        )
    return tuple(value)


def _delta(value: Any, path: Path) -> float:
    """A delta in (0, 1): a delta of 1 promises nothing, and the accountant refuses it."""
    delta = _number(value, path, "delta", 0.0, 1.0)
    if delta >= 1.0:
        raise PrivacyPolicyError(f"privacy policy {path}: delta {value!r} is out of range")
    return delta


def _epsilon(value: Any, path: Path, key: str) -> float | None:
    if value is None:
        return None
    return _number(value, path, key, 0.0, math.inf)


def _number(
    value: Any, path: Path, key: str, low: float, high: float, low_allowed: bool = False
) -> float:
    """A finite number in (low, high] ([low, high] with ``low_allowed``), else
    PrivacyPolicyError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrivacyPolicyError(f"privacy policy {path}: {key} must be a number, got {value!r}")
    number = float(value)
    above_low = number >= low if low_allowed else number > low
    if not math.isfinite(number) or not above_low or number > high:
        raise PrivacyPolicyError(f"privacy policy {path}: {key} {value!r} is out of range")
    return number
