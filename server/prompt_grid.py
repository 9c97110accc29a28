"""Replies collected as soon as they arrive in a deployment.

Flower 1.42's deployed grid (``HttpGrid``) looks for replies every 3 s (fixed in its
``send_and_receive``), so every phase of a round waited 1.5 s on average after its last
reply, three or four times a round. :class:`PromptGrid` pushes the messages the same way and
pulls every ``poll_seconds`` (``federation.reply_poll_seconds``, default 0.25 s) until all
replies are in or the timeout passes, as Flower's loop does: one small request to the
SuperLink per interval while a phase waits. Only the deployed grid is wrapped: the
simulation's in-memory grid already looks every 0.1 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from server.wrapped_grid import WrappedGrid


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
