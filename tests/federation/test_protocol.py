"""The site record: written once by the ClientApp, read with one fallback everywhere; the
reply metrics: named once, each with a range the server checks."""

import ast
from pathlib import Path

from flwr.app import RecordDict

from federation.protocol import NUM_EXAMPLES, REPLY_METRICS, SITE_RECORD, SiteRecord, vendor_of
from federation.reply_checks import EVALUATE_METRICS, TRAIN_METRICS


def test_a_site_record_reads_back_what_was_written():
    written = SiteRecord("Center003", "GE", "GE_15T_SignaArtist", '[{"path": "x"}]')
    content = RecordDict({SITE_RECORD: written.to_record()})
    assert SiteRecord.of(content, node_id=5) == written
    assert vendor_of(content) == "GE"


def test_a_reply_without_a_site_record_is_named_by_its_node():
    record = SiteRecord.of(RecordDict(), node_id=5)
    assert (record.site_id, record.vendor, record.bad_files_json) == ("node-5", "unknown", "[]")
    assert vendor_of(RecordDict()) == "unknown"


# Where a reply metric's spelling may appear besides federation/protocol.py: the history
# record's own "bad-files" field (federation/records.py, written by server/replies.py), the
# site-worker command and the library's training summary are other things of the same name.
_SAME_SPELLING_ELSEWHERE = {
    ("federation/records.py", "bad-files"),
    ("server/replies.py", "bad-files"),
    ("server/round_records.py", "bad-files"),
    ("client/commands/site_worker.py", "site-worker"),  # the command's name
    ("simulations/loopback_deployment.py", "site-worker"),  # the command's name
    # `cardiomm train` prints cardiomm.train's own result keys (TrainResult.metrics()).
    *(
        ("simulations/commands/train.py", name)
        for name in ("final-loss", "train-seconds", "val-psnr", "val-ssim", "val-nmse")
    ),
}
_WIRE_PACKAGES = ("client", "server", "federation", "strategies", "simulations", "benchmarks")


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_every_reply_metric_is_spelled_only_in_the_protocol():
    root = Path(__file__).resolve().parents[2]
    # The hyphenated names are the wire's own; psnr, loss, steps ... are ordinary words too.
    names = {name for name in REPLY_METRICS if "-" in name}
    spelled = []
    for package in _WIRE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative == "federation/protocol.py":
                continue
            for name in sorted(names & _string_constants(path)):
                if (relative, name) not in _SAME_SPELLING_ELSEWHERE:
                    spelled.append(f"{relative}: {name!r}")
    assert spelled == []


def test_every_reply_metric_has_a_range_the_server_checks():
    # num-examples' range is the site's own size, set per reply (metric_rules).
    checked = set(TRAIN_METRICS) | set(EVALUATE_METRICS) | {NUM_EXAMPLES}
    assert [name for name in REPLY_METRICS if name not in checked] == []
