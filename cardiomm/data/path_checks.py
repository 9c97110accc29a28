"""Why a path under a site's data cannot be used, named in one place.

A symlink loop, a dangling symlink, a folder the site cannot list, a file it cannot open, a
folder where a file is expected (or the reverse), a FIFO or device: each gets one short reason
here, so that the data-root walk (cardiomm/cohort/layout.py), the readers and check-site list
a bad path the same way and skip it instead of raising.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

FILE = "file"
FOLDER = "folder"
# The reason for a path that is simply not there (callers raise FileNotFoundError for it).
MISSING = "no such file or folder"
SYMLINK_LOOP = "a symlink loop"
PERMISSION_DENIED = "permission denied"


def path_problem(path: str | Path, expected: str) -> str | None:
    """The reason ``path`` cannot be used as a ``file`` or a ``folder``; None when it can.

    A file must be a regular file that opens for reading, a folder one that lists: the
    permission bits are not trusted alone (root ignores them, network file systems add their
    own rules), so the path is opened. A FIFO or device is refused before it is opened, as
    opening a FIFO waits for a writer.
    """
    if expected not in (FILE, FOLDER):
        raise ValueError(f"expected must be {FILE!r} or {FOLDER!r}, got {expected!r}")
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        return _dangling(path) if error.errno == errno.ENOENT else os_error_reason(error)
    if expected == FOLDER:
        if not stat.S_ISDIR(status.st_mode):
            return "not a folder"
        return _cannot(lambda: os.scandir(path).close())
    if stat.S_ISDIR(status.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file (a FIFO, socket or device)"
    return _cannot(lambda: os.close(os.open(path, os.O_RDONLY)))


def os_error_reason(error: OSError) -> str:
    """A short reason for an ``OSError`` met on a data path, without the path."""
    if error.errno == errno.ELOOP:
        return SYMLINK_LOOP
    if error.errno in (errno.EACCES, errno.EPERM):
        return PERMISSION_DENIED
    if error.errno == errno.ENOENT:
        return MISSING
    if error.errno == errno.ENOTDIR:
        return "a path through something that is not a folder"
    return (error.strerror or type(error).__name__).lower()


def _dangling(path: Path) -> str:
    try:
        return f"a dangling symlink (to {os.readlink(path)})"
    except OSError:  # not a symlink (or gone meanwhile): the path is just not there
        return MISSING


def _cannot(attempt: Callable[[], object]) -> str | None:
    try:
        attempt()
    except OSError as error:
        return os_error_reason(error)
    return None
