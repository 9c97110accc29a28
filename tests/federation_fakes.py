"""Run a federation in-process, without a SuperLink: a fake Grid and a protocol-true fake site.

Flower 1.42 fills a new instruction ``Message``'s metadata (run id, source node, task id)
from ``flwr.supercore.task_identity.TaskIdentity``, which only a Flower runtime sets; outside
one, ``Message(content, dst_node_id, message_type)`` raises. That private API is touched here
and nowhere else: :func:`set_task_identity` / :func:`make_message`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import (
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.app.message.message import make_message as _make_message_with_metadata
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from client.site_config import write_site_file
from federation.array_packing import received_weights, weights_record
from federation.config import compose_overrides

RUN_ID = 7
FIRST_NODE_ID = 1001
SITE_FAILURE = 1


def set_task_identity(run_id: int = RUN_ID, node_id: int = SUPERLINK_NODE_ID) -> None:
    """Play the ServerApp's task, as Flower's runtime does before calling ``main``."""
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = node_id


def make_message(
    content: RecordDict, message_type: str, dst_node_id: int, group_id: str = ""
) -> Message:
    """An instruction message built outside a Flower runtime (e.g. to call a handler)."""
    set_task_identity()
    return Message(content, dst_node_id, message_type, group_id=group_id)


def operator_site_file(overrides: str) -> Path:
    """The site file a single operator of coordinator and sites writes for ``overrides``
    (their site-owned part, client/site_config.py), as the study's harness does."""
    folder = Path(tempfile.gettempdir()) / f"cardiomm-test-site-files-{os.getpid()}"
    path = folder / f"{hashlib.sha256(overrides.encode()).hexdigest()[:16]}.yaml"
    if not path.is_file():
        write_site_file(compose_overrides(overrides), path)
    return path


def operator_context(
    overrides: str,
    node_config: Mapping[str, Any],
    node_id: int = FIRST_NODE_ID,
    run_config: Mapping[str, Any] | None = None,
    state: RecordDict | None = None,
) -> Context:
    """A node's Context when one operator runs coordinator and site: ``overrides`` as the
    run config, and their site-owned part as the site's own file (node config
    ``site-config``, unless the node config names one)."""
    config = dict(node_config)
    if overrides:
        config.setdefault("site-config", str(operator_site_file(overrides)))
    return Context(
        run_id=RUN_ID,
        node_id=node_id,
        node_config=config,
        state=state if state is not None else RecordDict(),
        run_config=dict(run_config) if run_config is not None else {"overrides": overrides},
    )


class InProcessGrid(Grid):
    """Delivers each message to a ClientApp in this process, one node per node config.

    Content is deep-copied both ways, as serialisation would, so sites never share tensors
    with the server. A handler that raises becomes an error reply, as a SuperNode makes it.

    Args:
        client_app: the ClientApp every node runs.
        node_configs: one node config per node (e.g. ``{"partition-id": 0, ...}``).
        run_config: the run config every node's context carries (``overrides``).
        silent_nodes: node ids whose replies never arrive (a timed-out site).
        silent_types: the message types they do not answer (default: all).
        reverse_replies: hand the replies back in the reverse order of the messages, as
            sites that finish in another order would.
    """

    def __init__(
        self,
        client_app: ClientApp | Callable[[Message, Context], Message],
        node_configs: Iterable[Mapping[str, Any]],
        run_config: Mapping[str, Any] | None = None,
        silent_nodes: Iterable[int] = (),
        reverse_replies: bool = False,
        silent_types: Iterable[str] | None = None,
    ) -> None:
        set_task_identity()
        self.client_app = client_app
        self.contexts = {
            FIRST_NODE_ID + index: operator_context(
                str((run_config or {}).get("overrides", "")),
                node_config,
                node_id=FIRST_NODE_ID + index,
                run_config=run_config,
            )
            for index, node_config in enumerate(node_configs)
        }
        self.silent_nodes = set(silent_nodes)
        self.silent_types = set(silent_types) if silent_types is not None else None
        self.reverse_replies = reverse_replies
        self.sent: list[Message] = []
        self._run = Run.create_empty(RUN_ID)
        self._ids = itertools.count(1)
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        set_task_identity()
        return Message(content, dst_node_id, message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = f"message-{next(self._ids)}"
            # The SuperLink sets message ids; replies point back at them.
            message.metadata.__dict__["_message_id"] = message_id
            self.sent.append(message)
            reply = self._deliver(message)
            if not self._silent(message):
                self._replies[message_id] = reply
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = [self._replies.pop(key) for key in message_ids if key in self._replies]
        return replies[::-1] if self.reverse_replies else replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))

    def _silent(self, message: Message) -> bool:
        return message.metadata.dst_node_id in self.silent_nodes and (
            self.silent_types is None or message.metadata.message_type in self.silent_types
        )

    def _deliver(self, message: Message) -> Message:
        node = message.metadata.dst_node_id
        received = _make_message_with_metadata(
            metadata=copy.deepcopy(message.metadata), content=copy.deepcopy(message.content)
        )
        try:
            reply = self.client_app(received, self.contexts[node])
        except Exception as error:  # a SuperNode turns any handler exception into an Error
            reply = Message(
                Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=repr(error)),
                reply_to=received,
            )
        if reply.has_content():
            reply = _make_message_with_metadata(
                metadata=reply.metadata, content=copy.deepcopy(reply.content)
            )
        return reply

    def sent_configs(self, message_type: str = MessageType.TRAIN) -> list[ConfigRecord]:
        """The ``config`` records of the messages of one type sent so far."""
        return [
            message.content["config"]
            for message in self.sent
            if message.metadata.message_type == message_type
        ]


def fake_site_app(
    failing_sites: Iterable[str] = (),
    vendors: Mapping[str, str] | None = None,
    tamper: Mapping[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]]
    | None = None,
    evaluation_sites: Iterable[str] = (),
    declining_sites: Iterable[str] = (),
) -> ClientApp:
    """A ClientApp that speaks the protocol but trains nothing real (fast, deterministic).

    Training moves every weight by a small step drawn from a generator seeded with
    (seed, server-round, site), so replies depend only on what the server sent. The site is
    ``Center00<partition-id + 1>``; sites in ``failing_sites`` reply with an error.

    Args:
        failing_sites: sites that reply with an error.
        vendors: vendor per site (default: every site ``Siemens``).
        tamper: per site, a function applied to its trained state before it is sent (a
            broken or hostile site).
        evaluation_sites: sites that say they are evaluation-only in the roll call; they
            refuse training and score with the zero-shot protocol (overall and one group).
        declining_sites: sites that decline to score models of the cross-site matrix.
    """
    declining = set(declining_sites)
    failing = set(failing_sites)
    evaluation_sites = set(evaluation_sites)
    vendors = dict(vendors or {})
    tamper = dict(tamper or {})
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        site = _site_id(context)
        if site in evaluation_sites:
            return Message(
                Error(code=SITE_FAILURE, reason=f"site {site} is evaluation-only"), reply_to=msg
            )
        if site in failing:
            return Message(
                Error(code=SITE_FAILURE, reason=f"site {site}: no readable data"), reply_to=msg
            )
        started = time.perf_counter()
        config = msg.content["config"]
        number = int(context.node_config["partition-id"]) + 1
        generator = torch.Generator().manual_seed(
            int(config["seed"]) * 100_003 + int(config["server-round"]) * 101 + number
        )
        received, layout = received_weights(msg.content)
        state = {key: torch.from_numpy(value.copy()) for key, value in received.items()}
        scale = float(config["learning-rate"]) * (1.0 - float(config["proximal-mu"]))
        new_state = {
            key: value + scale * torch.randn(value.shape, generator=generator, dtype=value.dtype)
            for key, value in state.items()
        }
        if site in tamper:
            new_state = tamper[site](new_state)
        examples = float(2 * number * int(config["local-steps"]))
        metrics = {
            "num-examples": examples,
            "slices-seen": float(config["local-steps"]),
            "loss": 1.0 / (number + int(config["server-round"])),
            "final-loss": 0.5 / (number + int(config["server-round"])),
            "steps": float(config["local-steps"]),
            "skipped-steps": 0.0,
            "train-seconds": time.perf_counter() - started,
            # The last site has no validation split.
            "val-psnr": float("nan") if number == 3 else 30.0 + number,
            "val-ssim": float("nan") if number == 3 else 0.8,
            "val-nmse": float("nan") if number == 3 else 0.01,
            "bad-files": 0.0,
            "field-strength": 1.5 * number,
        }
        content = RecordDict(
            {
                "arrays": weights_record(
                    {key: value.numpy() for key, value in new_state.items()}, layout
                ),
                "metrics": MetricRecord(metrics),
                "site": _site_record(site, vendors.get(site, "Siemens")),
            }
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        site = _site_id(context)
        if site in failing:
            return Message(
                Error(code=SITE_FAILURE, reason=f"site {site}: no readable data"), reply_to=msg
            )
        number = int(context.node_config["partition-id"]) + 1
        cross_site = "cross-site-model" in msg.content["config"]
        if cross_site and site in declining:
            return Message(Error(code=3, reason=f"site {site} declines"), reply_to=msg)
        if site in evaluation_sites or cross_site:
            return _zero_shot_reply(msg, site, vendors.get(site, "Siemens"), number)
        has_validation = number != 3
        metrics = {
            "num-examples": float(number) if has_validation else 0.0,
            "psnr": 30.0 + number if has_validation else float("nan"),
            "ssim": 0.8 if has_validation else float("nan"),
            "nmse": 0.01 if has_validation else float("nan"),
            "eval-seconds": 0.0,
        }
        content = RecordDict(
            {
                "metrics": MetricRecord(metrics),
                "site": _site_record(site, vendors.get(site, "Siemens")),
            }
        )
        return Message(content=content, reply_to=msg)

    @app.query()
    def roll_call(msg: Message, context: Context) -> Message:
        site = _site_id(context)
        record = _site_record(site, vendors.get(site, "Siemens"))
        if site in evaluation_sites:
            record["role"] = "evaluate"
        return Message(content=RecordDict({"site": record}), reply_to=msg)

    return app


def _zero_shot_reply(msg: Message, site: str, vendor: str, number: int) -> Message:
    """Scores that depend on the weights sent: PSNR falls with their mean absolute value."""
    received = received_weights(msg.content)[0]
    state = {key: torch.from_numpy(value.copy()) for key, value in received.items()}
    size = sum(value.abs().sum().item() for value in state.values())
    psnr = 40.0 - size / sum(value.numel() for value in state.values())
    metrics = {
        "num-examples": 4.0,
        "psnr": psnr,
        "ssim": 0.9,
        "nmse": 0.01,
        "eval-seconds": 0.0,
        "psnr/cine.short-axis.Uniform8": psnr + number,
        "ssim/cine.short-axis.Uniform8": 0.9,
        "nmse/cine.short-axis.Uniform8": 0.01,
        "images/cine.short-axis.Uniform8": 4.0,
    }
    content = RecordDict({"metrics": MetricRecord(metrics), "site": _site_record(site, vendor)})
    return Message(content=content, reply_to=msg)


def simulation_node_configs(count: int) -> list[dict[str, int]]:
    """Node configs as Flower's simulation gives them."""
    return [{"partition-id": index, "num-partitions": count} for index in range(count)]


def _site_id(context: Context) -> str:
    return f"Center{int(context.node_config['partition-id']) + 1:03d}"


def _site_record(site: str, vendor: str = "Siemens") -> ConfigRecord:
    return ConfigRecord(
        {"site-id": site, "vendor": vendor, "scanner": "Vida", "bad-files-json": "[]"}
    )


def federation_config(output_dir: Any, *overrides: str, tracking: bool = False) -> Any:
    """configs/federation.yaml for fast tests: tiny model without texts, no global evaluation
    nor cross-site matrix, MLflow only when asked."""
    from cardiomm.config import load_config

    return load_config(
        [
            "model=tiny",
            "text=none",
            f"output_dir={output_dir}",
            "federation.global_evaluation=false",
            "federation.cross_site.enabled=false",  # tests of the matrix turn it on
            f"tracking.enabled={str(tracking).lower()}",
            *overrides,
        ],
        config_name="federation",
    )


def sent_weights(message: Message) -> dict[str, Any]:
    """The weights a request carried, by name (unpacked when the server packed them)."""
    return received_weights(message.content)[0]


class ServerStoppedError(Exception):
    """The server went away (as a killed process would) after a checkpointed round."""


@contextlib.contextmanager
def stopped_after(last_round: int) -> Iterator[None]:
    """The federation run inside stops once round ``last_round`` is checkpointed, as a server
    killed there would: the run keeps its planned rounds, and a resume finishes it."""
    import server.rounds as rounds

    save = rounds.save_round_checkpoint

    def save_then_stop(output_dir: Path, checkpoint: Any) -> Path:
        path = save(output_dir, checkpoint)
        if checkpoint.server_round >= last_round:
            raise ServerStoppedError(f"stopped after round {checkpoint.server_round}")
        return path

    with pytest.MonkeyPatch.context() as patch, pytest.raises(ServerStoppedError):
        patch.setattr(rounds, "save_round_checkpoint", save_then_stop)
        yield
