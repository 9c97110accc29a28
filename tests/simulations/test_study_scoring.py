"""The study's evaluation: every model, seed, split, mask, metadata variant and view of a fold,
file by file, and the references, on a small consortium (tiny models with perturbed
weights); the learning curves and the undersampling table."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition
from cardiomm.config import load_config
from cardiomm.data.metadata import ScanMetadata
from cardiomm.model.checkpoint import save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.text import build_text_encoder
from simulations.study.outcome import FILE_COLUMNS, ExperimentOutcome
from simulations.study.scoring import (
    SECONDS_TABLE,
    acceleration_rows,
    curve_rows,
    evaluate_outcomes,
    evaluation_data,
    load_examples,
    scored_references,
)
from tests.builders import TINY_CLASSICAL, write_consortium

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
            # Both internal centres keep a test patient (Center002 has two patients), and
            # Center001 a validation patient the classical references are tuned on.
            "data.val_fraction=0.2",
            "data.test_fraction=0.5",
            f"+study.max_eval_items={MAX_ITEMS}",
            *TINY_CLASSICAL,
        ]
    )


@pytest.fixture(scope="module")
def manifest(config):
    return load_partition(config.data, int(config.seed), show_progress=False)


def _checkpoint(path, text: str, seed: int, model: ModelConfig | None = None):
    """A tiny CardioMM with every weight perturbed, so heads and metadata adapters act."""
    encoder = build_text_encoder(text)
    torch.manual_seed(seed)
    network = build_network(model or ModelConfig(), encoder)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return save_checkpoint(path, network, {"name": text}, encoder.dim, extra={"method": text})


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")

    def outcome(experiment, kind, checkpoints):
        return ExperimentOutcome(FOLD, experiment, kind, 0, checkpoints, folder, None, 1.0, 1)

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


def test_rows_have_exactly_the_file_columns_and_finite_scores(evaluated):
    rows = evaluated[1]
    assert rows
    assert all(tuple(row) == FILE_COLUMNS for row in rows)
    assert all(math.isfinite(row[m]) for row in rows for m in ("psnr", "ssim", "nmse"))


def test_each_row_is_one_file_named_relative_to_the_data_root(evaluated):
    rows = evaluated[1]
    keys = [
        (r["experiment"], r["model"], r["split"], r["metadata"], r["view"], r["mask"], r["file"])
        for r in rows
    ]
    assert len(keys) == len(set(keys))
    assert all(row["file"].startswith("MultiCoil/") for row in rows)
    assert {row["seed"] for row in _rows(evaluated, experiment="fedavg")} == {"0"}


def test_every_image_is_scored_in_the_ranking_and_the_full_view(evaluated):
    ranking = _rows(evaluated, experiment="fedavg", view="ranking")
    full = _rows(evaluated, experiment="fedavg", view="full")
    assert len(ranking) == len(full)
    assert {r["psnr"] for r in ranking} != {r["psnr"] for r in full}


def test_every_model_is_scored_on_every_split_mask_and_metadata_variant(evaluated):
    expected = {
        (split, mask, metadata, view)
        for mask in MASKS
        for view in ("ranking", "full")
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
        assert {(r["split"], r["mask"], r["metadata"], r["view"]) for r in rows} == expected


def test_internal_test_rows_are_the_internal_centres_and_held_out_rows_the_held_out_one(
    evaluated,
):
    assert {r["centre"] for r in _rows(evaluated, split="internal-test")} == {
        "Center001",
        "Center002",
    }
    assert {r["centre"] for r in _rows(evaluated, split="held-out")} == {"Center003"}


def test_references_are_scored_once_per_fold_with_full_metadata(evaluated):
    for name in ("zero-filled", "best-classical"):
        rows = _rows(evaluated, experiment=name)
        assert {(r["kind"], r["seed"], r["model"], r["metadata"], r["fold"]) for r in rows} == {
            ("reference", "-", "-", "full", FOLD)
        }
        assert len(rows) == len({(r["split"], r["view"], r["file"], r["mask"]) for r in rows})
        assert {r["mask"] for r in rows} == MASKS


def test_each_classical_method_is_scored_by_name_beside_best_classical(evaluated):
    for name in ("cg-sense", "l1-wavelet", "kt-sparse"):
        rows = _rows(evaluated, experiment=name)
        assert {(r["kind"], r["seed"], r["metadata"]) for r in rows} == {("reference", "-", "full")}
        assert {r["mask"] for r in rows} == MASKS


def test_best_classical_scores_equal_the_named_method_tuning_chose_at_each_mask(evaluated):
    output, _ = evaluated
    choices = json.loads((output / "classical" / "classical_tuning.json").read_text())["choices"]
    for mask in MASKS:
        best = {
            (r["split"], r["view"], r["file"]): r["psnr"]
            for r in _rows(evaluated, experiment="best-classical", mask=mask)
        }
        chosen = {
            (r["split"], r["view"], r["file"]): r["psnr"]
            for r in _rows(evaluated, experiment=choices[mask]["best_method"], mask=mask)
        }
        assert best == chosen


def test_the_classical_seconds_per_image_are_written_beside_the_tuning_record(evaluated):
    output, _ = evaluated
    table = (output / "classical" / SECONDS_TABLE).read_text().splitlines()
    assert "seconds per image" in table[0]
    body = table[2:]
    # best-classical and the three named methods at each mask.
    assert len(body) == 4 * len(MASKS)
    assert all(float(line.split("|")[5]) > 0 for line in body)


def test_classical_baselines_name_only_classical_methods():
    config = OmegaConf.create({"study": {"classical_baselines": ["sense"]}})
    with pytest.raises(ValueError, match=r"study\.classical_baselines: unknown method.*sense"):
        scored_references(config)


def test_no_classical_baselines_scores_best_classical_alone():
    config = OmegaConf.create({"study": {"classical_baselines": []}})
    assert scored_references(config) == ("zero-filled", "best-classical")


def test_a_text_conditioned_frame_window_model_is_scored_with_its_slice_texts(
    config, manifest, tmp_path
):
    window = ModelConfig(temporal="window", window_radius=1)
    checkpoint = _checkpoint(tmp_path / "w.pt", "minilm", 5, window)
    outcome = ExperimentOutcome(
        FOLD, "fedavg-window", "federated", 0, {"global": checkpoint}, tmp_path, None, 1.0, 1
    )
    rows = evaluate_outcomes(
        [outcome], config, manifest, tmp_path, show_progress=False, include_references=False
    )
    assert rows and all(math.isfinite(row["psnr"]) for row in rows)
    full = {
        r["file"]: r["psnr"] for r in rows if r["metadata"] == "full" and r["mask"] == "Uniform8"
    }
    unknown = {
        r["file"]: r["psnr"] for r in rows if r["metadata"] == "unknown" and r["mask"] == "Uniform8"
    }
    # The texts reach the network: unknown metadata changes what it reconstructs.
    assert any(full[file] != unknown[file] for file in unknown)


def test_the_item_cap_limits_images_per_centre_and_mask(evaluated):
    for split, centre in (("held-out", "Center003"), ("internal-test", "Center001")):
        rows = _rows(evaluated, experiment="fedavg", split=split, centre=centre, view="ranking")
        for mask in MASKS:
            assert (
                sum(r["images"] for r in rows if r["mask"] == mask and r["metadata"] == "full")
                <= MAX_ITEMS
            )


def test_unknown_metadata_changes_the_scores_of_a_text_conditioned_model(evaluated):
    def scores(metadata):
        rows = _rows(evaluated, experiment="fedavg", metadata=metadata, split="held-out")
        return {(r["mask"], r["view"], r["file"]): r["psnr"] for r in rows}

    full, unknown = scores("full"), scores("unknown")
    assert full.keys() == unknown.keys()
    assert all(full[key] != unknown[key] for key in full)


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
        ("best-classical", "-"),
        ("cg-sense", "-"),
        ("l1-wavelet", "-"),
        ("kt-sparse", "-"),
        ("centralised", "global"),
        ("local-only", "Center001"),
        ("local-only", "Center002"),
        ("fedavg", "global"),
    }
    assert {(e.centre, e.mask, e.fold) for e in examples} == {("Center003", "Uniform8", FOLD)}
    assert all(e.target.shape == e.reconstruction.shape for e in examples)


def test_outcomes_of_two_folds_are_refused(outcomes, config, manifest, tmp_path):
    other = ExperimentOutcome("held-out=Center002", "x", "centralised", 0, {}, tmp_path, None, 0, 0)
    with pytest.raises(ValueError, match="several folds"):
        evaluate_outcomes([outcomes[0], other], config, manifest, tmp_path, show_progress=False)


def test_learning_curves_score_each_kept_checkpoint_and_the_references(
    outcomes, config, manifest, tmp_path
):
    centralised = outcomes[0]
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    content = torch.load(centralised.checkpoints["global"], weights_only=True)
    content["extra"]["step"] = 40
    torch.save(content, folder / "step-000040.pt")
    run = ExperimentOutcome(
        FOLD,
        "centralised",
        "centralised",
        0,
        centralised.checkpoints,
        tmp_path / "run",
        None,
        1.0,
        80,
        {"total_steps": 80},
    )
    rows = curve_rows([run], config, manifest, ["centralised"], 1, tmp_path)
    assert {(r["experiment"], r["seed"], r["steps"]) for r in rows} == {
        ("zero-filled", "-", 0),
        ("best-classical", "-", 0),
        ("centralised", "0", 40),
        ("centralised", "0", 80),
    }
    assert {r["mask"] for r in rows} == MASKS
    assert all(r["images"] == 1 for r in rows)


def test_no_curve_items_means_no_curves(outcomes, config, manifest, tmp_path):
    assert curve_rows(outcomes, config, manifest, ["centralised"], 0, tmp_path) == []


def test_the_undersampling_table_gives_nominal_and_true_accelerations(config, manifest):
    rows = acceleration_rows(config, manifest)
    assert [row["setting"] for row in rows] == ["Uniform8", "ktGaussian16", "ktRadial24"]
    assert all(1 < float(row["true R, held-out files"]) < row["nominal R"] for row in rows)
