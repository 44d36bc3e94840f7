"""Training and evaluation."""

from anomaly.engine.evaluator import DeviceTestSet, Evaluation, evaluate
from anomaly.engine.precision import PRECISIONS, autocast
from anomaly.engine.trainer import ShuffledBatches, make_optimizer, train_step

__all__ = [
    "DeviceTestSet",
    "Evaluation",
    "PRECISIONS",
    "ShuffledBatches",
    "autocast",
    "evaluate",
    "make_optimizer",
    "train_step",
]
