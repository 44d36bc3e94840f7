"""Training and evaluation."""

from anomaly.engine.evaluator import DeviceTestSet, Evaluation, evaluate
from anomaly.precision import PRECISIONS, autocast
from anomaly.engine.trainer import ShuffledBatches, TrainingData, make_optimizer, train_step

__all__ = [
    "DeviceTestSet",
    "Evaluation",
    "PRECISIONS",
    "ShuffledBatches",
    "TrainingData",
    "autocast",
    "evaluate",
    "make_optimizer",
    "train_step",
]
