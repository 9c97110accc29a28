"""Local training and evaluation: one trainer for federated sites, centralised training and
local-only baselines."""

from cardiomm.train.config import TrainConfig
from cardiomm.train.evaluate import EvaluationResult, evaluate_reconstructor
from cardiomm.train.loop import TrainResult, train_model
from cardiomm.train.run import TrainingRun

__all__ = [
    "EvaluationResult",
    "TrainConfig",
    "TrainResult",
    "TrainingRun",
    "evaluate_reconstructor",
    "train_model",
]
