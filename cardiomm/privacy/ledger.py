"""A site's privacy ledger: every DP-SGD step it has taken, per federated run, on its own disk.

Flower's ``context.state`` lives as long as one run on one SuperNode process; a site's
budget has to outlive both. The ledger is a JSON file the site owns (its path comes from the
site's privacy policy, cardiomm/privacy/policy.py)::

    {"format": "cardiomm-privacy-ledger", "version": 1,
     "runs": {"<run id>": {"noise-multiplier": [...], "sample-rate": [...], "steps": [...],
                           "updated": "2026-12-05T00:10:00+00:00"}}}

one accountant history (cardiomm/privacy/accountant.py) per run. The epsilon of a run is
its history's; the total is the RDP composition of every run's history (tighter than adding
the epsilons, and still an upper bound).

Charging is one step (:meth:`PrivacyLedger.update`): one exclusive lock is held while the
ledger is read, the caller decides what the run's new entry is (and may refuse), and the
entry is written. Two runs at once cannot both pass a check that only one of them fits.

Beside the ledger lies its journal, ``<ledger>.journal``: one JSON line per charge (the
run's whole entry after it, with the run id), appended and synced before the ledger is
replaced, never rewritten. The ledger is the journal's last line per run, so each read
checks the two agree; a ledger that is missing while the journal records charges, or that
disagrees with it, is an error: a budget never silently vanishes. The one disagreement this
code itself can leave, a crash after a line was appended and before the ledger was
replaced, is read as the journal says and repaired by the next charge (the charge stays:
it may have been spent). A journal missing beside an existing ledger (a ledger from before
journals, or a deleted journal) starts afresh from the ledger, which still holds every
charge. With neither file there is no record of any charge: removing both is how an
operator deliberately resets the site's budget, and the fresh ledger is logged as such.

A ledger lost while its journal survives is rebuilt by :meth:`PrivacyLedger.restore` (the
command ``cardiomm ledger restore``): each run's last journal line, read with the same checks,
into a new ledger; it never overwrites a ledger and leaves the journal as it is, so the
spent budget comes back whole. The journal is never compacted: each line holds one run's
entry, whose history merges steps of one noise multiplier and sample rate, so it grows by a
line of about 150 bytes per charge (a round).

Writes go to a temporary file that is flushed, synced and renamed over the ledger, so a
crash never leaves a half-written entry. A ledger that cannot be read is an error, never an
empty ledger: treating it as empty would hand the site a fresh budget. Every value is
checked as it is read (finite, in range, of its type); the error is one line naming the
file, the run, the entry and the field.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cardiomm.privacy.accountant import HistoryEntry, SiteAccountant

LEDGER_FORMAT = "cardiomm-privacy-ledger"
LEDGER_VERSION = 1
_ENTRY_KEYS = {"noise-multiplier", "sample-rate", "steps", "updated"}
_RESTORE = "the site trains with DP-SGD no more until its operator restores it"
logger = logging.getLogger(__name__)


class LedgerError(RuntimeError):
    """The ledger cannot be read or written; the message names the file."""


class PrivacyLedger:
    """The ledger file at ``path`` and its journal (created on the first charge)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")

    def runs(self) -> dict[str, SiteAccountant]:
        """Each recorded run's accountant, by run id."""
        with self._locked(exclusive=False):
            return self._checked_runs(repair=False)

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

    def update(
        self, run_id: str, change: Callable[[dict[str, SiteAccountant]], SiteAccountant]
    ) -> SiteAccountant:
        """Replace ``run_id``'s entry with ``change(every run's accountant)``, all under one
        exclusive lock; an exception from ``change`` writes nothing. An entry with fewer
        steps than the recorded one is refused: a charge is never taken back."""
        run_id = str(run_id)
        with self._locked(exclusive=True):
            if not self.path.exists() and not self.journal.exists():
                logger.warning(
                    "privacy ledger %s and its journal do not exist: a new ledger starts with "
                    "no DP-SGD budget spent (a site that had them was reset by its operator)",
                    self.path,
                )
                # An empty ledger first: then a crash after the first journal line leaves a
                # ledger one charge behind (repaired), never a missing one (refused).
                self._write({})
            runs = self._checked_runs(repair=True)
            accountant = change(dict(runs))
            recorded = runs.get(run_id)
            if recorded is not None and accountant.steps < recorded.steps:
                raise LedgerError(
                    f"privacy ledger {self.path}: run {run_id} would go from {recorded.steps} "
                    f"to {accountant.steps} DP-SGD steps; a charge is never taken back"
                )
            entry: dict[str, Any] = dict(accountant.to_lists())
            entry["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            self._append({"run": run_id, **entry})  # first: the charge outlives the ledger
            self._write({**{run: _entry(a) for run, a in runs.items()}, run_id: entry})
            return accountant

    def record(self, run_id: str, accountant: SiteAccountant) -> None:
        """Replace ``run_id``'s entry with ``accountant``'s history (never fewer steps)."""
        self.update(run_id, lambda _runs: accountant)

    def restore(self) -> dict[str, SiteAccountant]:
        """Rebuild a missing ledger from its journal (each run's last line, checked as every
        read checks it); the journal is not changed. Returns the runs restored.

        Raises:
            LedgerError: the ledger exists (it is never overwritten), there is no journal or
                it records no charge, a journal value is malformed, or a run's charges ever
                go down in steps (a journal edited by hand: nothing is written).
        """
        with self._locked(exclusive=True):
            if self.path.exists() or self.path.is_symlink():
                raise LedgerError(
                    f"privacy ledger {self.path} exists: a restore never overwrites a ledger "
                    f"(move it aside first to rebuild it from {self.journal})"
                )
            if not self.journal.exists():
                raise LedgerError(
                    f"privacy journal {self.journal} does not exist: nothing to restore "
                    f"{self.path} from"
                )
            lines = self._journal_lines(repair=False)
            if not lines:
                raise LedgerError(f"privacy journal {self.journal} records no charge to restore")
            _check_never_taken_back(lines, self.journal)
            self._write({run: _entry(accountant) for run, accountant in dict(lines).items()})
            logger.warning(
                "privacy ledger %s restored from its journal %s", self.path, self.journal
            )
            return self._checked_runs(repair=False)

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

    def _checked_runs(self, repair: bool) -> dict[str, SiteAccountant]:
        """The runs, once the ledger and its journal agree (module docstring); ``repair``
        (under the exclusive lock) writes what the journal says over a ledger a crash left
        one charge behind, and starts a missing journal from the ledger."""
        ledger = self._read() if self.path.exists() else None
        if not self.journal.exists():
            if ledger is None:
                return {}
            if repair:
                logger.warning(
                    "privacy ledger %s has no journal: one starts from the ledger", self.path
                )
                for run, accountant in ledger.items():
                    self._append({"run": run, **_entry(accountant)})
            return ledger
        lines = self._journal_lines(repair)
        if not lines:
            if ledger:
                raise LedgerError(
                    f"privacy ledger {self.path} records {len(ledger)} run(s) but its journal "
                    f"{self.journal} is empty; {_RESTORE}"
                )
            return ledger or {}
        journal = dict(lines)
        if ledger is None:
            raise LedgerError(
                f"privacy ledger {self.path} is missing but its journal {self.journal} records "
                f"{len(lines)} charge(s) of {len(journal)} run(s); {_RESTORE} (removing both "
                "files resets the site's budget, the operator's deliberate act)"
            )
        if _same(ledger, journal):
            return ledger
        before_last = dict(lines[:-1])
        if _same(ledger, before_last):  # a crash between the journal's line and the ledger
            logger.warning(
                "privacy ledger %s lacks the last charge of its journal (run %s): the "
                "journal's is in force",
                self.path,
                lines[-1][0],
            )
            if repair:
                self._write({run: _entry(accountant) for run, accountant in journal.items()})
            return journal
        raise LedgerError(
            f"privacy ledger {self.path} disagrees with its journal {self.journal}: "
            f"{_difference(ledger, journal)}; {_RESTORE}"
        )

    def _read(self) -> dict[str, SiteAccountant]:
        try:
            content = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LedgerError(
                f"privacy ledger {self.path} cannot be read ({error}); {_RESTORE}"
            ) from error
        if (
            not isinstance(content, dict)
            or content.get("format") != LEDGER_FORMAT
            or content.get("version") != LEDGER_VERSION
            or not isinstance(content.get("runs"), dict)
        ):
            raise LedgerError(
                f"privacy ledger {self.path} is not a version-{LEDGER_VERSION} CardioMM-FL "
                f"ledger; {_RESTORE}"
            )
        return {
            run: self._accountant(lists, f"privacy ledger {self.path}, run {run}")
            for run, lists in content["runs"].items()
        }

    def _journal_lines(self, repair: bool) -> list[tuple[str, SiteAccountant]]:
        """(run id, its accountant after the charge) per journal line, oldest first. A last
        line without its newline is an append a crash cut short (the ledger was not yet
        replaced, nothing trained): it is left out, and cut off by ``repair``."""
        try:
            data = self.journal.read_bytes()
            cut = data.rfind(b"\n") + 1  # past the last complete line
            complete, torn = data[:cut].decode(), data[cut:]
        except (OSError, UnicodeDecodeError) as error:
            raise LedgerError(
                f"privacy journal {self.journal} cannot be read ({error}); {_RESTORE}"
            ) from error
        if torn:
            logger.warning("privacy journal %s ends in a cut-short line: left out", self.journal)
            if repair:
                _truncate(self.journal, cut)
        lines = []
        for number, line in enumerate(complete.splitlines(), start=1):
            where = f"privacy journal {self.journal}, line {number}"
            try:
                charge = json.loads(line)
            except json.JSONDecodeError as error:
                raise LedgerError(f"{where} cannot be read ({error}); {_RESTORE}") from error
            if not isinstance(charge, dict) or not isinstance(charge.get("run"), str):
                raise LedgerError(f"{where} is not a charge of a run; {_RESTORE}")
            run = charge.pop("run")
            lines.append((run, self._accountant(charge, f"{where}, run {run}")))
        return lines

    def _append(self, charge: dict[str, Any]) -> None:
        created = not self.journal.exists()
        try:
            with open(self.journal, "a") as handle:
                handle.write(json.dumps(charge) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            if created:
                _sync_folder(self.journal.parent)
        except OSError as error:
            raise LedgerError(f"privacy journal {self.journal}: cannot append ({error})") from error

    def _write(self, runs: dict[str, dict[str, Any]]) -> None:
        content = {"format": LEDGER_FORMAT, "version": LEDGER_VERSION, "runs": runs}
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            with open(partial, "w") as handle:
                json.dump(content, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.path)
            _sync_folder(self.path.parent)  # the rename itself survives a power cut
        except OSError as error:
            raise LedgerError(f"privacy ledger {self.path}: cannot write ({error})") from error

    @staticmethod
    def _accountant(lists: Any, where: str) -> SiteAccountant:
        if not isinstance(lists, dict):
            raise LedgerError(f"{where} is not a mapping; {_RESTORE}")
        unknown = sorted(set(map(str, lists)) - _ENTRY_KEYS)
        if unknown:
            raise LedgerError(f"{where}: unknown field(s) {', '.join(unknown)}; {_RESTORE}")
        if not isinstance(lists.get("updated", ""), str):
            raise LedgerError(f"{where}: updated {lists['updated']!r} is not a time; {_RESTORE}")
        try:
            return SiteAccountant.from_lists(lists, where)
        except (ValueError, TypeError) as error:
            raise LedgerError(f"{error}; {_RESTORE}") from error


def _check_never_taken_back(lines: list[tuple[str, SiteAccountant]], journal: Path) -> None:
    """Each run's steps never go down from one journal line to a later one (no code of this
    module writes such a journal)."""
    steps: dict[str, int] = {}
    for number, (run, accountant) in enumerate(lines, start=1):
        if accountant.steps < steps.get(run, 0):
            raise LedgerError(
                f"privacy journal {journal}, line {number}: run {run} goes from "
                f"{steps[run]} to {accountant.steps} DP-SGD steps; a charge is never taken "
                "back, so the journal was edited: nothing restored"
            )
        steps[run] = accountant.steps


def _entry(accountant: SiteAccountant) -> dict[str, Any]:
    return dict(accountant.to_lists())


def _same(ledger: dict[str, SiteAccountant], journal: dict[str, SiteAccountant]) -> bool:
    return ledger.keys() == journal.keys() and all(
        ledger[run].history == journal[run].history for run in ledger
    )


def _difference(ledger: dict[str, SiteAccountant], journal: dict[str, SiteAccountant]) -> str:
    """The first run the two disagree on, in words."""
    for run in sorted(ledger.keys() | journal.keys()):
        in_ledger, in_journal = ledger.get(run), journal.get(run)
        if in_ledger is None or in_journal is None or in_ledger.history != in_journal.history:
            steps = [
                "no entry" if accountant is None else f"{accountant.steps} DP-SGD steps"
                for accountant in (in_ledger, in_journal)
            ]
            return f"run {run} has {steps[0]} in the ledger, {steps[1]} in the journal"
    return "no run differs"


def _truncate(path: Path, size: int) -> None:
    try:
        with open(path, "r+b") as handle:
            handle.truncate(size)
            os.fsync(handle.fileno())
    except OSError as error:
        raise LedgerError(f"privacy journal {path}: cannot cut its last line ({error})") from error


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
