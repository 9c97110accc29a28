"""The MLflow helpers shared by a federated run's tracker and a study's, against a recording
client (MLflow's own store is exercised by the federation and study end-to-end tests)."""

import types
from pathlib import Path

from federation.mlflow_store import (
    METRIC_BATCH,
    PARAM_VALUE_LIMIT,
    embedded_uri,
    experiment_id,
    flatten,
    log_files,
    log_metrics,
    log_params,
    mlflow_key,
    resume_run,
)


class RecordingClient:
    """The few MlflowClient calls the helpers make, recorded."""

    def __init__(self, params=None, experiments=None, runs=("run-1",)):
        self.params = dict(params or {})
        self.experiments = dict(experiments or {})
        self.runs = set(runs)
        self.batches = []
        self.artifacts = []
        self.created = []
        self.updates = []

    def get_run(self, run_id):
        if run_id not in self.runs:
            raise RuntimeError(f"no run {run_id}")
        return types.SimpleNamespace(data=types.SimpleNamespace(params=self.params))

    def log_batch(self, run_id, metrics=(), params=()):
        self.batches.append((run_id, list(metrics), list(params)))

    def log_artifact(self, run_id, path, folder=None):
        self.artifacts.append((run_id, Path(path).name, folder))

    def get_experiment_by_name(self, name):
        if name not in self.experiments:
            return None
        return types.SimpleNamespace(experiment_id=self.experiments[name])

    def create_experiment(self, name, artifact_location=None):
        self.created.append((name, artifact_location))
        return "new-id"

    def update_run(self, run_id, status):
        self.updates.append((run_id, status))

    def set_tag(self, run_id, key, value):
        self.updates.append((run_id, f"{key}={value}"))


def test_embedded_uri_is_a_sqlite_store_inside_the_folder(tmp_path):
    assert embedded_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_mlflow_key_replaces_characters_mlflow_refuses():
    assert mlflow_key("site/node-1/psnr (dB):mean") == "site/node-1/psnr _dB__mean"


def test_flatten_joins_nested_keys_with_dots():
    assert dict(flatten({"train": {"lr": 1e-3, "dp": {"on": False}}, "seed": 0})) == {
        "train.lr": 1e-3,
        "train.dp.on": False,
        "seed": 0,
    }


def test_log_params_skips_keys_the_run_already_has_and_cuts_long_values():
    client = RecordingClient(params={"seed": "0"})
    log_params(client, "run-1", {"seed": 0, "notes": "x" * (PARAM_VALUE_LIMIT + 10)})
    [(_, _, params)] = client.batches
    assert [(param.key, len(param.value)) for param in params] == [("notes", PARAM_VALUE_LIMIT)]


def test_log_metrics_sends_batches_within_mlflows_limit_at_the_given_step():
    client = RecordingClient()
    log_metrics(client, "run-1", {f"m{index}": index for index in range(METRIC_BATCH + 1)}, step=7)
    assert [len(metrics) for _, metrics, _ in client.batches] == [METRIC_BATCH, 1]
    assert {metric.step for _, metrics, _ in client.batches for metric in metrics} == {7}


def test_experiment_id_creates_a_missing_experiment_with_its_artifact_folder(tmp_path):
    client = RecordingClient(experiments={"known": "3"})
    assert experiment_id(client, "known", tmp_path) == "3"
    assert experiment_id(client, "fresh", tmp_path / "mlartifacts") == "new-id"
    assert client.created == [("fresh", (tmp_path / "mlartifacts").resolve().as_uri())]


def test_resume_run_reopens_an_existing_run_and_refuses_an_unknown_one():
    client = RecordingClient(runs=("run-1",))
    assert resume_run(client, "run-1")
    assert not resume_run(client, "gone")
    assert not resume_run(client, None)
    assert client.updates == [("run-1", "RUNNING"), ("run-1", "resumed=true")]


def test_log_files_logs_only_files_that_exist(tmp_path):
    (tmp_path / "history.json").write_text("[]")
    client = RecordingClient()
    log_files(client, "run-1", [tmp_path / "history.json", tmp_path / "missing.yaml"], "report")
    assert client.artifacts == [("run-1", "history.json", "report")]
