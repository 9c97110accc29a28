"""The server's side of the lighter transport (federation/transport.py): encode each round's
train and evaluate requests, decode the train replies back to full float32 weights against
the master each site was sent, and remember which node holds the frozen part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from cardiomm.model.trainable import trainable_names
from federation.array_packing import weights_record
from federation.protocol import ARRAYS, with_records
from federation.transport import (
    FROZEN_RECORD,
    TRANSPORT_RECORD,
    TransportError,
    TransportSettings,
    apply_reply,
    digest,
    encode_arrays,
    request_config,
)
from server.replies import PhaseReplies, array_bytes


def frozen_names(names: Iterable[str], trainable: Sequence[str]) -> list[str]:
    """The state-dict names no group of ``train.trainable`` trains (buffers included)."""
    names = list(names)
    trained = set(trainable_names(names, trainable))
    return [name for name in names if name not in trained]


@dataclasses.dataclass(frozen=True)
class _Encoded:
    """One ArrayRecord as its requests carry it.

    Attributes:
        master: the float32 weights by name (what replies are added to).
        sent: the names the request's ``arrays`` hold (the rest is frozen).
        arrays: those, encoded.
        frozen: the frozen arrays, encoded (None without any).
        digest: their fingerprint ("" without any).
    """

    master: dict[str, np.ndarray]
    sent: list[str]
    arrays: ArrayRecord
    frozen: ArrayRecord | None
    digest: str


class ServerTransport:
    """Encodes requests and decodes replies for one run.

    Args:
        settings: ``federation.transport``.
        frozen: the names sent only once per node (empty unless ``trainable_only``).
    """

    def __init__(self, settings: TransportSettings, frozen: Iterable[str] = ()) -> None:
        self.settings = settings
        self.frozen = set(frozen) if settings.trainable_only else set()
        self._holders: dict[int, str] = {}  # node -> digest of the frozen part it was sent
        self._sent: dict[int, tuple[dict[str, np.ndarray], list[str]]] = {}

    def encode(self, messages: Iterable[Message]) -> dict[int, int]:
        """Replace each request's float32 ``arrays`` by their encoding (in place); returns the
        array bytes each node is sent. Requests sharing one ArrayRecord (Flower's strategies
        give every site the same) are encoded once."""
        sizes: dict[int, int] = {}
        encoded: dict[int, _Encoded] = {}
        for message in messages:
            if not message.has_content() or ARRAYS not in message.content.array_records:
                continue
            node = int(message.metadata.dst_node_id)
            record = message.content[ARRAYS]
            if id(record) not in encoded:
                encoded[id(record)] = self._encoded(record)
            message.content = self._request(message.content, node, encoded[id(record)])
            sizes[node] = sum(array_bytes(part) for part in message.content.array_records.values())
        return sizes

    def encode_content(self, content: RecordDict, node: int) -> RecordDict:
        """A request's content for ``node`` with its ``arrays`` encoded, the transport
        record, and the frozen part when the node does not hold it yet."""
        return self._request(content, node, self._encoded(content[ARRAYS]))

    def _encoded(self, record: ArrayRecord) -> _Encoded:
        master = {name: array.numpy() for name, array in record.items()}
        sent = [name for name in master if name not in self.frozen]
        frozen = encode_arrays(
            {name: master[name] for name in master if name in self.frozen},
            self.settings.precision,
        )
        arrays = encode_arrays({name: master[name] for name in sent}, self.settings.precision)
        return _Encoded(
            master=master,
            sent=sent,
            arrays=weights_record(arrays, None),
            frozen=weights_record(frozen, None) if frozen else None,
            digest=digest(frozen) if frozen else "",
        )

    def _request(self, content: RecordDict, node: int, encoded: _Encoded) -> RecordDict:
        records: dict[str, Any] = {
            ARRAYS: encoded.arrays,
            TRANSPORT_RECORD: ConfigRecord(request_config(self.settings, encoded.digest)),
        }
        if encoded.frozen is not None and self._holders.get(node) != encoded.digest:
            records[FROZEN_RECORD] = encoded.frozen
            self._holders[node] = encoded.digest
        self._sent[node] = (encoded.master, encoded.sent)
        return with_records(content, records)

    def decode_reply(self, content: RecordDict, node: int) -> RecordDict:
        """A train reply's content from ``node`` with full float32 weights.

        Raises:
            TransportError: the reply does not decode against what ``node`` was sent.
        """
        if node not in self._sent:
            raise TransportError(f"node {node} was sent no weights to answer")
        master, sent = self._sent[node]
        arrays = content.array_records.get(ARRAYS)
        if arrays is None:
            raise TransportError("the reply has no arrays")
        weights = apply_reply(
            {name: array.numpy() for name, array in arrays.items()},
            master,
            sent,
            self.settings.precision,
        )
        return with_records(content, {ARRAYS: weights_record(weights, None)})

    def decode(self, replies: PhaseReplies) -> tuple[PhaseReplies, list[dict[str, Any]]]:
        """The replies with full float32 weights (the master plus the update), and a
        rejection for each reply that does not decode; a node that failed is sent the frozen
        part again next time (it may have lost its copy)."""
        for error in replies.errors:
            self._holders.pop(int(error.get("node-id", -1)), None)
        valid, rejected = [], []
        for reply in replies.valid:
            node = int(reply.metadata.src_node_id)
            try:
                reply.content = self.decode_reply(reply.content, node)
            except TransportError as error:
                self._holders.pop(node, None)
                site = next(
                    (s for s, entry in replies.sites.items() if entry["node-id"] == node), ""
                )
                reason = f"transport: {error}"
                rejected.append({"phase": "train", "site": site, "node-id": node, "reason": reason})
                continue
            valid.append(reply)
        return dataclasses.replace(replies, valid=valid), rejected

    def keep_frozen(self, aggregated: ArrayRecord, before: ArrayRecord) -> ArrayRecord:
        """``aggregated`` with the frozen arrays exactly as ``before`` (averaging equal
        arrays may move them by a rounding step, which would change their digest and send
        them to every site again)."""
        if not self.frozen:
            return aggregated
        return ArrayRecord(
            {
                name: before[name] if name in self.frozen else array
                for name, array in aggregated.items()
            }
        )
