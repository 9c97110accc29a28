"""Train replies as sites send them, built by hand for strategy tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from tests.federation_fakes import make_message

_message_ids = itertools.count(1)


def arrays(values: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in values.items()})


def train_reply(
    site: str,
    vendor: str,
    examples: float,
    values: Mapping[str, np.ndarray] | ArrayRecord,
    node_id: int = 1,
) -> Message:
    """A site's train reply to an instruction sent to ``node_id``."""
    instruction = make_message(RecordDict(), "train", dst_node_id=node_id)
    instruction.metadata.__dict__["_message_id"] = f"instruction-{next(_message_ids)}"
    content = RecordDict(
        {
            "arrays": values if isinstance(values, ArrayRecord) else arrays(values),
            "metrics": MetricRecord({"num-examples": examples, "loss": 0.5}),
            "site": ConfigRecord({"site-id": site, "vendor": vendor}),
        }
    )
    return Message(content=content, reply_to=instruction)


def train_instruction(node_id: int, values: ArrayRecord) -> Message:
    """What the server sends a site: the arrays and a config."""
    return make_message(
        RecordDict({"arrays": values, "config": ConfigRecord({"server-round": 1})}),
        "train",
        dst_node_id=node_id,
    )
