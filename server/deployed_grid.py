"""The grid of a deployment, made faster where Flower 1.42's own transport is slow.

Only Flower's deployed grid (``HttpGrid``) is wrapped: a simulation moves messages in
memory (no request per array, replies looked for every 0.1 s), where packing would only
add copies (measured with the paper-size model: 15.2 s per round packed against 10.5 s,
benchmarks/README.md), and test grids answer at once.
"""

from __future__ import annotations

from flwr.serverapp import Grid

from server.packed_grid import PackedArraysGrid
from server.prompt_grid import PromptGrid
from server.settings import FederationSettings


def deployed(grid: Grid, settings: FederationSettings, secure: bool) -> Grid:
    """``grid`` with replies pulled every ``federation.reply_poll_seconds`` and, unless the
    run is secure (SecAgg+ handles its own messages) or ``federation.pack_arrays`` is
    false, the weights packed; any other grid as it is."""
    from flwr.superlink.grid.http_grid import HttpGrid

    if not isinstance(grid, HttpGrid):
        return grid
    grid = PromptGrid(grid, settings.reply_poll_seconds)
    return PackedArraysGrid(grid) if settings.pack_arrays and not secure else grid
