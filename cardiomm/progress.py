"""Progress bars for long loops and consoles for tables (rich)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

Item = TypeVar("Item")


def progress_bar(items: Iterable[Item], description: str, enabled: bool = True) -> Iterator[Item]:
    """Iterate ``items`` with a rich progress bar.

    Plain iteration when disabled or when output is not a terminal (logs, CI), where a bar
    would only leave empty lines behind.
    """
    from rich.console import Console

    if not enabled or not Console().is_terminal:
        yield from items
        return
    from rich.progress import track

    total = len(items) if isinstance(items, Sized) else None
    yield from track(items, description=description, total=total, transient=True)


def make_console() -> Console:
    """A rich console; when output is not a terminal (logs, CI), 160 columns instead of 80,
    so tables of sites and scanners keep their names whole."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))
