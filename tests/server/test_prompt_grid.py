"""Replies are pulled every poll interval until all are in or the timeout passes."""

import time

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from federation.config import compose_overrides
from server.deployed_grid import PromptGrid, deployed
from server.settings import FederationSettings
from tests.federation_fakes import InProcessGrid, fake_site_app, simulation_node_configs


class LateGrid(InProcessGrid):
    """Replies become visible only on the ``ready_after``-th pull; ``silent``: never."""

    def __init__(self, ready_after: int, silent: bool = False) -> None:
        super().__init__(fake_site_app(), simulation_node_configs(2))
        self.ready_after = ready_after
        self.pulls = 0
        self.never = silent

    def pull_messages(self, message_ids):
        self.pulls += 1
        if self.never or self.pulls < self.ready_after:
            return []
        return super().pull_messages(message_ids)


def _roll_call(grid):
    content = RecordDict({"config": ConfigRecord({"server-round": 1})})
    return [grid.create_message(content, "query", node, "1") for node in grid.get_node_ids()]


def test_replies_are_collected_once_they_arrive():
    late = LateGrid(ready_after=3)
    grid = PromptGrid(late, poll_seconds=0.01)
    replies = list(grid.send_and_receive(_roll_call(late), timeout=10))
    assert len(replies) == 2 and late.pulls == 3


def test_missing_replies_are_given_up_at_the_timeout():
    late = LateGrid(ready_after=0, silent=True)
    grid = PromptGrid(late, poll_seconds=0.01)
    began = time.monotonic()
    assert list(grid.send_and_receive(_roll_call(late), timeout=0.2)) == []
    assert 0.2 <= time.monotonic() - began < 5


def test_an_interval_outside_the_range_is_refused():
    with pytest.raises(ValueError, match="reply_poll_seconds"):
        PromptGrid(LateGrid(ready_after=0), poll_seconds=0)


def test_only_the_deployed_grid_is_wrapped():
    grid = InProcessGrid(fake_site_app(), simulation_node_configs(2))
    settings = FederationSettings.from_config(compose_overrides(""))
    assert deployed(grid, settings, secure=False) is grid


def test_messages_go_out_unchanged():
    late = LateGrid(ready_after=1)
    sent = _roll_call(late)
    PromptGrid(late, poll_seconds=0.01).send_and_receive(sent, timeout=1)
    assert late.sent == sent and all(isinstance(m, Message) for m in late.sent)
