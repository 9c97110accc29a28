"""The wire protocol between sites and the coordinator (docs/federation-protocol.md).

Every key of every message, every error code and the site record are declared here, once;
the ClientApp, the ServerApp and the strategies import them (the strategies take them as
parameters where Flower's do).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, RecordDict

# -- a SuperNode's node config ------------------------------------------------------------------
PARTITION_ID = "partition-id"  # simulation: the i-th internal site of the partition
NODE_SITE_ID = "site-id"  # deployment: who the site is
NODE_DATA_PATH = "data-path"  # deployment: where its data lives
NODE_MANIFEST_PATH = "manifest-path"  # deployment: its partition manifest, if any
NODE_SITE_CONFIG = "site-config"  # the site's own settings file (client/site_config.py)
NODE_SITE_WORKER = "site-worker"  # a warm site worker's folder (client/worker.py), optional
NODE_SITE_WORKER_TIMEOUT = "site-worker-timeout"  # seconds of its silence before the fall-back
NODE_ROLE = "role"  # what the site does: ROLE_TRAIN (the default) or ROLE_EVALUATE
ROLE_TRAIN = "train"  # trains and evaluates
ROLE_EVALUATE = "evaluate"  # never trains: scores the global model on all of its data
SITE_ROLES = (ROLE_TRAIN, ROLE_EVALUATE)

# -- records of a message ------------------------------------------------------------------
ARRAYS = "arrays"  # ArrayRecord: the weights (to the site; back from it after training)
CONFIG = "config"  # ConfigRecord: what the server asks for
METRICS = "metrics"  # MetricRecord: the site's numbers
SITE_RECORD = "site"  # ConfigRecord: who replied (SiteRecord)

# -- the train request's config -------------------------------------------------------------
SERVER_ROUND = "server-round"
LOCAL_STEPS = "local-steps"
LEARNING_RATE = "learning-rate"
PROXIMAL_MU = "proximal-mu"
SEED = "seed"

# -- an evaluate request's config --------------------------------------------------------------
CROSS_SITE_MODEL = "cross-site-model"  # present: score this named model on the test split

# -- the reply's metrics (federation/reply_checks.py gives each its range) ---------------------
NUM_EXAMPLES = "num-examples"  # FedAvg's n_k: the site's training slices
SLICES_SEEN = "slices-seen"  # slices trained on this round (the same steps everywhere)
# a train reply
LOSS = "loss"  # mean training loss of the round's steps
FINAL_LOSS = "final-loss"  # the last step's
STEPS = "steps"
SKIPPED_STEPS = "skipped-steps"  # steps whose loss was not finite
TRAIN_SECONDS = "train-seconds"
VAL_PSNR = "val-psnr"  # on the site's validation split after training
VAL_SSIM = "val-ssim"
VAL_NMSE = "val-nmse"
BAD_FILE_COUNT = "bad-files"  # files the site skipped (their reasons are in its site record)
TRAINABLE_PARAMETERS = "trainable-parameters"
FIELD_STRENGTH = "field-strength"  # tesla, of the site's first scanner
DP_EPSILON = "dp-epsilon"  # this run's, so far
DP_DELTA = "dp-delta"
DP_STEPS = "dp-steps"
DP_BUDGET_EXHAUSTED = "dp-budget-exhausted"  # 1: the site will train no more
DP_EPSILON_TOTAL = "dp-epsilon-total"  # over every run of the site's ledger
DP_EPSILON_TOTAL_CAP = "dp-epsilon-total-cap"  # NaN: no cap
DP_EPSILON_RUN_CAP = "dp-epsilon-run-cap"  # NaN: no cap
# an evaluate reply
PSNR = "psnr"
SSIM = "ssim"
NMSE = "nmse"
EVAL_SECONDS = "eval-seconds"
# every reply: where the site's time went before its work
PROCESS_SECONDS = "process-seconds"  # NaN where not measurable
IMPORT_SECONDS = "import-seconds"
SETUP_SECONDS = "setup-seconds"
BUILD_SECONDS = "build-seconds"
SITE_WORKER_ANSWERED = "site-worker"  # 1: a warm site worker did the task
HANDOFF_SECONDS = "handoff-seconds"  # ClientApp <-> site worker socket round trip
REPLY_METRICS = (
    NUM_EXAMPLES, SLICES_SEEN, LOSS, FINAL_LOSS, STEPS, SKIPPED_STEPS, TRAIN_SECONDS, VAL_PSNR,
    VAL_SSIM, VAL_NMSE, BAD_FILE_COUNT, TRAINABLE_PARAMETERS, FIELD_STRENGTH, DP_EPSILON,
    DP_DELTA, DP_STEPS, DP_BUDGET_EXHAUSTED, DP_EPSILON_TOTAL, DP_EPSILON_TOTAL_CAP,
    DP_EPSILON_RUN_CAP, PSNR, SSIM, NMSE, EVAL_SECONDS, PROCESS_SECONDS, IMPORT_SECONDS,
    SETUP_SECONDS, BUILD_SECONDS, SITE_WORKER_ANSWERED, HANDOFF_SECONDS,
)  # fmt: skip

# -- the site record's fields -------------------------------------------------------------------
SITE_ID = "site-id"
VENDOR = "vendor"
SCANNER = "scanner"
BAD_FILES = "bad-files-json"  # JSON list of {path, reason}
ROLE = "role"  # ROLE_TRAIN or ROLE_EVALUATE (absent: train)
SITE_FIELDS = (SITE_ID, VENDOR, SCANNER)
UNKNOWN_VENDOR = "unknown"

# -- an evaluation-only site's evaluate reply ------------------------------------------------------
# Besides psnr / ssim / nmse / num-examples over all its images, one entry per group of
# images (modality, cardiac view, undersampling): "<metric>/<group>", metric one of
# BREAKDOWN_METRICS, group e.g. "cine.short-axis.ktGaussian16".
BREAKDOWN_METRICS = ("psnr", "ssim", "nmse", "images")
_NOT_IN_GROUP = re.compile(r"[^A-Za-z0-9_-]+")


def breakdown_group(modality: str, cardiac_view: str, setting: str) -> str:
    """The group name of a breakdown key: its parts with anything but letters, digits, '_'
    and '-' replaced by '-', joined by '.'."""
    return ".".join(_NOT_IN_GROUP.sub("-", part) for part in (modality, cardiac_view, setting))


def breakdown_key(metric: str, group: str) -> str:
    return f"{metric}/{group}"


# -- error codes of a reply (Flower reserves none for applications) ----------------------------
SITE_FAILURE = 1  # the site could not do its part; the reason names it and the problem
PRIVACY_BUDGET_SPENT = 2  # a DP-SGD site whose epsilon budget is spent trains no more
CROSS_SITE_DECLINED = 3  # the site does not score other models (sharing.cross_site_evaluation)
PRIVACY_POLICY_REFUSED = 4  # the run's privacy settings break the site's own privacy policy

# -- secure aggregation (privacy=secagg) ----------------------------------------------------------
SECURE_RECORD = "secure-aggregation"  # ConfigRecord marking a train-and-announce request
STAGE_KEY = "stage"
STAGE_TRAIN = "train-and-announce"
WEIGHT_KEY = "secagg-weight"  # integer weight of this site
WEIGHT_SCALE_KEY = "secagg-weight-scale"  # the weight that counts as 1 (= max_weight)
CLIPPING_KEY = "secagg-clipping-range"
CLIPPED_METRIC = "clipped-values"


@dataclasses.dataclass(frozen=True)
class SiteRecord:
    """Who a reply comes from, as the site says.

    Attributes:
        site_id: the centre, e.g. ``Center001``.
        vendor: the vendor holding most of its images.
        scanner: its scanner folders, comma-separated.
        bad_files_json: the files it skipped, a JSON list of {path, reason}.
        role: what the site does, :data:`ROLE_TRAIN` or :data:`ROLE_EVALUATE`.
    """

    site_id: str
    vendor: str = UNKNOWN_VENDOR
    scanner: str = ""
    bad_files_json: str = "[]"
    role: str = ROLE_TRAIN

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                SITE_ID: self.site_id,
                VENDOR: self.vendor,
                SCANNER: self.scanner,
                BAD_FILES: self.bad_files_json,
                ROLE: self.role,
            }
        )

    @classmethod
    def of(cls, content: RecordDict, node_id: int) -> SiteRecord:
        """The site record of a reply's content. A reply without one (not our ClientApp) is
        told apart by its node: ``node-<id>``, vendor unknown; the one fallback of the
        project, so that a site never appears under two names."""
        fields = _site_fields(content)
        return cls(
            site_id=str(fields[SITE_ID]) if SITE_ID in fields else node_name(node_id),
            vendor=vendor_of(content),
            scanner=str(fields.get(SCANNER, "")),
            bad_files_json=str(fields.get(BAD_FILES, "[]")),
            role=str(fields.get(ROLE, ROLE_TRAIN)),
        )


def vendor_of(content: RecordDict) -> str:
    """The vendor a reply's site record names (``unknown`` without one)."""
    fields = _site_fields(content)
    return str(fields[VENDOR]) if VENDOR in fields else UNKNOWN_VENDOR


def with_records(content: RecordDict, records: Mapping[str, Any]) -> RecordDict:
    """A new RecordDict: ``content`` with ``records`` put in (replacing those of the same
    names). Flower's strategies give every message the same RecordDict, so a message that
    needs its own records gets its own dict."""
    replaced = RecordDict({key: record for key, record in content.items() if key not in records})
    for key, record in records.items():
        replaced[key] = record
    return replaced


def node_name(node_id: int) -> str:
    """How a node without a site record is named: ``node-<id>``."""
    return f"node-{node_id}"


def _site_fields(content: RecordDict) -> Mapping[str, Any]:
    return content.config_records.get(SITE_RECORD) or {}
