"""Runs that tests/test_reproducibility.py starts twice, each in a fresh interpreter.

    python -m tests.reproducibility_runs train OUTPUT DATA_ROOT
    python -m tests.reproducibility_runs federation OUTPUT DATA_ROOT [--reverse-replies]

``train`` is ``cardiomm train`` (tiny model, three steps); ``federation`` is two rounds of the
ServerApp's loop with the real ClientApp at three sites, in-process; with
``--reverse-replies`` the sites' replies reach the server in the reverse order.
"""

from __future__ import annotations

import sys


def _data(root: str) -> list[str]:
    return [f"data.root={root}", "data.synthetic_preset=null", "data.val_fraction=0.2"]


def main(argv: list[str]) -> int:
    kind, output, root = argv[:3]
    if kind == "train":
        from cardiomm.cli import main as cardiomm

        settings = ["model=tiny", "train.max_steps=3", "seed=5", f"output_dir={output}"]
        return cardiomm(["train", *settings, *_data(root)])
    from client.app import app as client_app
    from server.rounds import run_federation
    from tests.federation_fakes import InProcessGrid, federation_config, simulation_node_configs

    config = federation_config(
        output, *_data(root), "federation.num_rounds=2", "federation.local_steps=2", "seed=5"
    )
    site_overrides = " ".join(["model=tiny", "text=none", "seed=5", *_data(root)])
    grid = InProcessGrid(
        client_app,
        simulation_node_configs(3),
        {"overrides": site_overrides},
        reverse_replies="--reverse-replies" in argv,
    )
    run_federation(config, grid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
