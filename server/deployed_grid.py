"""The grid of a deployment, made faster where Flower 1.42's own transport is slow.

Three wrappers, each handing every call to the grid it wraps and changing one thing:

- :class:`WrappedGrid` forwards everything (the base the others and server/site_roles.py
  build on).
- :class:`PromptGrid`: replies collected as soon as they arrive. Flower 1.42's deployed grid
  (``HttpGrid``) looks for replies every 3 s (fixed in its ``send_and_receive``), so every
  phase of a round waited 1.5 s on average after its last reply, three or four times a round.
  It pushes the messages the same way and pulls every ``poll_seconds``
  (``federation.reply_poll_seconds``, default 0.25 s) until all replies are in or the timeout
  passes, as Flower's loop does: one small request to the SuperLink per interval while a
  phase waits.
- :class:`PackedArraysGrid`: weights packed on the way out, unpacked on the way back
  (federation/array_packing.py), so strategies, screening and checkpoints see the usual
  per-parameter ArrayRecords while Flower moves one array per dtype per message.

:func:`deployed` wraps only Flower's deployed grid (``HttpGrid``): a simulation moves
messages in memory (no request per array, replies looked for every 0.1 s), where packing
would only add copies (measured with the paper-size model: 15.2 s per round packed against
10.5 s, benchmarks/README.md), and test grids answer at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from federation.array_packing import (
    LAYOUT_RECORD,
    Layout,
    PackingError,
    layout_of,
    layout_record,
    pack,
    received_weights,
    unpack,
    weights_record,
)
from federation.protocol import ARRAYS, with_records
from server.settings import FederationSettings

logger = logging.getLogger(__name__)


class WrappedGrid(Grid):
    """Forwards every :class:`~flwr.serverapp.Grid` call to ``grid``."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def set_run(self, run: Any) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Any:
        return self.grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.grid.create_message(*args, **kwargs)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.grid.send_and_receive(messages, timeout=timeout)


class PromptGrid(WrappedGrid):
    """``grid``, with replies pulled every ``poll_seconds``."""

    def __init__(self, grid: Grid, poll_seconds: float) -> None:
        if not 0 < poll_seconds <= 60:
            raise ValueError(
                f"federation.reply_poll_seconds is {poll_seconds}: give seconds in (0, 60]"
            )
        super().__init__(grid)
        self.poll_seconds = poll_seconds

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        waiting = set(self.grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            pulled = list(self.grid.pull_messages(waiting))
            replies.extend(pulled)
            waiting -= {reply.metadata.reply_to_message_id for reply in pulled}
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.poll_seconds)
        return replies


class PackedArraysGrid(WrappedGrid):
    """Wraps a grid: ``send_and_receive`` packs every request's ``arrays`` record and
    unpacks each reply's with the layout of the request it answers."""

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        # Requests of one phase usually share one global ArrayRecord: packed once.
        packed: dict[int, tuple[ArrayRecord, ConfigRecord, Layout]] = {}
        layouts = [_pack_request(message, packed) for message in messages]
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        # The grid set each request's id when it pushed it.
        sent = {
            message.metadata.message_id: layout
            for message, layout in zip(messages, layouts, strict=True)
            if layout is not None
        }
        for reply in replies:
            layout = sent.get(reply.metadata.reply_to_message_id)
            if layout is not None and not reply.has_error():
                _unpack_reply(reply, layout)
        return replies


def _pack_request(
    message: Message, packed: dict[int, tuple[ArrayRecord, ConfigRecord, Layout]]
) -> Layout | None:
    """Replace the request's ``arrays`` by their packed form and a layout record (from
    ``packed`` when its record was packed already); the layout (None: nothing to pack)."""
    if not message.has_content() or ARRAYS not in message.content.array_records:
        return None
    record = message.content.array_records[ARRAYS]
    if id(record) not in packed:
        arrays, _ = received_weights(message.content)
        layout = layout_of(arrays)
        packed[id(record)] = (pack(arrays, layout), layout_record(layout), layout)
    arrays_record, layout_config, layout = packed[id(record)]
    message.content = with_records(
        message.content, {ARRAYS: arrays_record, LAYOUT_RECORD: layout_config}
    )
    return layout


def _unpack_reply(reply: Message, layout: Layout) -> None:
    if not reply.has_content() or ARRAYS not in reply.content.array_records:
        return
    try:
        arrays = unpack(reply.content.array_records[ARRAYS], layout)
    except PackingError as error:
        # Left packed: the update screening refuses it for its keys, naming the site.
        logger.warning(
            "node %s: its packed weights do not fit what was sent: %s",
            reply.metadata.src_node_id,
            error,
        )
        return
    reply.content = with_records(reply.content, {ARRAYS: weights_record(arrays, None)})


def deployed(grid: Grid, settings: FederationSettings, secure: bool) -> Grid:
    """``grid`` with replies pulled every ``federation.reply_poll_seconds`` and, unless the
    run is secure (SecAgg+ handles its own messages) or ``federation.pack_arrays`` is
    false, the weights packed; any other grid as it is."""
    from flwr.superlink.grid.http_grid import HttpGrid

    if not isinstance(grid, HttpGrid):
        return grid
    grid = PromptGrid(grid, settings.reply_poll_seconds)
    return PackedArraysGrid(grid) if settings.pack_arrays and not secure else grid
