"""CardioMM learns: a short CPU training on the tiny synthetic set beats zero-filled on
centres it never saw, by a clear margin."""

import pytest

from cardiomm.config import load_config
from simulations.checkpoint_evaluation import run_evaluation
from simulations.training import run_training

HELD_OUT = "[Center003,Center004]"
# Measured on generator 2.0's tiny set (vendor raw filters, segmented breath-hold cine):
# +1.66 / +1.34 / +1.63 dB at Uniform 8 / ktGaussian 16 / ktRadial 24 after 400 steps
# (MiniLM; +2.5 to +3.3 on generator 1's); the thresholds leave room for other thread counts.
MIN_GAIN_PER_MASK_DB = 1.0
MIN_MEAN_GAIN_DB = 1.2


@pytest.fixture(scope="module")
def held_out_scores(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic-tiny"
    data = [f"data.root={root}", "data.synthetic_preset=tiny", f"data.hold_out={HELD_OUT}"]
    run = tmp_path_factory.mktemp("run")
    training = load_config(
        [*data, "train.max_steps=400", "train.learning_rate=2e-3", f"output_dir={run}"]
    )
    summary = run_training(training, show_progress=False)
    evaluation = load_config(
        [
            *data,
            f"checkpoints=[{summary['checkpoint']}]",
            "baselines=[zero-filled]",
            "split=held-out",
            f"output_dir={tmp_path_factory.mktemp('eval')}",
        ],
        config_name="evaluate",
    )
    result = run_evaluation(evaluation, show_progress=False)
    return {(row["method"], row["mask"]): row["psnr"] for row in result.summary(["method", "mask"])}


def test_cardiomm_beats_zero_filled_on_held_out_centres_at_every_mask(held_out_scores):
    for mask in ("Uniform8", "ktGaussian16", "ktRadial24"):
        gain = held_out_scores[("cardiomm", mask)] - held_out_scores[("zero-filled", mask)]
        assert gain >= MIN_GAIN_PER_MASK_DB, f"{mask}: {gain:.2f} dB"


def test_cardiomm_beats_zero_filled_on_held_out_centres_on_average(held_out_scores):
    gains = [
        held_out_scores[("cardiomm", mask)] - held_out_scores[("zero-filled", mask)]
        for mask in ("Uniform8", "ktGaussian16", "ktRadial24")
    ]
    assert sum(gains) / len(gains) >= MIN_MEAN_GAIN_DB
