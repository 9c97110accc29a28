"""The study's evaluation: every model, split, mask and metadata variant of a fold, and the
references, on a small consortium (untrained tiny models with perturbed weights)."""

import math

import pytest
import torch

from cardiomm.config import load_config
from cardiomm.data.metadata import ScanMetadata
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.text import build_text_encoder
from simulations.data_root import load_partition
from simulations.study.evaluation import (
    evaluate_outcomes,
    evaluation_data,
    load_examples,
)
from simulations.study.outcome import RESULT_COLUMNS, ExperimentOutcome
from tests.builders import write_consortium

FOLD = "held-out=Center003"
MASKS = {"Uniform8", "ktGaussian16", "ktRadial24"}
MAX_ITEMS = 2


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return load_config(
        [
            f"data.root={root}",
            "data.synthetic_preset=null",
            "data.hold_out=[Center003]",
            # Both internal centres keep a test patient (Center002 has two patients).
            "data.val_fraction=0.0",
            "data.test_fraction=0.5",
            f"+study.max_eval_items={MAX_ITEMS}",
        ]
    )


@pytest.fixture(scope="module")
def manifest(config):
    return load_partition(config.data, int(config.seed), show_progress=False)


def _checkpoint(path, text: str, seed: int):
    """A tiny CardioMM with every weight perturbed, so heads and metadata adapters act."""
    encoder = build_text_encoder(text)
    torch.manual_seed(seed)
    network = build_network(ModelConfig(), encoder)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return save_checkpoint(path, network, {"name": text}, encoder.dim, extra={"method": text})


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")

    def outcome(experiment, kind, checkpoints):
        return ExperimentOutcome(FOLD, experiment, kind, checkpoints, folder, None, 1.0, 1)

    return [
        outcome("centralised", "centralised", {"global": _checkpoint(folder / "c.pt", "none", 1)}),
        outcome(
            "local-only",
            "local",
            {
                "Center001": _checkpoint(folder / "l1.pt", "none", 2),
                "Center002": _checkpoint(folder / "l2.pt", "none", 3),
            },
        ),
        outcome("fedavg", "federated", {"global": _checkpoint(folder / "f.pt", "minilm", 4)}),
    ]


@pytest.fixture(scope="module")
def evaluated(outcomes, config, manifest, tmp_path_factory):
    output = tmp_path_factory.mktemp("evaluation")
    return output, evaluate_outcomes(outcomes, config, manifest, output, show_progress=False)


def _rows(evaluated, **match):
    return [row for row in evaluated[1] if all(row[k] == v for k, v in match.items())]


def test_rows_have_exactly_the_result_columns_and_finite_scores(evaluated):
    rows = evaluated[1]
    assert rows
    assert all(tuple(row) == RESULT_COLUMNS for row in rows)
    assert all(math.isfinite(row[m]) for row in rows for m in ("psnr", "ssim", "nmse"))


def test_every_model_is_scored_on_every_split_mask_and_metadata_variant(evaluated):
    expected = {
        (split, mask, metadata)
        for mask in MASKS
        for split, metadata in (
            ("internal-test", "full"),
            ("held-out", "full"),
            ("held-out", "unknown"),
        )
    }
    for experiment, model in (
        ("centralised", "global"),
        ("local-only", "Center001"),
        ("local-only", "Center002"),
        ("fedavg", "global"),
    ):
        rows = _rows(evaluated, experiment=experiment, model=model)
        assert {(r["split"], r["mask"], r["metadata"]) for r in rows} == expected


def test_internal_test_rows_are_the_internal_centres_and_held_out_rows_the_held_out_one(
    evaluated,
):
    assert {r["centre"] for r in _rows(evaluated, split="internal-test")} == {
        "Center001",
        "Center002",
    }
    assert {r["centre"] for r in _rows(evaluated, split="held-out")} == {"Center003"}


def test_references_are_scored_once_per_fold_with_full_metadata(evaluated):
    for name in ("zero-filled", "sense"):
        rows = _rows(evaluated, experiment=name)
        assert {(r["kind"], r["model"], r["metadata"], r["fold"]) for r in rows} == {
            ("reference", "-", "full", FOLD)
        }
        assert len(rows) == len({(r["split"], r["centre"], r["mask"]) for r in rows})
        assert {r["mask"] for r in rows} == MASKS


def test_the_item_cap_limits_images_per_centre_and_mask(evaluated):
    assert max(row["images"] for row in evaluated[1]) <= MAX_ITEMS


def test_unknown_metadata_changes_the_scores_of_a_text_conditioned_model(evaluated):
    full = {
        r["mask"]: r["psnr"]
        for r in _rows(evaluated, experiment="fedavg", metadata="full", split="held-out")
    }
    unknown = {
        r["mask"]: r["psnr"] for r in _rows(evaluated, experiment="fedavg", metadata="unknown")
    }
    assert all(full[mask] != unknown[mask] for mask in MASKS)


def test_unknown_metadata_datasets_pass_unknown_texts_for_the_held_out_centre(
    config, manifest, tmp_path
):
    data = evaluation_data(config, manifest, tmp_path)
    texts = {
        item.metadata: item.dataset[0].metadata_text for item in data if item.split == "held-out"
    }
    assert "Siemens" in texts["full"]
    assert texts["unknown"] == ScanMetadata().to_text()


def test_example_images_are_kept_for_every_method_of_the_held_out_centre(evaluated):
    examples = list(load_examples(evaluated[0] / "examples"))
    assert {(e.experiment, e.model) for e in examples} == {
        ("zero-filled", "-"),
        ("sense", "-"),
        ("centralised", "global"),
        ("local-only", "Center001"),
        ("local-only", "Center002"),
        ("fedavg", "global"),
    }
    assert {(e.centre, e.mask, e.fold) for e in examples} == {("Center003", "Uniform8", FOLD)}
    assert all(e.target.shape == e.reconstruction.shape for e in examples)


def test_outcomes_of_two_folds_are_refused(outcomes, config, manifest, tmp_path):
    other = ExperimentOutcome("held-out=Center002", "x", "centralised", {}, tmp_path, None, 0, 0)
    with pytest.raises(ValueError, match="several folds"):
        evaluate_outcomes([outcomes[0], other], config, manifest, tmp_path, show_progress=False)
