"""Causal scores: snippet t is scored on the window of snippets t - W + 1 .. t + L, never on later ones; where the
window covers the whole video the causal score is the offline one; windows of one or two snippets are defined."""

import pytest
import torch

from anomaly.errors import InputError
from anomaly.live.causal import CausalScores
from anomaly.models import S3R

CHANNELS, CROPS, ATOMS = 64, 2, 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return S3R(CHANNELS).eval()


@pytest.fixture(scope="module")
def dictionary():
    return torch.rand(1, ATOMS, CHANNELS, generator=torch.Generator().manual_seed(1))


def offline(model, dictionary, video):
    """The evaluation's scores of a whole video N T C: T scores."""
    with torch.no_grad():
        return model.snippet_scores(video.unsqueeze(0), dictionary)[0, :, 0]


def causal(model, dictionary, video, window, lookahead):
    scorer = CausalScores(lambda clip: offline(model, dictionary, clip), window, lookahead)
    scores = []
    for t in range(video.shape[1]):
        scores += scorer.push(video[:, t])
    return dict(scores + scorer.finish())


def random_video(length, seed=2):
    return torch.rand(CROPS, length, CHANNELS, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length, window, lookahead", [(6, 6, 5), (6, 32, 8), (9, 9, 5), (1, 1, 0), (2, 64, 0)])
def test_every_snippet_gets_one_score_in_order(model, dictionary, length, window, lookahead):
    assert list(causal(model, dictionary, random_video(length), window, lookahead)) == list(range(length))


@pytest.mark.parametrize("length, window, lookahead", [(6, 6, 5), (6, 64, 5), (12, 12, 5), (12, 64, 8), (3, 4, 0)])
def test_where_the_window_covers_the_whole_video_causal_scores_are_the_offline_ones(
    model, dictionary, length, window, lookahead
):
    video = random_video(length)
    scores = causal(model, dictionary, video, window, lookahead)
    expected = offline(model, dictionary, video)
    covered = [t for t in range(length) if t - window + 1 <= 0 and t + lookahead >= length - 1]
    assert covered, "the case must have snippets whose window is the whole video"
    for t in covered:
        assert scores[t] == pytest.approx(float(expected[t]), abs=1e-6)


def test_each_causal_score_is_the_offline_score_of_its_window(model, dictionary):
    video, window, lookahead = random_video(20), 8, 3
    scores = causal(model, dictionary, video, window, lookahead)
    for t in range(20):
        start, stop = max(0, t - window + 1), min(20, t + lookahead + 1)
        assert scores[t] == pytest.approx(float(offline(model, dictionary, video[:, start:stop])[t - start]), abs=1e-6)


@pytest.mark.parametrize("lookahead", [0, 4])
def test_no_score_changes_when_snippets_beyond_the_lookahead_change(model, dictionary, lookahead):
    video = random_video(16)
    changed = video.clone()
    changed[:, 10:] = random_video(6, seed=9)
    before, after = causal(model, dictionary, video, 8, lookahead), causal(model, dictionary, changed, 8, lookahead)
    for t in range(16):
        if t + lookahead < 10:
            assert before[t] == after[t]
    assert before[15] != after[15]


@pytest.mark.parametrize("length", [1, 2])
def test_a_window_of_one_or_two_snippets_is_scored(model, dictionary, length):
    scores = causal(model, dictionary, random_video(length), window=length, lookahead=0)
    assert len(scores) == length and all(0.0 <= score <= 1.0 for score in scores.values())
    with torch.no_grad():  # the training forward (top-k) takes such a short video too
        outputs = model(random_video(length).unsqueeze(0), dictionary)
    assert outputs["video_scores"].shape == (1, length, 1)


@pytest.mark.parametrize("window, lookahead, message", [
    (0, 0, "--window must be an integer at least 1, not 0"),
    (4, -1, "--lookahead must be an integer at least 0, not -1"),
])
def test_impossible_windows_are_refused(window, lookahead, message):
    with pytest.raises(InputError) as refused:
        CausalScores(lambda video: video, window, lookahead)
    assert str(refused.value) == message
