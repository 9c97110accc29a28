"""``bad_files.jsonl``: every file a run skipped, at whichever stage, with the reason.

One JSON object per line: ``{"file": ..., "reason": ..., "stage": ...}`` where the stage is
``partition`` (the header could not be read while the data set was partitioned), ``index``
(the same while a dataset was built), or ``read`` (an image could not be used when it was
read: non-finite, all-zero or overflowing k-space). Lines are appended, so one report
collects every stage of a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

PARTITION = "partition"
INDEX = "index"
READ = "read"


def append_bad_files(report: str | Path, entries: Iterable[Mapping[str, str]], stage: str) -> int:
    """Append ``entries`` ({path, reason} each) to ``report`` under ``stage``; how many."""
    lines = [
        json.dumps({"file": str(entry["path"]), "reason": str(entry["reason"]), "stage": stage})
        for entry in entries
    ]
    if not lines:
        return 0
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(report, "a") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return len(lines)
