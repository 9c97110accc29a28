"""A site's privacy ledger: every DP-SGD step it has taken, per federated run, on its own disk.

Flower's ``context.state`` lives as long as one run on one SuperNode process; a site's
budget has to outlive both. The ledger is a JSON file the site owns (its path comes from the
site's privacy policy, cardiomm/privacy/policy.py)::

    {"format": "cardiomm-privacy-ledger", "version": 1,
     "runs": {"<run id>": {"noise-multiplier": [...], "sample-rate": [...], "steps": [...],
                           "updated": "2026-12-05T00:10:00+00:00"}}}

one accountant history (cardiomm/privacy/accountant.py) per run. The epsilon of a run is
its history's; the total is the RDP composition of every run's history (tighter than adding
the epsilons, and still an upper bound). A run's entry is written after each round's
training and before the site replies, so a reply that never arrives is still charged.

Writes go to a temporary file that is flushed, synced and renamed over the ledger, under
an exclusive lock, so a crash or a second process never leaves a half-written or lost
entry. A ledger that cannot be read is an error, never an empty ledger: treating it as empty
would hand the site a fresh budget.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cardiomm.privacy.accountant import HistoryEntry, SiteAccountant

LEDGER_FORMAT = "cardiomm-privacy-ledger"
LEDGER_VERSION = 1


class LedgerError(RuntimeError):
    """The ledger cannot be read or written; the message names the file."""


class PrivacyLedger:
    """The ledger file at ``path`` (created on the first write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def runs(self) -> dict[str, SiteAccountant]:
        """Each recorded run's accountant, by run id."""
        with self._locked(exclusive=False):
            return {run: self._accountant(run, lists) for run, lists in self._read().items()}

    def run(self, run_id: str) -> SiteAccountant | None:
        """The accountant of ``run_id`` (None when the run has not trained here yet)."""
        return self.runs().get(str(run_id))

    def others(self, run_id: str) -> list[HistoryEntry]:
        """Every step of every run but ``run_id``, as one history."""
        return [
            entry
            for run, accountant in self.runs().items()
            if run != str(run_id)
            for entry in accountant.history
        ]

    def total_epsilon(self, delta: float) -> float:
        """The epsilon of every recorded step together (0 for an empty ledger)."""
        every = [entry for accountant in self.runs().values() for entry in accountant.history]
        return SiteAccountant(every).epsilon(delta)

    def record(self, run_id: str, accountant: SiteAccountant) -> None:
        """Replace ``run_id``'s entry with ``accountant``'s history, atomically."""
        with self._locked(exclusive=True):
            runs = self._read()
            entry: dict[str, Any] = dict(accountant.to_lists())
            entry["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            runs[str(run_id)] = entry
            self._write(runs)

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a")  # noqa: SIM115 - held for the block below
        except OSError as error:
            raise LedgerError(f"privacy ledger {self.path}: cannot lock ({error})") from error
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            content = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LedgerError(
                f"privacy ledger {self.path} cannot be read ({error}); the site trains with "
                "DP-SGD no more until its operator restores it"
            ) from error
        if (
            not isinstance(content, dict)
            or content.get("format") != LEDGER_FORMAT
            or content.get("version") != LEDGER_VERSION
            or not isinstance(content.get("runs"), dict)
        ):
            raise LedgerError(
                f"privacy ledger {self.path} is not a version-{LEDGER_VERSION} CardioMM-FL "
                "ledger; the site trains with DP-SGD no more until its operator restores it"
            )
        return content["runs"]

    def _write(self, runs: dict[str, dict[str, Any]]) -> None:
        content = {"format": LEDGER_FORMAT, "version": LEDGER_VERSION, "runs": runs}
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            with open(partial, "w") as handle:
                json.dump(content, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.path)
        except OSError as error:
            raise LedgerError(f"privacy ledger {self.path}: cannot write ({error})") from error

    def _accountant(self, run: str, lists: Any) -> SiteAccountant:
        where = f"run {run} of the privacy ledger {self.path}"
        if not isinstance(lists, dict):
            raise LedgerError(f"{where} is not a mapping")
        try:
            return SiteAccountant.from_lists(lists, where)
        except (ValueError, TypeError) as error:
            raise LedgerError(str(error)) from error
