"""A real deployment on loopback: one SuperLink and four SuperNodes as separate processes
(three training sites, one of them with a warm site worker, and one evaluation-only site),
TLS and SuperNode authentication with registered ECDSA P-384 keys, driven by the `flwr` CLI.

Everything is started through deploy/*.sh with its own FLWR_HOME and free ports, and stopped
by process id at the end (tests/deployment/harness.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import sqlite3
import time
import tomllib
from pathlib import Path

import pytest

from simulations.loopback_deployment import REPO, Deployment, free_port, wait_for
from tests.builders import write_site_file

SITES = {  # site id -> scanner folder (two vendors)
    "Center001": "Siemens_30T_Vida",
    "Center002": "UIH_15T_umr670",
    "Center003": "Siemens_15T_Avanto",
}
EVALUATION_SITE = ("Center004", "GE_15T_Signa")  # role=evaluate: never trains
WARM_SITE = "Center001"  # hands its work to a `cardiomm site-worker` beside its SuperNode
ALL_SITES = {**SITES, EVALUATION_SITE[0]: EVALUATION_SITE[1]}
UNREGISTERED = len(ALL_SITES) + 1  # key index made but never registered
NUM_ROUNDS = 2
RUN_TIMEOUT = 900.0

pytestmark = [
    pytest.mark.skipif(
        shutil.which("openssl") is None or shutil.which("ssh-keygen") is None,
        reason="needs openssl and ssh-keygen",
    ),
]


def write_site_data(root: Path, site: str, scanner: str, number: int) -> Path:
    """A site's own data folder holding only its centre (three patients)."""
    for index in range(3):
        write_site_file(root, site, scanner, f"P00{index + 1}", seed=10 * number + index)
    return root


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """SuperLink + four registered SuperNodes online (the last evaluation-only) + one
    unregistered SuperNode tried."""
    work = tmp_path_factory.mktemp("deployment")
    data = {
        site: write_site_data(work / "data" / site, site, scanner, number)
        for number, (site, scanner) in enumerate(ALL_SITES.items())
    }
    started = time.monotonic()
    deployment = Deployment(work / "federation", num_keys=len(ALL_SITES) + 1)
    try:
        deployment.start_superlink()
        node_ids = deployment.register(*range(1, len(ALL_SITES) + 1))
        worker, worker_folder = deployment.start_site_worker(1)
        nodes = [
            deployment.start_supernode(
                index,
                site,
                data[site],
                role="evaluate" if site == EVALUATION_SITE[0] else "train",
                site_worker=worker_folder if site == WARM_SITE else None,
            )
            for index, site in enumerate(ALL_SITES, start=1)
        ]
        stranger = deployment.start_supernode(
            UNREGISTERED, "Center999", data["Center001"], max_wait_time=30
        )
        wait_for(
            lambda: (
                deployment.online_nodes() >= set(node_ids)
                or any(not node.running() for node in nodes)
            ),
            90,
            "four registered SuperNodes online",
            interval=1.0,
            details=deployment.log_tails,
        )
        for node in nodes:
            assert node.running(), f"{node.name} exited\n{node.tail()}"
        wait_for(
            lambda: not stranger.running(),
            90,
            "the unregistered SuperNode to be refused",
            details=stranger.tail,
        )
        yield {
            "deployment": deployment,
            "node_ids": node_ids,
            "nodes": nodes,
            "stranger": stranger,
            "worker": worker,
            "data": data,
            "work": work,
            "startup_seconds": time.monotonic() - started,
        }
    finally:
        deployment.close()
        leftover = deployment.leftover_pids()
        assert not leftover, f"processes still alive after clean-up: {leftover}"


def test_registered_supernodes_are_online_over_tls(deployed):
    deployment: Deployment = deployed["deployment"]
    nodes = {int(node["node-id"]): node for node in deployment.nodes()}
    assert set(nodes) == set(deployed["node_ids"]), nodes
    assert all(node["status"] == "online" for node in nodes.values()), nodes
    superlink_log = deployment.superlink.log_text()
    assert "https://127.0.0.1" in superlink_log, deployment.superlink.tail()
    for node in deployed["nodes"]:
        assert node.running(), node.tail()


def test_a_supernode_with_an_unregistered_key_is_refused(deployed):
    deployment: Deployment = deployed["deployment"]
    stranger = deployed["stranger"]
    assert stranger.popen.returncode not in (None, 0), stranger.tail()
    assert "Failed to activate SuperNode" in stranger.log_text(), stranger.tail()
    assert "No SuperNode found with the given public key" in deployment.superlink.log_text(), (
        deployment.superlink.tail()
    )
    # It never joined: only the registered ids exist, the unregistered key has none.
    assert {int(node["node-id"]) for node in deployment.nodes()} == set(deployed["node_ids"])


def test_a_supernode_without_tls_trust_cannot_connect(deployed, tmp_path):
    """A site with a CA that did not sign the SuperLink's certificate is not let in."""
    deployment: Deployment = deployed["deployment"]
    other = tmp_path / "other-ca"
    deployment.run_command(
        [str(REPO / "deploy" / "make_dev_certificates.sh"), str(other), "0"], 120
    )
    home = tmp_path / "home"
    process = deployment.start(
        "supernode-wrong-ca",
        [
            str(REPO / "deploy" / "supernode.sh"),
            "--superlink",
            f"127.0.0.1:{deployment.superlink_port}",
            "--root-certificates",
            str(other / "ca.crt"),
            "--key",
            str(deployment.key(1)),
            "--site-id",
            "Center001",
            "--data-path",
            str(deployed["data"]["Center001"]),
            "--port",
            str(free_port()),
            "--max-wait-time",
            "10",
        ],
        home,
        cwd=REPO,
    )
    try:
        wait_for(
            lambda: not process.running(), 60, "the SuperNode to give up", details=process.tail
        )
        assert process.popen.returncode != 0, process.tail()
        assert "CERTIFICATE_VERIFY_FAILED" in process.log_text(), process.tail()
    finally:
        process.stop()


def _apps_ready() -> str | None:
    """Why the full run cannot happen yet (None when it can)."""
    missing = [
        p
        for p in ("server/app.py", "client/app.py", "configs/federation.yaml")
        if not (REPO / p).exists()
    ]
    if missing:
        return f"not yet in the project: {', '.join(missing)}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    app = pyproject.get("tool", {}).get("flwr", {}).get("app", {})
    if not {"serverapp", "clientapp"} <= set(app.get("components", {})):
        return "pyproject.toml has no [tool.flwr.app.components] serverapp / clientapp yet"
    if "overrides" not in app.get("config", {}):
        return "pyproject.toml has no [tool.flwr.app.config] overrides key yet"
    return None


@pytest.mark.slow  # minutes: four ClientApps and the ServerApp start per round on few cores
def test_two_rounds_with_every_training_site_and_an_evaluation_only_site(deployed, tmp_path):
    reason = _apps_ready()
    if reason:
        pytest.skip(reason)
    deployment: Deployment = deployed["deployment"]
    output = tmp_path / "run"
    overrides = " ".join(
        [
            "model=tiny",
            "text=none",
            f"federation.num_rounds={NUM_ROUNDS}",
            "federation.local_steps=2",
            f"federation.min_sites={len(SITES)}",
            "federation.timeout=600",
            "federation.global_evaluation=false",
            # The coordinator holds no k-space; this root is only for configs that resolve it.
            f"data.root={deployed['data']['Center001']}",
            "data.synthetic_preset=null",
            f"output_dir={output}",
        ]
    )
    run_id, status, elapsed = deployment.run_app(overrides, RUN_TIMEOUT)
    assert status == "finished:completed", f"run {run_id} ended {status}\n" + deployment.run_log(
        run_id
    )

    log = deployment.flwr("log", str(run_id), deployment.CONNECTION, "--show").stdout
    checkpoint = output / "checkpoints" / "final.pt"
    assert checkpoint.is_file(), f"no {checkpoint}\n{sorted(output.rglob('*'))}\n{log[-4000:]}"
    store = output / "mlflow.db"  # the embedded MLflow store (tracking.mlflow_uri=null)
    assert store.is_file(), f"no MLflow store {store}: {sorted(output.rglob('*'))}"
    with contextlib.closing(sqlite3.connect(store)) as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM runs")]
        keys = {row[0] for row in db.execute("SELECT DISTINCT key FROM metrics")}
    assert statuses == ["FINISHED"], statuses
    for site in SITES:
        assert f"site/{site}/num-examples" in keys, sorted(keys)
    evaluation_site = EVALUATION_SITE[0]
    assert f"zero-shot/{evaluation_site}/psnr" in keys, sorted(keys)
    history_path = output / "history.json"
    assert history_path.is_file(), f"no {history_path}: {sorted(output.rglob('*'))}"
    history = json.loads(history_path.read_text())
    assert [record["round"] for record in history] == list(range(1, NUM_ROUNDS + 1)), history
    node_of_site = dict(zip(ALL_SITES, deployed["node_ids"], strict=True))
    round_seconds = []
    for record in history:
        assert set(record["sites"]) == set(SITES), f"round {record['round']}: {record['sites']}"
        assert not record["errors"], f"round {record['round']}: {record['errors']}"
        # The evaluation-only site never trained (it would refuse, an error) and scored the
        # round's global model on all of its images.
        zero_shot = record["zero-shot"][evaluation_site]
        assert zero_shot["num-examples"] > 0 and zero_shot["psnr"] > 0, zero_shot
        for site, entry in record["sites"].items():
            assert int(entry["node-id"]) == node_of_site[site], (site, entry)
            assert entry["train"]["num-examples"] > 0, (site, entry)
            # The warm site's worker did its work; the others did it in their ClientApps.
            assert entry["train"]["site-worker"] == float(site == WARM_SITE), (site, entry)
        round_seconds.append(record.get("timing", {}))
    # After the last round, the final model scored at every site, evaluation-only included.
    with open(output / "cross_site.csv", newline="") as handle:
        cells = [row for row in csv.DictReader(handle) if row["model"] == "global"]
    assert {row["site"]: row["status"] for row in cells} == dict.fromkeys(ALL_SITES, "ok"), cells
    assert deployed["worker"].running(), deployed["worker"].tail()
    assert "task" in deployed["worker"].log_text(), deployed["worker"].tail()
    print(
        f"\ndeployment run {run_id}: {NUM_ROUNDS} rounds in {elapsed:.1f} s "
        f"(SuperLink + nodes start-up {deployed['startup_seconds']:.1f} s); "
        f"round timing: {json.dumps(round_seconds)}"
    )
