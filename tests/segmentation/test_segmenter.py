"""The MONAI segmenter of the clinical check: its classes, its reference slices, training
with checkpoints, and Dice."""

import json
import math

import numpy as np
import pytest
import torch

from cardiomm.cli import main
from cardiomm.data.synthetic.labels import Label
from cardiomm.segmentation.classes import LV_BLOOD, LV_MYOCARDIUM, RV_BLOOD, segmentation_classes
from cardiomm.segmentation.network import (
    CHECKPOINT_FORMAT,
    build_segmenter,
    load_segmenter,
    network_input,
    predict,
    save_segmenter,
)
from cardiomm.segmentation.reference_slices import cine_sax_files, reference_slices
from cardiomm.segmentation.training import (
    SegmenterSettings,
    dice_intervals,
    dice_per_class,
    heart_centre,
    heart_crop,
    train_segmenter,
)


@pytest.fixture
def cine_files(cine_sax_path):
    return [cine_sax_path]


def _disk_pair():
    """A drawn short-axis slice: LV blood disk, myocardial ring, RV crescent."""
    rows, columns = np.mgrid[:40, :48]
    radius = np.hypot(rows - 20, columns - 26)
    classes = np.zeros((40, 48), np.uint8)
    classes[(radius >= 7) & (radius < 11)] = LV_MYOCARDIUM
    classes[radius < 7] = LV_BLOOD
    classes[(np.hypot(rows - 20, columns - 12) < 7) & (radius >= 11)] = RV_BLOOD
    image = np.choose(classes, [0.1, 0.9, 0.4, 1.0]).astype(np.float32)
    return image, classes


def test_scar_counts_as_myocardium_and_other_tissues_as_background():
    tissues = np.array(
        [Label.RV_BLOOD, Label.LV_MYOCARDIUM, Label.SCAR, Label.LV_BLOOD, Label.LIVER]
    )
    assert segmentation_classes(tissues).tolist() == [
        RV_BLOOD,
        LV_MYOCARDIUM,
        LV_MYOCARDIUM,
        LV_BLOOD,
        0,
    ]


def test_every_frame_and_slice_of_a_cine_sax_file_is_a_reference_pair(cine_files):
    assert cine_sax_files(cine_files) == cine_files
    pairs = reference_slices(cine_files)
    assert len(pairs) > 1
    for image, classes in pairs:
        assert image.shape == classes.shape and image.dtype == np.float32
        assert np.percentile(image, 99.5) == pytest.approx(1.0, rel=1e-4)
        assert set(np.unique(classes)) <= {0, RV_BLOOD, LV_MYOCARDIUM, LV_BLOOD}
    assert any((classes == LV_BLOOD).any() for _, classes in pairs)


def test_training_learns_a_drawn_heart_and_its_dice_says_so(tmp_path):
    pair = _disk_pair()
    settings = SegmenterSettings(size="tiny", steps=120, learning_rate=1e-2, crop=0, seed=0)
    result = train_segmenter([pair], settings, tmp_path, show_progress=False)
    network, size = load_segmenter(result.checkpoint)
    dice = dice_per_class(network, size, [pair])
    assert min(dice.values()) > 0.8, dice


def test_the_same_seed_trains_the_same_weights(tmp_path):
    settings = SegmenterSettings(size="tiny", steps=5, seed=3)
    first = train_segmenter([_disk_pair()], settings, tmp_path / "a", show_progress=False)
    again = train_segmenter([_disk_pair()], settings, tmp_path / "b", show_progress=False)
    one, two = (load_segmenter(run.checkpoint)[0].state_dict() for run in (first, again))
    assert all(torch.equal(one[key], two[key]) for key in one)


def test_step_checkpoints_are_kept_when_asked(tmp_path):
    settings = SegmenterSettings(size="tiny", steps=4, checkpoint_every=2)
    train_segmenter([_disk_pair()], settings, tmp_path, show_progress=False)
    assert sorted(path.name for path in tmp_path.glob("*.pt")) == [
        "segmenter.pt",
        "step-000002.pt",
        "step-000004.pt",
    ]


def test_a_class_absent_from_every_reference_has_no_dice(tmp_path):
    image, classes = _disk_pair()
    classes = np.where(classes == RV_BLOOD, 0, classes).astype(np.uint8)
    checkpoint = save_segmenter(tmp_path / "s.pt", build_segmenter("tiny"), "tiny", {})
    network, size = load_segmenter(checkpoint)
    dice = dice_per_class(network, size, [(image, classes)])
    assert math.isnan(dice["rv_blood"])
    assert predict(network, image, size).shape == image.shape


def test_a_file_that_is_not_a_segmenter_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a CardioMM-FL segmenter checkpoint"):
        load_segmenter(path)


def test_a_segmenter_trained_on_linear_inputs_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "state_dict": {}}, path)
    with pytest.raises(ValueError, match="segmenter checkpoint version 1"):
        load_segmenter(path)


def test_the_network_sees_the_dim_heart_lifted_and_the_ends_kept():
    images = torch.tensor([-0.01, 0.0, 0.05, 1.0])
    expected = torch.tensor([0.0, 0.0, math.log(2.0) / math.log(21.0), 1.0])
    assert torch.allclose(network_input(images), expected)


class _InputRecorder(torch.nn.Module):
    """Background logits everywhere; keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(images.clone())
        return torch.zeros(images.shape[0], 4, *images.shape[2:])


def test_prediction_feeds_the_network_the_compressed_image():
    image = np.full((16, 16), 0.05, np.float32)
    recorder = _InputRecorder()
    predict(recorder, image, "tiny")
    lifted = math.log(2.0) / math.log(21.0)
    assert torch.allclose(recorder.seen[0], torch.full((1, 1, 16, 16), lifted))


def test_the_command_needs_held_out_centres_to_score_on(tmp_path, capsys):
    code = main(["train-segmenter", "--output", str(tmp_path), "--steps", "1", "--no-progress"])
    assert code == 2
    assert "no held-out centres to score on" in capsys.readouterr().err


def test_the_command_trains_on_internal_centres_and_scores_the_held_out_ones(tmp_path):
    code = main([
        "train-segmenter", "--output", str(tmp_path), "--size", "tiny", "--steps", "3",
        "--no-progress", "data.hold_out_count=2",
    ])  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "segmenter_metrics.json").read_text())
    assert len(metrics["held_out_centres"]) == 2
    assert set(metrics["held_out_dice"]) == {"rv_blood", "lv_myocardium", "lv_blood"}
    assert (tmp_path / "segmenter.pt").is_file()


def test_augmentation_moves_image_and_classes_together_and_keeps_the_classes():
    from cardiomm.segmentation.training import augmentation

    image, classes = _disk_pair()
    change = augmentation(seed=5)
    moved = [
        change(torch.from_numpy(np.stack([image, classes.astype(np.float32)]))) for _ in range(8)
    ]
    for both in moved:
        labels = both[1].numpy()
        assert set(np.unique(labels)) <= {0, RV_BLOOD, LV_MYOCARDIUM, LV_BLOOD}
        # The bright blood pool is where the LV blood label went.
        blood = labels == LV_BLOOD
        assert both[0].numpy()[blood].mean() > 2 * both[0].numpy()[~blood].mean()
    assert any(not np.array_equal(both[1].numpy(), classes) for both in moved)


def test_a_file_whose_labels_cannot_be_read_is_skipped_with_the_reason(cine_sax_path, tmp_path):
    import shutil

    from cardiomm.data.synthetic import sidecar_paths

    copy = tmp_path / "P001" / "cine_sax.mat"
    copy.parent.mkdir()
    shutil.copy(cine_sax_path, copy)
    sidecar_paths(copy)[1].write_bytes(b"not an npz archive")
    skipped = []
    pairs = reference_slices([copy, cine_sax_path], skipped=skipped)
    assert len(pairs) == len(reference_slices([cine_sax_path]))  # the good file's alone
    assert [path for path, _ in skipped] == [copy]


def test_a_training_crop_holds_the_whole_heart_of_a_smaller_image():
    image, classes = _disk_pair()
    generator = np.random.default_rng(0)
    for _ in range(20):
        cropped_image, cropped_classes = heart_crop(
            image, classes, heart_centre(classes), 64, generator
        )
        assert cropped_image.shape == cropped_classes.shape == (64, 64)
        assert (cropped_classes == LV_BLOOD).sum() == (classes == LV_BLOOD).sum()
        assert (cropped_classes > 0).sum() == (classes > 0).sum()
        assert np.array_equal(cropped_image[cropped_classes > 0], image[classes > 0])


def test_an_image_without_a_heart_is_cropped_anywhere():
    classes = np.zeros((40, 48), np.uint8)
    assert heart_centre(classes) is None
    cropped, _ = heart_crop(
        np.ones((40, 48), np.float32), classes, None, 16, np.random.default_rng(1)
    )
    assert cropped.shape == (16, 16)


@pytest.mark.parametrize("field", [{"steps": 0}, {"batch_size": 0}, {"crop": -1}])
def test_segmenter_settings_refuse_impossible_values(field):
    with pytest.raises(ValueError):
        SegmenterSettings(**field)


def test_dice_intervals_hold_the_mean_and_skip_classes_no_image_has():
    scores = np.array([[0.8, 0.9, np.nan], [0.6, 0.7, np.nan], [0.7, 0.8, np.nan]])
    intervals = dice_intervals(scores, seed=0, resamples=500)
    mean, low, high = intervals["rv_blood"]
    assert mean == pytest.approx(0.7)
    assert 0.6 <= low <= mean <= high <= 0.8
    assert all(math.isnan(value) for value in intervals["lv_blood"])
    assert dice_intervals(scores, seed=0, resamples=500) == intervals
