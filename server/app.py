"""The Flower ServerApp: compose the run's config and run the federated rounds.

``flwr run . --run-config 'overrides="strategy.name=fedadam federation.num_rounds=5"'``
passes Hydra overrides; both the ServerApp and the ClientApp compose ``configs/federation.yaml``
with them, so the two sides always agree.
"""

from __future__ import annotations

import logging

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from federation.config import compose_run_config
from server.deployed_grid import deployed
from server.rounds import run_federation
from server.secure_aggregation_config import secure_aggregation_enabled
from server.secure_rounds import run_secure_federation
from server.settings import FederationSettings

app = ServerApp()


def _show_server_logs() -> None:
    """INFO lines of ``server.*`` (rounds, resume, tracking) on stderr, once per process.

    Only our logger: configuring the root logger would also print every HTTP request the
    Flower runtime makes.
    """
    server_logger = logging.getLogger("server")
    server_logger.setLevel(logging.INFO)
    if not server_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        server_logger.addHandler(handler)
        server_logger.propagate = False  # printed once, even if the root logger has a handler


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run (or resume) the federation described by the composed config."""
    _show_server_logs()
    config = compose_run_config(context.run_config)
    secure = secure_aggregation_enabled(config)
    grid = deployed(grid, FederationSettings.from_config(config), secure)
    # privacy=secagg: Flower's SecAgg+ path
    run = run_secure_federation if secure else run_federation
    result = run(config, grid)
    logging.getLogger(__name__).info(
        "federation done: rounds %s, final model %s", result.rounds, result.final_checkpoint
    )
