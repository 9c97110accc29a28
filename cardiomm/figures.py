"""Writing matplotlib figures: the folder made, the figure closed (its memory freed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_figure(figure: Any, path: str | Path, dpi: int) -> Path:
    """Lay out ``figure``, write it to ``path`` (folders made) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
