"""Every frame-level metric from snippet scores equals scikit-learn on the published ×16 repetition (1e-9, ties
included); the false-alarm rate and per-class AUC match hand computations; NaN scores are refused."""

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from anomaly.engine.metrics import (
    NonFiniteScores,
    class_of,
    false_alarm_rate,
    frame_metrics,
    snippet_label_weights,
    weighted_ap_stepwise,
    weighted_ap_trapezoidal,
    weighted_roc_auc,
)


def roc_auc_by_repetition(scores, frame_labels, frames_per_snippet=16):
    fpr, tpr, _ = roc_curve(frame_labels, np.repeat(scores, frames_per_snippet))
    return auc(fpr, tpr)


def trapezoidal_ap_by_repetition(scores, frame_labels, frames_per_snippet=16):
    precision, recall, _ = precision_recall_curve(frame_labels, np.repeat(scores, frames_per_snippet))
    return auc(recall, precision)


def weights(frame_labels, lengths, frames_per_snippet=16):
    return snippet_label_weights(torch.as_tensor(frame_labels), torch.as_tensor(lengths), frames_per_snippet)


def test_auc_of_a_hand_computed_case():
    # Snippets scored 0.9, 0.1, 0.5, 0.5 (4 frames each): the first is anomalous, the third half anomalous.
    scores = torch.tensor([0.9, 0.1, 0.5, 0.5])
    frame_labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    positives, negatives = snippet_label_weights(frame_labels, torch.tensor([4]), frames_per_snippet=4)
    # 6 anomalous and 10 normal frames. Pairs (anomalous, normal) ordered correctly: the 4 frames at 0.9 beat all
    # 10 normal frames (40), the 2 at 0.5 beat the 4 at 0.1 (8) and tie with the 6 at 0.5 (6 x 0.5 each = 6).
    assert weighted_roc_auc(scores, positives, negatives) == pytest.approx((40 + 8 + 6) / 60)


def test_both_average_precisions_of_a_hand_computed_case():
    # Same case. Thresholds 0.9: TP 4, FP 0 (R 4/6, P 1); 0.5: TP 6, FP 6 (R 1, P 1/2); 0.1: TP 6, FP 10 (R 1, P 6/16).
    scores = torch.tensor([0.9, 0.1, 0.5, 0.5])
    frame_labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    positives, negatives = snippet_label_weights(frame_labels, torch.tensor([4]), frames_per_snippet=4)
    stepwise = 4 / 6 * 1 + 2 / 6 * 0.5
    trapezoidal = 4 / 6 * (1 + 1) / 2 + 2 / 6 * (1 + 0.5) / 2  # from (R 0, P 1); the last step adds no recall
    assert weighted_ap_stepwise(scores, positives, negatives) == pytest.approx(stepwise, abs=1e-12)
    assert weighted_ap_trapezoidal(scores, positives, negatives) == pytest.approx(trapezoidal, abs=1e-12)
    assert stepwise != pytest.approx(trapezoidal)  # the two 'AP's differ


def test_false_alarm_rate_and_per_class_auc_of_a_hand_computed_case():
    # Four videos of 4-frame snippets: Abuse001 [0.9 anomalous, 0.2 normal], Arson001 [0.3 anomalous],
    # Normal_001 [0.6, 0.1], Normal_002 [0.5 (ties the 0.5 threshold: an alarm), 0.2].
    ids = ["Abuse001_x264", "Arson001_x264", "Normal_001", "Normal_002"]
    lengths = torch.tensor([2, 1, 2, 2])
    scores = torch.tensor([0.9, 0.2, 0.3, 0.6, 0.1, 0.5, 0.2])
    labels = torch.tensor([1] * 4 + [0] * 4 + [1] * 4 + [0] * 16, dtype=torch.float32)
    positives, negatives = snippet_label_weights(labels, lengths, frames_per_snippet=4)
    report = frame_metrics(scores, positives, negatives, lengths, ids, threshold=0.5, per_class=True)
    assert report["false_alarm_rate"] == pytest.approx(8 / 16)  # 0.6 and 0.5: two of four normal snippets
    assert report["anomalous_videos"] == 2 and report["normal_videos"] == 2
    # Abuse: anomalous 0.9 against normal 0.2 (Abuse's own), 0.6, 0.1, 0.5, 0.2: above all five.
    # Arson: anomalous 0.3 against normal 0.6, 0.1, 0.5, 0.2: above two of four.
    assert report["per_class_auc"] == {"Abuse": pytest.approx(1.0), "Arson": pytest.approx(2 / 4)}
    # Anomalous videos only: 0.9 and 0.3 against 0.2: both above.
    assert report["anomalous_video_auc"] == pytest.approx(1.0)
    assert false_alarm_rate(scores[3:], negatives[3:], threshold=0.55) == pytest.approx(4 / 16)


def test_class_of_a_ucf_crime_id():
    assert class_of("RoadAccidents001_x264") == "RoadAccidents"
    with pytest.raises(ValueError, match="no alphabetic prefix"):
        class_of("01_0014")


def random_case(seed):
    """Videos of 1-30 snippets, scores rounded to make ties, each video normal or anomalous with events."""
    rng = np.random.default_rng(seed)
    classes = ["Abuse", "Arson", "Burglary"]
    ids, labels, lengths = [], [], rng.integers(1, 30, size=14)
    for index, length in enumerate(lengths):
        anomalous = index % 2 == 0 or index == 1
        ids.append(f"{classes[index % 3]}{index:03d}_x264" if anomalous else f"Normal_Videos_{index:03d}_x264")
        video = np.zeros(16 * length, dtype=np.float32)
        if anomalous:
            video[rng.random(16 * length) < 0.4] = 1.0
            video[rng.integers(16 * length)] = 1.0
        labels.append(video)
    scores = np.round(rng.random(lengths.sum()), 2).astype(np.float32)
    return ids, lengths, scores, labels


@pytest.mark.parametrize("seed", range(5))
def test_every_metric_equals_scikit_learn_on_repeated_scores(seed):
    ids, lengths, scores, labels = random_case(seed)
    frame_labels = np.concatenate(labels)
    positives, negatives = weights(frame_labels, lengths)
    report = frame_metrics(torch.from_numpy(scores), positives, negatives, torch.from_numpy(lengths), ids, per_class=True)
    repeated = np.repeat(scores, 16)
    assert report["frame_auc"] == pytest.approx(roc_auc_by_repetition(scores, frame_labels), abs=1e-9)
    assert report["frame_auc"] == pytest.approx(roc_auc_score(frame_labels, repeated), abs=1e-9)
    assert report["ap_stepwise"] == pytest.approx(average_precision_score(frame_labels, repeated), abs=1e-9)
    assert report["ap_trapezoidal"] == pytest.approx(trapezoidal_ap_by_repetition(scores, frame_labels), abs=1e-9)

    video_of_frame = np.repeat(np.arange(len(ids)), 16 * lengths)
    anomalous = np.array([label.any() for label in labels])
    in_anomalous = anomalous[video_of_frame]
    assert report["anomalous_video_auc"] == pytest.approx(
        roc_auc_score(frame_labels[in_anomalous], repeated[in_anomalous]), abs=1e-9
    )
    _, false_positives, _, _ = confusion_matrix(
        frame_labels[~in_anomalous], (repeated[~in_anomalous] >= 0.5).astype(int), labels=[0, 1]
    ).ravel()
    assert report["false_alarm_rate"] == pytest.approx(false_positives / (~in_anomalous).sum(), abs=1e-9)
    for name, value in report["per_class_auc"].items():
        chosen = np.array([not a or class_of(video_id) == name for video_id, a in zip(ids, anomalous)])[video_of_frame]
        assert value == pytest.approx(roc_auc_score(frame_labels[chosen], repeated[chosen]), abs=1e-9)
    assert set(report["per_class_auc"]) == {"Abuse", "Arson", "Burglary"}


@pytest.mark.parametrize("metric", [weighted_roc_auc, weighted_ap_stepwise, weighted_ap_trapezoidal])
def test_all_tied_scores(metric):
    frame_labels = np.array([1] * 16 + [0] * 32, dtype=np.float32)
    scores = np.full(3, 0.25, dtype=np.float32)
    positives, negatives = weights(frame_labels, [3])
    expected = {
        weighted_roc_auc: roc_auc_by_repetition(scores, frame_labels),
        weighted_ap_stepwise: average_precision_score(frame_labels, np.repeat(scores, 16)),
        weighted_ap_trapezoidal: trapezoidal_ap_by_repetition(scores, frame_labels),
    }[metric]
    assert metric(torch.from_numpy(scores), positives, negatives) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_are_an_error(bad):
    frame_labels = torch.tensor([1.0] * 16 + [0.0] * 16)
    positives, negatives = snippet_label_weights(frame_labels, torch.tensor([2]))
    scores = torch.tensor([0.5, bad])
    for metric in (weighted_roc_auc, weighted_ap_stepwise, weighted_ap_trapezoidal):
        with pytest.raises(NonFiniteScores, match="1 of 2 snippet scores"):
            metric(scores, positives, negatives)
    with pytest.raises(NonFiniteScores):
        frame_metrics(scores, positives, negatives, torch.tensor([2]), ["Abuse001"], per_class=True)


def test_auc_needs_both_classes():
    positives, negatives = torch.zeros(3, dtype=torch.float64), torch.full((3,), 16.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        weighted_roc_auc(torch.rand(3), positives, negatives)
