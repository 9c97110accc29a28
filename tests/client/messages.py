"""Messages to a site as the ServerApp sends them, and the ClientApp called on them."""

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from cardiomm.model.factory import network_from_config
from client.app import app
from federation.config import compose_overrides
from tests.federation_fakes import make_message, operator_context


def global_arrays(overrides: str) -> ArrayRecord:
    """A seeded network of ``overrides`` as the round's global weights."""
    torch.manual_seed(0)
    network, _ = network_from_config(compose_overrides(overrides))
    return ArrayRecord(network.state_dict())


def train_content(overrides: str) -> RecordDict:
    """A round-1 train request of two local steps."""
    config = ConfigRecord(
        {"server-round": 1, "local-steps": 2, "learning-rate": 1e-3, "proximal-mu": 0.0, "seed": 0}
    )
    return RecordDict({"arrays": global_arrays(overrides), "config": config})


def call(message_type: str, content: RecordDict, node_config: dict, overrides: str) -> Message:
    """The ClientApp's reply to one message, ``overrides`` as the run config."""
    message = make_message(content, message_type, dst_node_id=1001)
    message.metadata.__dict__["_message_id"] = "instruction-1"  # the SuperLink sets it
    return app(message, operator_context(overrides, node_config))
