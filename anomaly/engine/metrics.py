"""Frame-level ROC AUC and average precision of snippet scores, without repeating each score 16 times.

Every snippet covers ``frames_per_snippet`` frames that share its score. Instead of materialising the repeated
score vector as the published evaluator does, each snippet contributes its count of anomalous frames as positive
weight and its count of normal frames as negative weight. Sorting by score and merging ties gives exactly the
thresholds of ``sklearn.metrics.roc_curve`` on the repeated vector, and the trapezoidal area equals
``sklearn.metrics.auc`` of that curve. Runs on whichever device the scores are on.
"""

from typing import Tuple

import torch
from torch import Tensor


def snippet_label_weights(frame_labels: Tensor, lengths: Tensor, frames_per_snippet: int = 16) -> Tuple[Tensor, Tensor]:
    """Anomalous and normal frame counts per snippet from concatenated 0/1 frame labels.

    frame_labels: (Σ frames_per_snippet · lengths); lengths: V -> two float64 tensors of Σ lengths.
    """
    total = int(lengths.sum())
    if frame_labels.numel() != total * frames_per_snippet:
        raise ValueError(
            f"{frame_labels.numel()} frame labels for {total} snippets of {frames_per_snippet} frames"
        )
    positives = frame_labels.to(torch.float64).view(total, frames_per_snippet).sum(dim=1)
    return positives, frames_per_snippet - positives


def _cumulative_counts(scores: Tensor, positives: Tensor, negatives: Tensor) -> Tuple[Tensor, Tensor]:
    """True- and false-positive weights at each distinct threshold, highest score first, starting from (0, 0)."""
    order = torch.argsort(scores.to(torch.float64), descending=True, stable=True)
    sorted_scores = scores.to(torch.float64)[order]
    true_positives = torch.cumsum(positives[order], dim=0)
    false_positives = torch.cumsum(negatives[order], dim=0)
    # The last entry of every run of equal scores is one threshold of the curve.
    last_of_tie = torch.ones_like(sorted_scores, dtype=torch.bool)
    last_of_tie[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    return torch.cat((zero, true_positives[last_of_tie])), torch.cat((zero, false_positives[last_of_tie]))


def weighted_roc_auc(scores: Tensor, positives: Tensor, negatives: Tensor) -> float:
    """Area under the ROC curve where sample i has weight ``positives[i]`` as anomalous and ``negatives[i]`` as normal."""
    true_positives, false_positives = _cumulative_counts(scores, positives, negatives)
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        raise ValueError("ROC AUC needs both anomalous and normal frames in the test set")
    tpr = true_positives / true_positives[-1]
    fpr = false_positives / false_positives[-1]
    return float(torch.trapezoid(tpr, fpr))


def weighted_average_precision(scores: Tensor, positives: Tensor, negatives: Tensor) -> float:
    """Average precision (scikit-learn's step-wise definition) under the same per-sample weights."""
    true_positives, false_positives = _cumulative_counts(scores, positives, negatives)
    if true_positives[-1] <= 0:
        raise ValueError("average precision needs anomalous frames in the test set")
    true_positives, false_positives = true_positives[1:], false_positives[1:]
    precision = true_positives / torch.clamp(true_positives + false_positives, min=1e-300)
    recall = true_positives / true_positives[-1]
    recall_steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64, device=scores.device))
    return float(torch.sum(recall_steps * precision))
