"""`cardiomm cross-site-eval` never changes, deletes or retrains what it evaluates: every
--model checkpoint and the run's final state are checked before Flower starts (one line and
exit 2 for what cannot be scored), and the matrix is made in a temporary working copy, so
every file of the run is byte for byte the same afterwards, failing, interrupted or not, and
only the matrix is new (an earlier matrix is replaced only with --overwrite).

The finished run: 3 real sites in-process, the tiny model, 2 rounds of 1 local step, with
MLflow. Two evaluations go through the real `flwr run .` (slow); the others replace it with
what a Flower run leaves in the working copy (`flower_leaves`), or with a refusal check
(`no_flower`).
"""

import csv
import hashlib
import os
import shlex
import shutil
import signal
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
from simulations.study.flower_run import (
    FlowerRunError,
    run_flower_simulation,
    write_run_config,
)
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


@pytest.fixture(scope="module")
def interrupted(consortium, tmp_path_factory):
    """The same federation stopped after round 1 of 2, as a killed server leaves it."""
    folder = tmp_path_factory.mktemp("interrupted") / "seed-0"
    with stopped_after(1):
        _train(folder, consortium)
    return folder


@pytest.fixture
def temporary(tmp_path, monkeypatch):
    """The temporary folder the working copies go to: the test's own."""
    folder = _made(tmp_path / "tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def run(finished, tmp_path, temporary):
    """A copy of the finished run for one test (which may damage it)."""
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


def _snapshot(folder):
    """Every file of ``folder`` by its SHA-256, every folder by name: equal snapshots are
    byte-identical trees."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        )
        for path in sorted(folder.rglob("*"))
    }


def _evaluate(run, *options):
    return main(["cross-site-eval", str(run), "--timeout", "300", *options])


def _error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _other_model(run, tmp_path):
    from cardiomm.model.factory import network_from_config
    from tests.federation_fakes import federation_config

    network, _ = network_from_config(federation_config(tmp_path, "model.num_cascades=3"))
    return save_checkpoint(tmp_path / "other.pt", network, None, 0, extra={})


def _final_with(run, tmp_path, change):
    """The run's final checkpoint with ``change`` applied to its first float tensor."""
    content = read_checkpoint(run / "checkpoints" / "final.pt")
    key = next(k for k, v in content["state_dict"].items() if v.is_floating_point())
    content["state_dict"][key] = change(content["state_dict"][key])
    torch.save(content, tmp_path / "changed.pt")
    return tmp_path / "changed.pt"


def _resized_model(run, tmp_path):
    return _final_with(
        run, tmp_path, lambda value: torch.zeros(value.shape[0] + 1, *value.shape[1:])
    )


def _non_finite_model(run, tmp_path):
    return _final_with(run, tmp_path, lambda value: torch.full_like(value, float("nan")))


def _garbage(run, tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    return tmp_path / "garbage.pt"


def _foreign_torch_file(run, tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    return tmp_path / "foreign.pt"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda run, tmp: tmp / "missing.pt", "no such checkpoint"),
        (_garbage, "not a readable checkpoint"),
        (_foreign_torch_file, "not a CardioMM-FL model checkpoint"),
        (_other_model, "holds another model than this run (unexpected"),
        (_resized_model, "holds another model than this run ("),
        (_non_finite_model, "NaN or Inf weights"),
    ],
    ids=["missing", "garbage-bytes", "foreign-torch-file", "other-keys", "other-shapes", "nan"],
)
def test_a_model_it_cannot_score_is_refused_in_one_line_and_nothing_changes(
    run, tmp_path, temporary, capsys, no_flower, make, problem
):
    bad = make(run, tmp_path)
    before = _snapshot(run)
    assert _evaluate(run, "--model", f"local={bad}") == 2
    line = _error_line(capsys)
    assert "--model local" in line and str(bad) in line and problem in line
    assert _snapshot(run) == before
    assert list(temporary.iterdir()) == []  # no working copy was made


@pytest.mark.parametrize("name", ["global", "global-best-val", "two words", "a,b", "x" * 65])
def test_a_model_name_that_cannot_label_a_row_is_refused(run, capsys, no_flower, name):
    before = _snapshot(run)
    assert _evaluate(run, "--model", f"{name}={run / 'checkpoints' / 'final.pt'}") == 2
    line = _error_line(capsys)
    assert repr(name) in line and "cannot name a model of the matrix" in line
    assert _snapshot(run) == before


@pytest.mark.parametrize(
    ("models", "problem"),
    [
        (["local"], "expected NAME=CHECKPOINT"),
        (["=a.pt"], "expected NAME=CHECKPOINT"),
        (["x=a.pt", "x=b.pt"], "--model x: named twice"),
    ],
    ids=["no-path", "no-name", "twice"],
)
def test_a_malformed_model_option_is_refused(run, capsys, no_flower, models, problem):
    before = _snapshot(run)
    options = [part for model in models for part in ("--model", model)]
    assert _evaluate(run, *options) == 2
    assert problem in _error_line(capsys)
    assert _snapshot(run) == before


def test_a_run_whose_final_state_cannot_be_read_is_refused_not_retrained(run, capsys, no_flower):
    for name in ("latest.pt", "round-002.pt"):
        (run / "checkpoints" / name).write_bytes(b"\x00" * 100)
    before = _snapshot(run)
    assert _evaluate(run) == 2
    line = _error_line(capsys)
    assert "final state cannot be read" in line and "latest.pt" in line
    assert _snapshot(run) == before


def test_an_interrupted_run_is_refused_rather_than_trained_to_its_end(
    interrupted, tmp_path, capsys, no_flower
):
    folder = shutil.copytree(interrupted, tmp_path / "seed-0")
    before = _snapshot(folder)
    assert _evaluate(folder) == 2
    assert "give the folder of a finished federation run" in _error_line(capsys)
    assert _snapshot(folder) == before


def test_an_unfinished_run_with_a_finished_attempts_files_is_refused(
    interrupted, finished, tmp_path, capsys, no_flower
):
    folder = shutil.copytree(interrupted, tmp_path / "seed-0")
    # What an interrupted attempt next to an earlier finished one could leave.
    shutil.copy(finished / "history.json", folder / "history.json")
    shutil.copy(finished / "checkpoints" / "final.pt", folder / "checkpoints" / "final.pt")
    before = _snapshot(folder)
    assert _evaluate(folder) == 2
    assert "the run is not finished (round 1 of 2 checkpointed" in _error_line(capsys)
    assert _snapshot(folder) == before


def test_a_folder_without_a_finished_run_is_refused(tmp_path, capsys, no_flower):
    assert _evaluate(tmp_path) == 2
    assert "no history.json" in _error_line(capsys)


@pytest.mark.parametrize("earlier", ["cross_site.csv", "cross_site.png"])
def test_an_earlier_matrix_is_not_replaced_without_overwrite(run, capsys, no_flower, earlier):
    (run / earlier).write_bytes(b"an earlier matrix")
    before = _snapshot(run)
    assert _evaluate(run) == 2
    line = _error_line(capsys)
    assert earlier in line and "--overwrite" in line
    assert _snapshot(run) == before


class FlowerLeaves:
    """Stands in for `flwr run .`: leaves in the working copy what the resumed run would
    (its log, history, final model, matrix), then does ``then`` (raise, train) if given."""

    def __init__(self, run):
        self.run, self.then, self.working_copies = run, None, []

    def __call__(self, flower_run):
        work = flower_run.output_dir
        self.working_copies.append(work)
        (work / "flwr.log").write_text("the log of the evaluation\n")
        shutil.copy(self.run / "history.json", work / "history.json")
        shutil.copy(self.run / "checkpoints" / "final.pt", work / "checkpoints" / "final.pt")
        if self.then is not None:
            self.then(work)
        (work / "cross_site.csv").write_text("model,site\nnew,Center001\n")
        (work / "cross_site.png").write_bytes(b"a new figure")


@pytest.fixture
def flower_leaves(run, monkeypatch):
    leaves = FlowerLeaves(run)
    monkeypatch.setattr(cross_site_run, "run_flower_simulation", leaves)
    return leaves


def test_overwrite_replaces_the_earlier_matrix_and_nothing_else(run, temporary, flower_leaves):
    (run / "cross_site.csv").write_text("model,site\nearlier,Center001\n")
    (run / "cross_site.png").write_bytes(b"an earlier figure")
    before = _snapshot(run)
    assert _evaluate(run, "--overwrite") == 0
    after = _snapshot(run)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k not in MATRIX} == {
        k: v for k, v in before.items() if k not in MATRIX
    }
    assert "new,Center001" in (run / "cross_site.csv").read_text()
    assert (run / "cross_site.png").read_bytes() == b"a new figure"
    assert list(temporary.iterdir()) == []


def _interrupt(work):
    (work / "checkpoints" / "round-009.pt").write_bytes(b"half written")
    raise KeyboardInterrupt


def test_an_interrupt_during_the_evaluation_leaves_the_run_and_no_working_copy(
    run, temporary, flower_leaves
):
    flower_leaves.then = _interrupt
    before = _snapshot(run)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(run)
    assert _snapshot(run) == before
    assert flower_leaves.working_copies and list(temporary.iterdir()) == []


def _terminate(work):
    # Without the command's own handler, SIGTERM would end the test process itself.
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler or `kill` would


def test_sigterm_during_the_evaluation_leaves_the_run_and_no_working_copy(
    run, temporary, flower_leaves
):
    flower_leaves.then = _terminate
    before, handler = _snapshot(run), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        _evaluate(run)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert _snapshot(run) == before
    assert flower_leaves.working_copies and list(temporary.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == handler  # the earlier handler is back


def _fail(work):
    raise FlowerRunError(f"flwr run exited 1: ValueError: boom; log {work / 'flwr.log'}:\ntail")


def test_a_failed_flower_run_leaves_the_run_and_keeps_only_its_log(
    run, temporary, capsys, flower_leaves
):
    flower_leaves.then = _fail
    before = _snapshot(run)
    assert _evaluate(run) == 1
    line = _error_line(capsys)
    assert f"{run} unchanged" in line and "ValueError: boom" in line
    assert _snapshot(run) == before
    (kept,) = temporary.iterdir()  # the working copy is gone, its log is kept and named
    assert str(kept) in line and kept.read_text() == "the log of the evaluation\n"


def _play_a_round(work):
    (work / "checkpoints" / "round-002.pt").write_bytes(b"a round played again")


def _change_the_final_model(work):
    final = work / "checkpoints" / "final.pt"
    content = read_checkpoint(final)
    key = next(k for k, v in content["state_dict"].items() if v.is_floating_point())
    content["state_dict"][key] = content["state_dict"][key] + 1.0
    torch.save(content, final)


@pytest.mark.parametrize(
    ("then", "problem"),
    [(_play_a_round, "played a round (round-002.pt"), (_change_the_final_model, "differs")],
    ids=["round-played", "other-final-model"],
)
def test_a_matrix_made_after_training_is_not_kept(
    run, temporary, capsys, flower_leaves, then, problem
):
    flower_leaves.then = then
    before = _snapshot(run)
    assert _evaluate(run) == 1
    line = _error_line(capsys)
    assert problem in line and "not kept" in line
    assert _snapshot(run) == before
    assert list(temporary.iterdir()) == []


def _matrix(run):
    with open(run / "cross_site.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class WorkingCopyRecorder:
    """The real Flower run, recording what the working copy held before it started and
    after it ended (it is removed before the command returns)."""

    def __init__(self):
        self.before, self.after = {}, {}

    def __call__(self, flower_run):
        self.before = _snapshot(flower_run.output_dir)
        result = run_flower_simulation(flower_run)
        self.after = _snapshot(flower_run.output_dir)
        self.rounds = [record.round for record in read_history(result.history)]
        return result


@pytest.fixture
def recorder(monkeypatch):
    recorder = WorkingCopyRecorder()
    monkeypatch.setattr(cross_site_run, "run_flower_simulation", recorder)
    return recorder


def _round_checkpoints(snapshot):
    return {name for name in snapshot if name.startswith("checkpoints/round-")}


@pytest.mark.slow
def test_a_successful_evaluation_changes_no_file_of_the_run(run, tmp_path, temporary, recorder):
    local = shutil.copy(run / "checkpoints" / "final.pt", tmp_path / "local.pt")
    before = _snapshot(run)
    assert _evaluate(run, "--model", f"local-Center001={local}") == 0
    after = _snapshot(run)
    assert set(after) - set(before) == MATRIX
    assert {name: after[name] for name in before} == before
    rows = _matrix(run)
    assert {row["site"] for row in rows if row["model"] == "global"} == set(SITES)
    assert {row["site"] for row in rows if row["model"] == "local-Center001"} == set(SITES)
    assert _round_checkpoints(recorder.after) == _round_checkpoints(recorder.before)
    assert list(temporary.iterdir()) == []  # the working copy is gone


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_is_read_from_the_last_round_without_training(
    run, temporary, capsys, recorder
):
    (run / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 100)
    rounds = [record.round for record in read_history(run / "history.json")]
    before = _snapshot(run)
    assert _evaluate(run) == 0
    warning = _error_line(capsys)  # on the console, not only in flwr.log
    assert "warning:" in warning and "latest.pt" in warning and "round-002.pt" in warning
    after = _snapshot(run)
    assert set(after) - set(before) == MATRIX
    assert {name: after[name] for name in before} == before
    # No training: the evaluation resumed from round 2's own state and wrote no round.
    assert recorder.before["checkpoints/latest.pt"] == before["checkpoints/round-002.pt"]
    assert _round_checkpoints(recorder.after) == _round_checkpoints(recorder.before)
    assert recorder.rounds == rounds
    assert list(temporary.iterdir()) == []
