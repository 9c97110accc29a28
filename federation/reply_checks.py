"""Every field of a site's reply, checked before the server uses any of it.

A site can put any value in any field: a NaN or negative ``num-examples`` would poison or
crash the weighted mean, a string with markup would travel into history.json, MLflow and the
report, a list metric would break the strategy's aggregation. :func:`check_reply` accepts a
reply only when every metric is a known one, of its type and in its range, and when the site
record's identity fields are well formed; the free-text fields (scanner, skipped files) are
kept, sanitised and length-capped. The arrays are checked apart, against what the server
sent (strategies/update_validation.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flwr.app import RecordDict
from flwr.supercore.differential_privacy import KEY_NORM_BIT

from federation.protocol import (
    BAD_FILE_COUNT,
    BAD_FILES,
    BREAKDOWN_METRICS,
    BUILD_SECONDS,
    CLIPPED_METRIC,
    DP_BUDGET_EXHAUSTED,
    DP_DELTA,
    DP_EPSILON,
    DP_EPSILON_RUN_CAP,
    DP_EPSILON_TOTAL,
    DP_EPSILON_TOTAL_CAP,
    DP_STEPS,
    EVAL_SECONDS,
    FIELD_STRENGTH,
    FINAL_LOSS,
    HANDOFF_SECONDS,
    IMPORT_SECONDS,
    LOSS,
    METRICS,
    NMSE,
    NUM_EXAMPLES,
    PROCESS_SECONDS,
    PSNR,
    ROLE,
    SCANNER,
    SETUP_SECONDS,
    SITE_ID,
    SITE_RECORD,
    SITE_ROLES,
    SITE_WORKER_ANSWERED,
    SKIPPED_STEPS,
    SLICES_SEEN,
    SSIM,
    STEPS,
    TRAIN_SECONDS,
    TRAINABLE_PARAMETERS,
    VAL_NMSE,
    VAL_PSNR,
    VAL_SSIM,
    VENDOR,
    SiteRecord,
)
from federation.schema import RepliesConfig

# The phases of a reply: what the server asked for.
TRAIN = "train"
EVALUATE = "evaluate"
ROLL_CALL = "roll-call"  # who are you and what do you do (no metrics)
ZERO_SHOT = "zero-shot"  # an evaluation-only site's scores on all of its data
CROSS_SITE = "cross-site"  # a site's scores of one model of the cross-site matrix
PHASES = (TRAIN, EVALUATE, ROLL_CALL, ZERO_SHOT, CROSS_SITE)
# The phases whose replies may score per group (modality, view, setting).
BREAKDOWN_PHASES = (ZERO_SHOT, CROSS_SITE)
# A breakdown key of a zero-shot reply: "<metric>/<modality>.<view>.<setting>".
_BREAKDOWN_KEY = re.compile(
    rf"^({'|'.join(BREAKDOWN_METRICS)})/[A-Za-z0-9_-]{{1,40}}(\.[A-Za-z0-9_-]{{1,40}}){{2}}$"
)
# A site id or vendor: letters, digits and . _ - (Center001, GE, Siemens_Healthineers).
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Kept from free text: printable ASCII without the characters of markup and shell escapes.
_UNSAFE_TEXT = re.compile(r"[^\x20-\x7e]|[<>&`\\]")
# Seconds in a round beyond which a timing is not a timing (a year).
_MAX_SECONDS = 3.2e7


@dataclasses.dataclass(frozen=True)
class MetricRule:
    """What one metric may hold.

    Attributes:
        low, high: inclusive bounds.
        integer: a whole number.
        nan: NaN is allowed (a site without validation data, a DP site's withheld loss).
        infinite: +Inf is allowed (an epsilon with no noise).
        required: the reply must carry it.
    """

    low: float
    high: float
    integer: bool = False
    nan: bool = False
    infinite: bool = False
    required: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule (None when it does not)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {type(value).__name__}"
        number = float(value)
        if math.isnan(number):
            return None if self.nan else "is NaN"
        if math.isinf(number):
            return None if self.infinite and number > 0 else "is infinite"
        if self.integer and not number.is_integer():
            return f"must be a whole number, got {number:g}"
        if not self.low <= number <= self.high:
            return f"is {number:g}, outside [{self.low:g}, {self.high:g}]"
        return None


def _seconds() -> MetricRule:
    return MetricRule(0.0, _MAX_SECONDS)


def _count(high: float = 1e9) -> MetricRule:
    return MetricRule(0.0, high, integer=True)


def _score(low: float, high: float) -> MetricRule:
    return MetricRule(low, high, nan=True)


_PSNR = _score(-1000.0, 1000.0)
_SSIM = _score(-1.0, 1.0)
_NMSE = _score(0.0, 1e12)
_LOSS = _score(0.0, 1e12)

# Where a site's time went before its work (client/startup.py, client/app.py): reported by
# every train and evaluate reply.
STARTUP_METRICS: dict[str, MetricRule] = {
    PROCESS_SECONDS: MetricRule(0.0, _MAX_SECONDS, nan=True),  # NaN: not measurable there
    IMPORT_SECONDS: _seconds(),
    SETUP_SECONDS: _seconds(),
    BUILD_SECONDS: _seconds(),
    SITE_WORKER_ANSWERED: MetricRule(0.0, 1.0, integer=True),  # 1: a warm site worker answered
    HANDOFF_SECONDS: _seconds(),  # ClientApp <-> site worker socket round trip
}

TRAIN_METRICS: dict[str, MetricRule] = {
    SLICES_SEEN: _count(),
    LOSS: _LOSS,
    FINAL_LOSS: _LOSS,
    STEPS: _count(),
    SKIPPED_STEPS: _count(),
    TRAIN_SECONDS: _seconds(),
    VAL_PSNR: _PSNR,
    VAL_SSIM: _SSIM,
    VAL_NMSE: _NMSE,
    BAD_FILE_COUNT: _count(),
    TRAINABLE_PARAMETERS: _count(1e12),
    FIELD_STRENGTH: _score(0.0, 20.0),
    DP_EPSILON: MetricRule(0.0, 1e12, infinite=True),
    DP_DELTA: MetricRule(0.0, 1.0),
    DP_STEPS: _count(),
    DP_BUDGET_EXHAUSTED: MetricRule(0.0, 1.0, integer=True),
    # A site with a privacy policy: its epsilon over every run of its ledger, and its caps
    # (NaN: no cap).
    DP_EPSILON_TOTAL: MetricRule(0.0, 1e12, infinite=True),
    DP_EPSILON_TOTAL_CAP: MetricRule(0.0, 1e12, nan=True),
    DP_EPSILON_RUN_CAP: MetricRule(0.0, 1e12, nan=True),
    # Central DP's adaptive clipping: whether the site's update was within the norm.
    KEY_NORM_BIT: MetricRule(0.0, 1.0, integer=True),
    CLIPPED_METRIC: _count(1e12),
    **STARTUP_METRICS,
}
EVALUATE_METRICS: dict[str, MetricRule] = {
    PSNR: _PSNR,
    SSIM: _SSIM,
    NMSE: _NMSE,
    EVAL_SECONDS: _seconds(),
    **STARTUP_METRICS,
}


@dataclasses.dataclass(frozen=True)
class ReplyLimits:
    """``federation.replies``: the bounds on a reply's fields.

    Attributes:
        max_examples: the largest ``num-examples`` a site may report (its training slices).
        max_site_share: the largest share of a round's examples one site may count for
            (more is capped, strategies/example_shares.py); None: 1 / the number of vendors
            that trained, the most vendor-balanced weighting would give a site.
        max_text: characters kept of a free-text field (scanner, a skipped file's path).
        max_bad_files: skipped files kept per reply (the count says how many there were).
        max_breakdown_groups: groups (modality, view, setting) a zero-shot reply may score.
    """

    max_examples: int = RepliesConfig.max_examples
    max_site_share: float | None = RepliesConfig.max_site_share
    max_text: int = RepliesConfig.max_text
    max_bad_files: int = RepliesConfig.max_bad_files
    max_breakdown_groups: int = RepliesConfig.max_breakdown_groups

    def validate(self) -> None:
        for name in ("max_examples", "max_text", "max_bad_files", "max_breakdown_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"federation.replies.{name} must be >= 1")
        if self.max_site_share is not None and not 0.0 < self.max_site_share <= 1.0:
            raise ValueError(
                f"federation.replies.max_site_share must be in (0, 1] or null, "
                f"got {self.max_site_share}"
            )

    def rules(self, phase: str) -> dict[str, MetricRule]:
        """The metrics a ``phase`` reply may carry (``num-examples`` always, but in a roll
        call, which carries none); a zero-shot reply's breakdown keys are checked apart
        (:func:`breakdown_rule`)."""
        if phase == ROLL_CALL:
            return {}
        if phase == TRAIN:
            examples = MetricRule(1.0, float(self.max_examples), integer=True, required=True)
            return {NUM_EXAMPLES: examples, **TRAIN_METRICS}
        if phase not in PHASES:
            raise ValueError(f"unknown reply phase {phase!r}")
        examples = MetricRule(0.0, float(self.max_examples), integer=True, required=True)
        return {NUM_EXAMPLES: examples, **EVALUATE_METRICS}

    def breakdown_rule(self, key: str) -> MetricRule | None:
        """The rule of a zero-shot breakdown key (None: not one)."""
        if _BREAKDOWN_KEY.match(key) is None:
            return None
        metric = key.split("/", 1)[0]
        if metric == "images":
            return MetricRule(1.0, float(self.max_examples), integer=True)
        return EVALUATE_METRICS[metric]


@dataclasses.dataclass(frozen=True)
class CheckedReply:
    """A reply's fields after the checks.

    Attributes:
        site: its site record, free text sanitised (identity fields as sent: they passed).
        metrics: every metric as a float.
        bad_files: the skipped files ({path, reason}, sanitised, at most ``max_bad_files``;
            a last entry counts those left out).
    """

    site: SiteRecord
    metrics: dict[str, float]
    bad_files: list[dict[str, str]]


class ReplyRefusedError(ValueError):
    """A reply with a field the server cannot use; the message names the field and why."""


def check_reply(content: RecordDict, phase: str, limits: ReplyLimits) -> CheckedReply:
    """The checked fields of a ``phase`` reply's ``content``.

    Raises:
        ReplyRefusedError: a missing or malformed site record, an unknown metric, a metric of the
            wrong type or out of its range, a missing ``num-examples``.
    """
    site = _checked_site(content, limits)
    metrics = _checked_metrics(content, limits, phase)
    return CheckedReply(
        site=dataclasses.replace(site, bad_files_json=""),
        metrics=metrics,
        bad_files=bad_file_list(site.bad_files_json, limits),
    )


def clean_text(value: Any, limit: int) -> str:
    """``value`` as printable text without markup, at most ``limit`` characters."""
    text = _UNSAFE_TEXT.sub("?", str(value))
    return text if len(text) <= limit else f"{text[: max(0, limit - 3)]}..."


def bad_file_list(text: str, limits: ReplyLimits) -> list[dict[str, str]]:
    """A site's skipped-files JSON as at most ``max_bad_files`` sanitised {path, reason}."""
    try:
        entries = json.loads(text) if text else []
    except (json.JSONDecodeError, RecursionError):
        return [{"path": "", "reason": "the site's list of skipped files is not valid JSON"}]
    if not isinstance(entries, list):
        entries = [entries]
    kept = [
        {
            "path": clean_text(entry.get("path", ""), limits.max_text),
            "reason": clean_text(entry.get("reason", ""), limits.max_text),
        }
        if isinstance(entry, Mapping)
        else {"path": "", "reason": clean_text(entry, limits.max_text)}
        for entry in entries[: limits.max_bad_files]
    ]
    if len(entries) > limits.max_bad_files:
        left_out = len(entries) - limits.max_bad_files
        kept.append({"path": "", "reason": f"{left_out} more skipped file(s) not listed"})
    return kept


def _checked_site(content: RecordDict, limits: ReplyLimits) -> SiteRecord:
    record = content.config_records.get(SITE_RECORD)
    if record is None:
        raise ReplyRefusedError(f"no '{SITE_RECORD}' record (who the site is)")
    fields = dict(record)
    unknown = sorted(set(fields) - {SITE_ID, VENDOR, SCANNER, BAD_FILES, ROLE})
    if unknown:
        raise ReplyRefusedError(f"unknown site-record field(s) {_names(unknown)}")
    for key in (SITE_ID, VENDOR):
        value = fields.get(key)
        if not isinstance(value, str) or IDENTIFIER.match(value) is None:
            raise ReplyRefusedError(
                f"site-record field '{key}' must be 1-64 letters, digits, '.', '_' or '-', "
                f"got {clean_text(value, 40)!r}"
            )
    for key in (SCANNER, BAD_FILES):
        if key in fields and not isinstance(fields[key], str):
            raise ReplyRefusedError(f"site-record field '{key}' must be text")
    role = fields.get(ROLE, SITE_ROLES[0])
    if role not in SITE_ROLES:
        raise ReplyRefusedError(
            f"site-record field '{ROLE}' must be one of {', '.join(SITE_ROLES)}, "
            f"got {clean_text(role, 40)!r}"
        )
    return SiteRecord(
        site_id=fields[SITE_ID],
        vendor=fields[VENDOR],
        scanner=clean_text(fields.get(SCANNER, ""), limits.max_text),
        bad_files_json=fields.get(BAD_FILES, "[]"),
        role=role,
    )


def _checked_metrics(content: RecordDict, limits: ReplyLimits, phase: str) -> dict[str, float]:
    if list(content.metric_records) not in ([], [METRICS]):
        raise ReplyRefusedError(
            f"metric records {_names(list(content.metric_records))}, expected '{METRICS}'"
        )
    record = content.metric_records.get(METRICS)
    values = dict(record) if record is not None else {}
    rules = dict(limits.rules(phase))
    if phase in BREAKDOWN_PHASES:
        breakdown = {key: limits.breakdown_rule(key) for key in values if key not in rules}
        rules.update({key: rule for key, rule in breakdown.items() if rule is not None})
        groups = {key.split("/", 1)[1] for key in breakdown if breakdown[key] is not None}
        if len(groups) > limits.max_breakdown_groups:
            raise ReplyRefusedError(
                f"{len(groups)} breakdown groups, more than "
                f"federation.replies.max_breakdown_groups={limits.max_breakdown_groups}"
            )
    unknown = sorted(set(values) - set(rules))
    if unknown:
        raise ReplyRefusedError(f"unknown metric(s) {_names(unknown)}")
    missing = sorted(key for key, rule in rules.items() if rule.required and key not in values)
    if missing:
        raise ReplyRefusedError(f"missing metric(s) {_names(missing)}")
    metrics = {}
    for key, value in values.items():
        problem = rules[key].problem(value)
        if problem is not None:
            raise ReplyRefusedError(f"metric '{key}' {problem}")
        metrics[key] = float(value)
    return metrics


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(clean_text(key, 40)) for key in keys[:limit])
    return shown if len(keys) <= limit else f"{shown} and {len(keys) - limit} more"
