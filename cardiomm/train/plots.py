"""Pictures of a training run: the loss over steps and the validation scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiomm.figures import save_figure
from cardiomm.train.loop import TrainResult


def save_training_curves(result: TrainResult, path: str | Path, title: str = "") -> Path:
    """PNG with the training loss (raw and smoothed) and, if any, validation PSNR / SSIM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_validation = bool(result.validation_history)
    figure, axes = plt.subplots(
        1, 2 if has_validation else 1, figsize=(11 if has_validation else 6, 3.6)
    )
    loss_axis = axes[0] if has_validation else axes
    steps = np.arange(1, len(result.loss_history) + 1)
    losses = np.asarray(result.loss_history)
    loss_axis.plot(steps, losses, alpha=0.35, label="per step")
    window = max(1, len(losses) // 20)
    if window > 1:
        smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
        loss_axis.plot(steps[window - 1 :], smoothed, label=f"mean of {window}")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("1 - SSIM loss")
    loss_axis.legend()
    if has_validation:
        validation_steps = [step for step, _ in result.validation_history]
        psnr = [scores["psnr"] for _, scores in result.validation_history]
        ssim = [scores["ssim"] for _, scores in result.validation_history]
        axes[1].plot(validation_steps, psnr, "o-", color="tab:green")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("validation PSNR (dB)", color="tab:green")
        twin = axes[1].twinx()
        twin.plot(validation_steps, ssim, "s--", color="tab:purple")
        twin.set_ylabel("validation SSIM", color="tab:purple")
    figure.suptitle(title or f"{result.steps} steps on {result.device}")
    return save_figure(figure, path, dpi=110)
