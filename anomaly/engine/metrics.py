"""Every frame-level metric of the papers, from snippet scores, without repeating each score 16 times.

Every snippet covers ``frames_per_snippet`` frames that share its score. Instead of materialising the repeated
score vector as the published evaluator does, each snippet contributes its count of anomalous frames as positive
weight and its count of normal frames as negative weight. Sorting by score and merging ties gives exactly the
thresholds of scikit-learn's curves on the repeated vector, so every metric here equals scikit-learn's on that
vector (the tests check 1e-9, ties included). Runs on whichever device the scores are on.

The metrics (``frame_metrics`` computes them all; names as in ``metrics.json``):

- ``frame_auc``: ROC AUC over every test frame, ``sklearn.metrics.auc`` of ``roc_curve`` (the published number of
  ShanghaiTech and UCF-Crime);
- ``anomalous_video_auc``: the same over the frames of anomalous test videos only (BN-WVAD's AUC_sub, VadCLIP's
  Ano-AUC);
- ``ap_stepwise``: ``sklearn.metrics.average_precision_score``, Σ (R_n − R_{n−1}) P_n (this project's XD-Violence
  metric, and VadCLIP's);
- ``ap_trapezoidal``: ``auc(recall, precision)`` of ``precision_recall_curve``, the trapezoidal area (RTFM, MGFN,
  UR-DMU, BN-WVAD and PEL4VAD report this one on XD-Violence); it is not the same number;
- ``false_alarm_rate``: the share of frames of normal test videos scored at or above a threshold (0.5), as
  PEL4VAD's ``cal_false_alarm``;
- ``per_class_auc`` (UCF-Crime): per class (the id's alphabetic prefix, ``Abuse028_x264`` -> ``Abuse``), the AUC of
  that class's anomalous videos together with all normal test videos.

A test video is anomalous when its ground truth has at least one anomalous frame. Non-finite scores raise
``NonFiniteScores``: a metric of NaN scores is an error, never a number.
"""

import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from anomaly.errors import InputError
from anomaly.layout import FRAMES_PER_SNIPPET

DEFAULT_FALSE_ALARM_THRESHOLD = 0.5


class NonFiniteScores(InputError):
    """Scores holding NaN or infinity: no metric of them is meaningful. An input error: the model's weights or its
    inputs overflow float32 (training turns it into "training diverged")."""

    def __init__(self, problem: str):
        super().__init__(None, problem)


def snippet_label_weights(frame_labels: Tensor, lengths: Tensor, frames_per_snippet: int = FRAMES_PER_SNIPPET) -> Tuple[Tensor, Tensor]:
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


def check_finite(scores: Tensor) -> None:
    """Raise ``NonFiniteScores`` naming how many scores are NaN or infinite."""
    bad = int((~torch.isfinite(scores)).sum())
    if bad:
        raise NonFiniteScores(f"{bad} of {scores.numel()} snippet scores are NaN or infinite: no metric of them exists")


def _cumulative_counts(scores: Tensor, positives: Tensor, negatives: Tensor) -> Tuple[Tensor, Tensor]:
    """True- and false-positive weights at each distinct threshold, highest score first, starting from (0, 0)."""
    check_finite(scores)
    order = torch.argsort(scores.to(torch.float64), descending=True, stable=True)
    sorted_scores = scores.to(torch.float64)[order]
    true_positives = torch.cumsum(positives[order], dim=0)
    false_positives = torch.cumsum(negatives[order], dim=0)
    # The last entry of every run of equal scores is one threshold of the curve.
    last_of_tie = torch.ones_like(sorted_scores, dtype=torch.bool)
    last_of_tie[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    return torch.cat((zero, true_positives[last_of_tie])), torch.cat((zero, false_positives[last_of_tie]))


def weighted_roc_curve(scores: Tensor, positives: Tensor, negatives: Tensor) -> Tuple[Tensor, Tensor]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0, 0): ``roc_curve``'s points."""
    true_positives, false_positives = _cumulative_counts(scores, positives, negatives)
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        raise ValueError("ROC AUC needs both anomalous and normal frames in the test set")
    return false_positives / false_positives[-1], true_positives / true_positives[-1]


def weighted_roc_auc(scores: Tensor, positives: Tensor, negatives: Tensor) -> float:
    """Area under the ROC curve where sample i has weight ``positives[i]`` as anomalous and ``negatives[i]`` as normal."""
    fpr, tpr = weighted_roc_curve(scores, positives, negatives)
    return float(torch.trapezoid(tpr, fpr))


def weighted_precision_recall_curve(scores: Tensor, positives: Tensor, negatives: Tensor) -> Tuple[Tensor, Tensor]:
    """(recall, precision) at every distinct threshold, highest first, after the point (0, 1):
    ``precision_recall_curve``'s points in reverse order."""
    true_positives, false_positives = _cumulative_counts(scores, positives, negatives)
    if true_positives[-1] <= 0:
        raise ValueError("average precision needs anomalous frames in the test set")
    true_positives, false_positives = true_positives[1:], false_positives[1:]
    predicted = true_positives + false_positives
    precision = torch.where(predicted > 0, true_positives / torch.clamp(predicted, min=1e-300), 0.0)
    one = torch.ones(1, dtype=torch.float64, device=scores.device)
    return torch.cat((0 * one, true_positives / true_positives[-1])), torch.cat((one, precision))


def weighted_ap_stepwise(scores: Tensor, positives: Tensor, negatives: Tensor) -> float:
    """Average precision, scikit-learn's step-wise ``average_precision_score``: Σ (R_n − R_{n−1}) P_n."""
    recall, precision = weighted_precision_recall_curve(scores, positives, negatives)
    return float(torch.sum(torch.diff(recall) * precision[1:]))


def weighted_ap_trapezoidal(scores: Tensor, positives: Tensor, negatives: Tensor) -> float:
    """Average precision as ``auc(recall, precision)`` of ``precision_recall_curve``: the trapezoidal area."""
    recall, precision = weighted_precision_recall_curve(scores, positives, negatives)
    return float(torch.trapezoid(precision, recall))


def false_alarm_rate(scores: Tensor, frames: Tensor, threshold: float = DEFAULT_FALSE_ALARM_THRESHOLD) -> float:
    """The share of ``frames`` (frames per snippet, of normal videos) whose snippet scores at least ``threshold``."""
    check_finite(scores)
    total = frames.sum()
    if total <= 0:
        raise ValueError("the false-alarm rate needs normal videos in the test set")
    return float(frames[scores.to(torch.float64) >= threshold].sum() / total)


def class_of(video_id: str) -> str:
    """A UCF-Crime class: the id's alphabetic prefix before its digits (``RoadAccidents001_x264`` -> ``RoadAccidents``)."""
    match = re.match(r"[A-Za-z]+", video_id)
    if match is None:
        raise ValueError(f"video id '{video_id}' has no alphabetic prefix, so no class")
    return match.group(0)


def _undefined_as_none(metric, *arguments) -> Optional[float]:
    """The metric, or None where it does not exist (a class missing from the selection); NaN scores still raise."""
    try:
        return metric(*arguments)
    except NonFiniteScores:
        raise
    except ValueError:
        return None


def frame_metrics(
    scores: Tensor,
    positives: Tensor,
    negatives: Tensor,
    lengths: Tensor,
    video_ids: Sequence[str],
    threshold: float = DEFAULT_FALSE_ALARM_THRESHOLD,
    per_class: bool = False,
) -> Dict[str, object]:
    """Every metric of the module docstring (None where the test set cannot define one) from the concatenated
    snippet scores of ``video_ids`` (``lengths`` snippets each) and their per-snippet frame weights."""
    check_finite(scores)
    scores = scores.flatten()
    lengths = lengths.to(scores.device)
    video_of_snippet = torch.repeat_interleave(torch.arange(len(lengths), device=scores.device), lengths)
    anomalous_frames = torch.zeros(len(lengths), dtype=torch.float64, device=scores.device)
    anomalous_frames.index_add_(0, video_of_snippet, positives)
    anomalous_video = anomalous_frames > 0
    in_anomalous = anomalous_video[video_of_snippet]
    report: Dict[str, object] = {
        "frame_auc": _undefined_as_none(weighted_roc_auc, scores, positives, negatives),
        "anomalous_video_auc": _undefined_as_none(
            weighted_roc_auc, scores[in_anomalous], positives[in_anomalous], negatives[in_anomalous]
        ),
        "ap_stepwise": _undefined_as_none(weighted_ap_stepwise, scores, positives, negatives),
        "ap_trapezoidal": _undefined_as_none(weighted_ap_trapezoidal, scores, positives, negatives),
        "false_alarm_rate": _undefined_as_none(false_alarm_rate, scores[~in_anomalous], negatives[~in_anomalous], threshold),
        "false_alarm_threshold": threshold,
        "anomalous_videos": int(anomalous_video.sum()),
        "normal_videos": int((~anomalous_video).sum()),
    }
    if per_class:
        classes: Dict[str, List[int]] = {}
        for index in torch.nonzero(anomalous_video).flatten().tolist():
            classes.setdefault(class_of(video_ids[index]), []).append(index)
        report["per_class_auc"] = {}
        for name, members in sorted(classes.items()):
            chosen = ~anomalous_video
            chosen[members] = True
            selected = chosen[video_of_snippet]
            report["per_class_auc"][name] = _undefined_as_none(
                weighted_roc_auc, scores[selected], positives[selected], negatives[selected]
            )
    return report
