"""The grid the round loop talks to: weights packed on the way out, unpacked on the way back
(federation/array_packing.py), so strategies, screening and checkpoints see the usual
per-parameter ArrayRecords while Flower moves one array per dtype per message."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message

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
from server.wrapped_grid import WrappedGrid

logger = logging.getLogger(__name__)


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
