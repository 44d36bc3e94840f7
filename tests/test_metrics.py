"""Frame-level AUC and AP from snippet scores equal scikit-learn on the published ×16 repetition."""

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, roc_curve

from anomaly.engine.metrics import snippet_label_weights, weighted_average_precision, weighted_roc_auc


def metrics_by_repetition(scores, frame_labels, frames_per_snippet=16):
    repeated = np.repeat(scores, frames_per_snippet)
    fpr, tpr, _ = roc_curve(frame_labels, repeated)
    return auc(fpr, tpr), average_precision_score(frame_labels, repeated)


def test_auc_of_a_hand_computed_case():
    # Snippets scored 0.9, 0.1, 0.5, 0.5 (4 frames each): the first is anomalous, the third half anomalous.
    scores = torch.tensor([0.9, 0.1, 0.5, 0.5])
    frame_labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    positives, negatives = snippet_label_weights(frame_labels, torch.tensor([4]), frames_per_snippet=4)
    # 6 anomalous and 10 normal frames. Pairs (anomalous, normal) ordered correctly: the 4 frames at 0.9 beat all
    # 10 normal frames (40), the 2 at 0.5 beat the 4 at 0.1 (8) and tie with the 6 at 0.5 (6 x 0.5 each = 6).
    assert weighted_roc_auc(scores, positives, negatives) == pytest.approx((40 + 8 + 6) / 60)


@pytest.mark.parametrize("seed", range(5))
def test_weighted_metrics_equal_scikit_learn_on_repeated_scores(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, size=12)
    # Rounded scores make ties, which both paths must treat as one threshold.
    scores = np.round(rng.random(lengths.sum()), 2).astype(np.float32)
    frame_labels = (rng.random(lengths.sum() * 16) < 0.3).astype(np.float32)
    positives, negatives = snippet_label_weights(torch.from_numpy(frame_labels), torch.from_numpy(lengths))
    expected_auc, expected_ap = metrics_by_repetition(scores, frame_labels)
    assert weighted_roc_auc(torch.from_numpy(scores), positives, negatives) == pytest.approx(expected_auc, abs=1e-9)
    assert weighted_average_precision(torch.from_numpy(scores), positives, negatives) == pytest.approx(
        expected_ap, abs=1e-9
    )


def test_auc_needs_both_classes():
    positives, negatives = torch.zeros(3, dtype=torch.float64), torch.full((3,), 16.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        weighted_roc_auc(torch.rand(3), positives, negatives)
