"""What a round's weights cost on the wire, per parameter a site trains, with each transport.

For each model size and transport (federation/transport.py: float32, bfloat16, float16; the
whole model trained, or only the prompts, adapters and data consistency of a frozen backbone
with only those on the wire), the server's transport encodes a train request for one site
twice (its first round, which carries a frozen part, and a later one), the site's transport
decodes it and encodes its reply for a trained model (the weights plus a random update of
the trained parameters), and the server decodes the reply. Each message is measured as
Flower serialises it (``recorddict_to_proto(...).ByteSize()``: arrays, names, records), and
divided by the trained parameters; the reconstruction error of the update is the largest
relative error of ``decoded - sent`` against the true update. All settings in one run, side
by side.

    .venv/bin/python benchmarks/transport_traffic.py                    # small and paper
    .venv/bin/python benchmarks/transport_traffic.py --sizes small --json traffic.json

The PSNR cost of half precision at the same rounds is the transport study's
(``cardiomm simulate experiment=transport``, docs/results/transport-study/).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FINE_TUNED = ("prompts", "adapters", "data_consistency")
SETTINGS = (
    ("float32", False, ("all",)),
    ("bfloat16", False, ("all",)),
    ("float16", False, ("all",)),
    ("float32", True, FINE_TUNED),
    ("bfloat16", True, FINE_TUNED),
    ("float16", True, FINE_TUNED),
)
UPDATE_SCALE = 1e-3  # a local round's typical change of a weight (lr 1e-3 AdamW steps)


def wire_bytes(content: Any, packed: bool) -> int:
    """Serialised size of a message's content as Flower sends it; ``packed``: with its
    ``arrays`` packed into one array per dtype and the layout record, as a deployment sends
    them (federation/array_packing.py)."""
    from flwr.app import RecordDict
    from flwr.common.serde import recorddict_to_proto

    from federation.array_packing import LAYOUT_RECORD, layout_of, layout_record, pack

    if packed:
        arrays = {name: array.numpy() for name, array in content["arrays"].items()}
        layout = layout_of(arrays)
        content = RecordDict(
            {
                **{key: record for key, record in content.items() if key != "arrays"},
                "arrays": pack(arrays, layout),
                LAYOUT_RECORD: layout_record(layout),
            }
        )
    return recorddict_to_proto(content).ByteSize()


def measure(size: str, text: str, precision: str, trained_only: bool, groups: Sequence[str]):
    """Bytes per trained parameter of a first and a later request and of a reply, unpacked
    (a simulation) and packed (a deployment), and the update's largest relative
    reconstruction error."""
    import numpy as np
    from flwr.app import Array, ArrayRecord, RecordDict

    from cardiomm.model.factory import network_from_config
    from cardiomm.model.trainable import select_trainable
    from client.site_transport import receive
    from federation.config import compose_overrides
    from federation.transport import TransportSettings
    from server.server_transport import ServerTransport, frozen_names

    config = compose_overrides(f"model={size} text={text}")
    network, _ = network_from_config(config, seed=0)
    trained_count = select_trainable(network, groups)
    state = {name: value.detach().numpy().copy() for name, value in network.state_dict().items()}
    trainable = set(state) - set(frozen_names(state, groups))
    settings = TransportSettings(precision, trained_only)
    server = ServerTransport(settings, frozen_names(state, groups) if trained_only else ())
    request = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in state.items()})})
    if not settings.active:
        # Plain float32: the whole model both ways, every round.
        figures = {"trained_parameters": trained_count, "update_error": 0.0}
        for packed, suffix in ((False, ""), (True, "_packed")):
            per_parameter = wire_bytes(request, packed) / trained_count
            for key in ("first_request", "later_request", "reply"):
                figures[key + suffix] = per_parameter
        return figures
    first_content = server.encode_content(request, node=1)
    later_content = server.encode_content(request, node=1)
    site_state = RecordDict()
    arrays = {k: v.numpy() for k, v in first_content["arrays"].items()}
    received = receive(first_content, arrays, site_state)
    generator = np.random.default_rng(0)
    trained = {
        name: value + UPDATE_SCALE * generator.standard_normal(value.shape).astype(value.dtype)
        if name in trainable and value.dtype == np.float32
        else value
        for name, value in received.weights.items()
    }
    reply = RecordDict(
        {"arrays": ArrayRecord({k: Array(v) for k, v in received.reply(trained).items()})}
    )
    decoded = server.decode_reply(reply, node=1)["arrays"]
    error = _update_error(
        {name: decoded[name].numpy() - state[name] for name in trainable},
        {name: trained[name] - received.weights[name] for name in trainable},
    )
    figures = {"trained_parameters": trained_count, "update_error": error}
    for packed, suffix in ((False, ""), (True, "_packed")):
        for key, content in (
            ("first_request", first_content),
            ("later_request", later_content),
            ("reply", reply),
        ):
            figures[key + suffix] = wire_bytes(content, packed) / trained_count
    return figures


def _update_error(decoded: dict[str, Any], true: dict[str, Any]) -> float:
    """The largest error of a decoded float32 update relative to the largest entry of the
    true update, over the parameters (non-float arrays skipped; 0 without any)."""
    import numpy as np

    errors = [
        float(np.abs(decoded[name] - update).max()) / (float(np.abs(update).max()) or 1.0)
        for name, update in true.items()
        if update.dtype == np.float32
    ]
    return max(errors, default=0.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"])
    parser.add_argument("--text", default="minilm", help="text encoder (sets the model's width)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=140)
    rows: list[dict[str, Any]] = []
    table = Table(title="Bytes on the wire per trained parameter, one site, one round")
    for column in ("size", "precision", "on the wire", "trained params"):
        table.add_column(column)
    for column in ("down, first round", "down, later", "up", "packed: down later / up"):
        table.add_column(column, justify="right")
    table.add_column("update error", justify="right")
    for size in arguments.sizes:
        for precision, trained_only, groups in SETTINGS:
            figures = measure(size, arguments.text, precision, trained_only, groups)
            wire = "trained only" if trained_only else "all"
            if trained_only and precision == "float32":
                wire += " (float32)"
            rows.append(
                {"size": size, "precision": precision, "wire": wire, "groups": groups, **figures}
            )
            table.add_row(
                size,
                precision,
                wire,
                f"{figures['trained_parameters']:,}",
                f"{figures['first_request']:.3f}",
                f"{figures['later_request']:.3f}",
                f"{figures['reply']:.3f}",
                f"{figures['later_request_packed']:.3f} / {figures['reply_packed']:.3f}",
                f"{figures['update_error']:.1e}",
            )
    console.print(table)
    console.print(
        "[dim]bytes: Flower's serialised RecordDict of the train request (down) and reply "
        "(up) over the parameters the site trains, one array per tensor as a simulation "
        "sends them, and packed (one array per dtype and a layout record) as a deployment "
        "does; 'trained only' trains prompts, adapters "
        "and data consistency of a frozen backbone, whose first request carries the frozen "
        "part. Update error: largest |server-decoded update - true update| / max |true "
        f"update| over the trained arrays, for a random update of scale {UPDATE_SCALE:g}. "
        "Goal with half precision: at most 2.05 bytes per trained parameter.[/dim]"
    )
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(rows, indent=2) + "\n")
        console.print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
