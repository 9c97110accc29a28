"""`cardiomm cross-site-eval` never changes, deletes or retrains what it evaluates: every
--model checkpoint and the run's final state are checked before Flower starts (one line and
exit 2 for what cannot be scored), and the matrix is made in a working copy, so every file
of the run is byte for byte the same afterwards, failing or not, and only the matrix is new.

The finished run: 3 real sites in-process, the tiny model, 2 rounds of 1 local step, with
MLflow; the successful evaluations go through the real `flwr run .`.
"""

import csv
import hashlib
import shlex
import shutil
import tempfile

import pytest
import torch
from flwr.common.config import parse_config_args

import simulations.cross_site_run as cross_site_run
from cardiomm.cli import main
from cardiomm.model.checkpoint import read_checkpoint, save_checkpoint
from client.site_config import write_site_file
from federation.config import compose_run_config
from federation.protocol import NODE_SITE_CONFIG
from federation.records import read_history
from server.rounds import run_federation
from simulations.study.flower_run import write_run_config
from tests.builders import write_consortium
from tests.federation_fakes import InProcessGrid, simulation_node_configs, stopped_after

client_app = pytest.importorskip("client.app").app

SITES = ["Center001", "Center002", "Center003"]
MATRIX = {"cross_site.csv", "cross_site.png"}


def _train(folder, root, *extra):
    """A federation of the three centres in ``folder``, with the run config
    `cardiomm simulate` would have written beside it."""
    overrides = [
        "model=tiny",
        "text=none",
        f"data.root={root}",
        "data.synthetic_preset=null",
        "data.val_fraction=0.2",
        "federation.num_rounds=2",
        "federation.local_steps=1",
        "federation.min_sites=3",
        "federation.global_evaluation=false",
        "federation.cross_site.enabled=false",
        f"output_dir={folder}",
        *extra,
    ]
    folder.mkdir(parents=True)
    run_config = write_run_config(folder / "run_config.toml", overrides)
    config = compose_run_config(parse_config_args([str(run_config)]))  # as the ServerApp does
    # The data are the sites' to set: their own file, as `cardiomm simulate` writes it.
    site_file = str(write_site_file(config, folder / "site_config.yaml"))
    nodes = [{**node, NODE_SITE_CONFIG: site_file} for node in simulation_node_configs(3)]
    grid = InProcessGrid(client_app, nodes, {"overrides": shlex.join(overrides)})
    return run_federation(config, grid)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return root


@pytest.fixture(scope="module")
def finished(consortium, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "seed-0"
    _train(folder, consortium)
    return folder


@pytest.fixture
def run(finished, tmp_path, monkeypatch):
    """A copy of the finished run for one test (which may damage it); working copies of the
    evaluation go to the test's own temporary folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(_made(tmp_path / "tmp")))
    return shutil.copytree(finished, tmp_path / "seed-0")


@pytest.fixture
def no_flower(monkeypatch):
    """Fails the test if a Flower run is started (a refusal must come before)."""
    started = []
    monkeypatch.setattr(cross_site_run, "run_flower_simulation", started.append)
    yield
    assert started == [], "a Flower run was started"


def _made(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hashes(folder):
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _evaluate(run, *options):
    return main(["cross-site-eval", str(run), "--timeout", "300", *options])


def _error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _other_model(tmp_path):
    from cardiomm.model.factory import network_from_config
    from tests.federation_fakes import federation_config

    network, _ = network_from_config(federation_config(tmp_path, "model.num_cascades=3"))
    return save_checkpoint(tmp_path / "other.pt", network, None, 0, extra={})


def _non_finite_model(run, tmp_path):
    content = read_checkpoint(run / "checkpoints" / "final.pt")
    key = next(k for k, v in content["state_dict"].items() if v.is_floating_point())
    content["state_dict"][key] = torch.full_like(content["state_dict"][key], float("nan"))
    torch.save(content, tmp_path / "nan.pt")
    return tmp_path / "nan.pt"


def _garbage(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    return tmp_path / "garbage.pt"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda run, tmp: tmp / "missing.pt", "no such checkpoint"),
        (lambda run, tmp: _garbage(tmp), "not a readable checkpoint"),
        (lambda run, tmp: _other_model(tmp), "holds another model than this run"),
        (_non_finite_model, "NaN or Inf weights"),
    ],
    ids=["missing", "not-a-checkpoint", "another-model", "nan-weights"],
)
def test_a_model_it_cannot_score_is_refused_in_one_line_and_nothing_changes(
    run, tmp_path, capsys, no_flower, make, problem
):
    bad = make(run, tmp_path)
    before = _hashes(run)
    assert _evaluate(run, "--model", f"local={bad}") == 2
    line = _error_line(capsys)
    assert "--model local" in line and str(bad) in line and problem in line
    assert _hashes(run) == before


@pytest.mark.parametrize("name", ["global", "two words", "a,b"])
def test_a_model_name_that_cannot_label_a_row_is_refused(run, capsys, no_flower, name):
    final = run / "checkpoints" / "final.pt"
    assert _evaluate(run, "--model", f"{name}={final}") == 2
    assert "cannot name a model of the matrix" in _error_line(capsys)


def test_a_run_whose_final_state_cannot_be_read_is_refused_not_retrained(run, capsys, no_flower):
    for name in ("latest.pt", "round-002.pt"):
        (run / "checkpoints" / name).write_bytes(b"\x00" * 100)
    before = _hashes(run)
    assert _evaluate(run) == 2
    line = _error_line(capsys)
    assert "final state cannot be read" in line and "latest.pt" in line
    assert _hashes(run) == before


def test_an_unfinished_run_is_refused_rather_than_trained_to_its_end(
    consortium, finished, tmp_path, capsys, no_flower
):
    folder = tmp_path / "interrupted"
    with stopped_after(1):
        _train(folder, consortium)
    # What an interrupted attempt next to an earlier finished one could leave.
    shutil.copy(finished / "history.json", folder / "history.json")
    shutil.copy(finished / "checkpoints" / "final.pt", folder / "checkpoints" / "final.pt")
    before = _hashes(folder)
    capsys.readouterr()  # the training's own output
    assert _evaluate(folder) == 2
    assert "the run is not finished (round 1 of 2 checkpointed" in _error_line(capsys)
    assert _hashes(folder) == before


def test_a_folder_without_a_finished_run_is_refused(tmp_path, capsys, no_flower):
    assert _evaluate(tmp_path) == 2
    assert "no history.json" in _error_line(capsys)


def _matrix(run):
    with open(run / "cross_site.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_successful_evaluation_changes_no_file_of_the_run(run, tmp_path):
    local = shutil.copy(run / "checkpoints" / "final.pt", tmp_path / "local.pt")
    before = _hashes(run)
    assert _evaluate(run, "--model", f"local-Center001={local}") == 0
    after = _hashes(run)
    assert set(after) - set(before) == MATRIX
    assert {name: after[name] for name in before} == before
    rows = _matrix(run)
    assert {row["site"] for row in rows if row["model"] == "global"} == set(SITES)
    assert {row["site"] for row in rows if row["model"] == "local-Center001"} == set(SITES)
    assert list((tmp_path / "tmp").iterdir()) == []  # the working copy is gone


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_is_read_from_the_last_round_without_training(run, caplog):
    (run / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 100)
    rounds = [record.round for record in read_history(run / "history.json")]
    before = _hashes(run)
    assert _evaluate(run) == 0
    assert "round-002.pt" in caplog.text  # the warning names where the state came from
    after = _hashes(run)
    assert set(after) - set(before) == MATRIX
    assert {name: after[name] for name in before} == before
    assert [record.round for record in read_history(run / "history.json")] == rounds
