"""Evaluation: the batched path gives the one-at-a-time (published) scores and AUC, for any mix of lengths."""

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, roc_curve

from anomaly.data import TestVideos, load_dictionary, read_video_list
from anomaly.engine import DeviceTestSet, evaluate
from anomaly.models import S3R
from tests.conftest import assert_close_to_scale, assert_same_evaluation, trained_like_batchnorm, write_tiny_dataset


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    files = write_tiny_dataset(tmp_path_factory.mktemp("data"), test_lengths=(1, 2, 5, 17, 40, 3, 2, 9))
    dictionary = load_dictionary(files["dictionary"], files["feature_size"])
    videos = TestVideos(files["root"], files["name"], read_video_list(files["testing_list"]), files["ground_truth"], dictionary)
    return videos, DeviceTestSet(videos, torch.device("cpu"))


@pytest.fixture(scope="module")
def trained_like_model():
    torch.manual_seed(0)
    return trained_like_batchnorm(S3R(64, batch_size=2)).eval()


@pytest.mark.parity
def test_one_at_a_time_matches_the_published_reduction(test_set, trained_like_model):
    videos, device_set = test_set
    result = evaluate(trained_like_model, device_set, one_at_a_time=True)
    scores = []
    with torch.no_grad():
        for video in videos.videos:
            outputs = trained_like_model(torch.from_numpy(video).unsqueeze(0).permute(0, 2, 1, 3), device_set.dictionary)
            scores.append(outputs["video_scores"].mean(0).numpy())  # the published squeeze/mean: T 1
    for video_id, expected in zip(videos.video_ids, scores):
        assert_close_to_scale(result.snippet_scores[video_id], expected, name=video_id)
    fpr, tpr, _ = roc_curve(videos.frame_labels, np.repeat(np.concatenate(scores).ravel(), 16))
    assert result.value == pytest.approx(auc(fpr, tpr), abs=1e-9)


@pytest.mark.parity
@pytest.mark.parametrize("max_snippets", [1, 16, 64, 4096])
def test_batched_evaluation_equals_one_at_a_time(test_set, trained_like_model, max_snippets):
    _, device_set = test_set
    alone = evaluate(trained_like_model, device_set, one_at_a_time=True)
    assert_same_evaluation(evaluate(trained_like_model, device_set, max_snippets=max_snippets), alone)


def test_one_and_two_snippet_videos_get_scores(test_set, trained_like_model):
    videos, device_set = test_set
    result = evaluate(trained_like_model, device_set)
    for video_id, video in zip(videos.video_ids, videos.videos):
        assert result.snippet_scores[video_id].shape == (len(video), 1)
        assert np.isfinite(result.snippet_scores[video_id]).all()
    assert {len(video) for video in videos.videos} >= {1, 2}


def test_evaluation_leaves_the_model_in_its_mode(test_set, trained_like_model):
    _, device_set = test_set
    trained_like_model.train()
    evaluate(trained_like_model, device_set)
    assert trained_like_model.training
    trained_like_model.eval()
