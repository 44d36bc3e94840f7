"""The S3R training objective as pure functions of the model's outputs.

Labels are implied by the batch layout: the first half of the videos is normal (0), the second anomalous (1),
and every video's macro (en-Normal) score is pushed towards 0.
"""

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

MAGNITUDE_MARGIN = 100.0
MAGNITUDE_WEIGHT = 1e-4
SPARSITY_WEIGHT = 8e-3
SMOOTHNESS_WEIGHT = 8e-4


def magnitude_loss(
    regular_score: Tensor,
    anomaly_score: Tensor,
    feature_select_regular: Tensor,
    feature_select_anomaly: Tensor,
    margin: float = MAGNITUDE_MARGIN,
    weight: float = MAGNITUDE_WEIGHT,
) -> Tensor:
    """RTFM's top-k loss: BCE of the top-k scores plus a margin between top-k feature magnitudes.

    regular_score, anomaly_score: V 1; feature_select_*: (N·V) k C.
    """
    scores = torch.cat((regular_score, anomaly_score), dim=0).flatten()
    labels = torch.cat((torch.zeros_like(regular_score), torch.ones_like(anomaly_score)), dim=0).flatten()
    classification = F.binary_cross_entropy(scores, labels)
    anomaly_magnitude = torch.norm(feature_select_anomaly.mean(dim=1), p=2, dim=1)
    regular_magnitude = torch.norm(feature_select_regular.mean(dim=1), p=2, dim=1)
    separation = torch.mean((torch.abs(margin - anomaly_magnitude) + regular_magnitude) ** 2)
    return classification + weight * separation


def sparsity_loss(anomaly_snippet_scores: Tensor, weight: float = SPARSITY_WEIGHT) -> Tensor:
    """L2 norm of the anomalous videos' snippet scores, flattened to one vector."""
    return weight * torch.norm(anomaly_snippet_scores.flatten(), p=2)


def smoothness_loss(anomaly_snippet_scores: Tensor, weight: float = SMOOTHNESS_WEIGHT) -> Tensor:
    """Sum of squared differences of consecutive scores of the flattened vector (across video borders, as published)."""
    scores = anomaly_snippet_scores.flatten()
    return weight * torch.sum((scores[1:] - scores[:-1]) ** 2)


def macro_loss(macro_scores: Tensor) -> Tensor:
    """BCE of every video's en-Normal (macro) score against 0: the reconstruction should always look normal."""
    scores = macro_scores.flatten()
    return F.binary_cross_entropy(scores, torch.zeros_like(scores))


def s3r_losses(outputs: Dict[str, Tensor], batch_size: int) -> Dict[str, Tensor]:
    """All four losses and their sum for one training batch of ``batch_size`` normal + anomalous videos."""
    anomaly_snippet_scores = outputs["video_scores"][batch_size:]
    losses = {
        "magnitude": magnitude_loss(
            outputs["regular_score"],
            outputs["anomaly_score"],
            outputs["feature_select_regular"],
            outputs["feature_select_anomaly"],
        ),
        "sparsity": sparsity_loss(anomaly_snippet_scores),
        "smoothness": smoothness_loss(anomaly_snippet_scores),
        "macro": macro_loss(outputs["macro_scores"]),
    }
    losses["total"] = losses["magnitude"] + losses["smoothness"] + losses["sparsity"] + losses["macro"]
    return losses
