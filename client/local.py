"""A site's round in the protocol's numbers: the library's round (:mod:`cardiomm.site_round`)
translated into the metrics of a Flower reply (federation/protocol.py).

The work (policy check, calibration, budget, ledger, training, evaluation) is the library's;
what is here only names its results with the wire keys and fills NaN where a number is not
released: with DP-SGD the training losses are withheld (an exact function of the private
slices, released without noise, would step outside the (epsilon, delta) the site reports;
they stay in the site's own log).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cardiomm.site_round import PrivacyReport, Scores, TrainedRound
from federation.protocol import (
    BAD_FILE_COUNT,
    BUILD_SECONDS,
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
    LOSS,
    NMSE,
    NUM_EXAMPLES,
    PSNR,
    SKIPPED_STEPS,
    SLICES_SEEN,
    SSIM,
    STEPS,
    TRAIN_SECONDS,
    TRAINABLE_PARAMETERS,
    VAL_NMSE,
    VAL_PSNR,
    VAL_SSIM,
    breakdown_group,
    breakdown_key,
)

NAN = float("nan")
# The reply of a site with nothing to score.
NOTHING_SCORED = {NUM_EXAMPLES: 0.0, PSNR: NAN, SSIM: NAN, NMSE: NAN, EVAL_SECONDS: 0.0}


def train_metrics(field_strengths: tuple[float, ...], trained: TrainedRound) -> dict[str, float]:
    """The metrics of a train reply from a :class:`~cardiomm.site_round.TrainedRound`."""
    result = trained.result
    metrics = {
        # FedAvg's n_k: the site's training slices. Every site takes the same local steps, so
        # the slices it saw this round (slices-seen) would weigh all sites alike.
        NUM_EXAMPLES: float(trained.train_examples),
        SLICES_SEEN: float(result.examples),
        LOSS: result.loss,
        FINAL_LOSS: result.final_loss,
        STEPS: float(result.steps),
        SKIPPED_STEPS: float(result.skipped_steps),
        TRAIN_SECONDS: result.seconds,
        VAL_PSNR: result.validation.get("psnr", NAN),
        VAL_SSIM: result.validation.get("ssim", NAN),
        VAL_NMSE: result.validation.get("nmse", NAN),
        BAD_FILE_COUNT: float(len(trained.skipped)),
        FIELD_STRENGTH: field_strengths[0] if field_strengths else NAN,
        BUILD_SECONDS: trained.build_seconds,
        TRAINABLE_PARAMETERS: float(result.trainable_parameters),
    }
    if trained.privacy is not None:
        metrics.update(_privacy_metrics(trained.privacy))
    return metrics


def _privacy_metrics(report: PrivacyReport) -> dict[str, float]:
    """The DP-SGD numbers of a :class:`~cardiomm.site_round.PrivacyReport`; the training
    losses withheld."""
    metrics = {
        LOSS: NAN,
        FINAL_LOSS: NAN,
        DP_EPSILON: report.epsilon,
        DP_DELTA: report.delta,
        DP_STEPS: float(report.steps),
        DP_BUDGET_EXHAUSTED: float(report.budget_exhausted),
    }
    if report.ledger is not None:  # with a policy: the total over every run and the caps
        metrics[DP_EPSILON_TOTAL] = report.ledger.total_epsilon
        metrics[DP_EPSILON_TOTAL_CAP] = _or_nan(report.ledger.total_cap)
        metrics[DP_EPSILON_RUN_CAP] = _or_nan(report.ledger.run_cap)
    return metrics


def validation_metrics(scores: Scores | None) -> dict[str, float]:
    """The metrics of an evaluate reply from the validation split's
    :class:`~cardiomm.site_round.Scores` (None: nothing to score, NaN scores)."""
    if scores is None:
        return dict(NOTHING_SCORED)
    return {
        NUM_EXAMPLES: float(scores.examples),
        PSNR: scores.mean["psnr"],
        SSIM: scores.mean["ssim"],
        NMSE: scores.mean["nmse"],
        EVAL_SECONDS: scores.seconds,
        BUILD_SECONDS: scores.build_seconds,
    }


def score_metrics(scores: Scores | None) -> dict[str, float]:
    """The metrics of a model scored on a set of files (an evaluation-only site, the
    cross-site matrix): ``num-examples`` (images scored), ``psnr`` / ``ssim`` / ``nmse`` over
    all of them, per (modality, cardiac view, setting) group ``<metric>/<group>`` with
    ``images/<group>``, and ``eval-seconds`` (None: no file given, NaN scores)."""
    if scores is None:
        return dict(NOTHING_SCORED)
    metrics = {
        NUM_EXAMPLES: float(scores.examples),
        PSNR: scores.mean["psnr"],
        SSIM: scores.mean["ssim"],
        NMSE: scores.mean["nmse"],
    }
    for row in scores.groups:
        metrics.update(_group_metrics(row))
    metrics[EVAL_SECONDS] = scores.seconds
    metrics[BUILD_SECONDS] = scores.build_seconds
    return metrics


def _group_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    group = breakdown_group(row["modality"], row["cardiac_view"], row["mask"])
    metrics = {breakdown_key("images", group): float(row["images"])}
    for metric in ("psnr", "ssim", "nmse"):
        metrics[breakdown_key(metric, group)] = float(row[metric])
    return metrics


def skipped_files_json(skipped: list[dict[str, str]]) -> str:
    return json.dumps(skipped)


def _or_nan(value: float | None) -> float:
    return NAN if value is None else value
