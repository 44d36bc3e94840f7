"""Alerts of live detection: an event starts after min_snippets scores at or above the threshold and ends after as
many below (hysteresis), timed by the first snippet of the run that made it."""

import pytest

from anomaly.errors import InputError
from anomaly.live.alerts import Alert, AlertTracker


def alerts(scores, threshold=0.5, min_snippets=3):
    tracker = AlertTracker(threshold, min_snippets)
    return [alert for snippet, score in enumerate(scores)
            if (alert := tracker.update(snippet, snippet * 0.64, score)) is not None]


def test_an_event_starts_after_min_snippets_high_scores_and_ends_after_as_many_low_ones():
    scores = [0.1, 0.6, 0.7, 0.9, 0.8, 0.2, 0.1, 0.3, 0.1]
    assert alerts(scores) == [Alert("start", 1, 0.64), Alert("end", 5, 3.2)]


def test_one_noisy_snippet_is_not_an_event_and_one_dip_does_not_end_one():
    assert alerts([0.1, 0.9, 0.1, 0.9, 0.9, 0.1, 0.2]) == []
    assert alerts([0.9, 0.9, 0.9, 0.1, 0.9, 0.9]) == [Alert("start", 0, 0.0)]


def test_the_threshold_itself_counts_as_high():
    assert alerts([0.5, 0.5], min_snippets=2) == [Alert("start", 0, 0.0)]


def test_min_snippets_one_alerts_on_every_crossing():
    assert alerts([0.2, 0.7, 0.3], min_snippets=1) == [Alert("start", 1, 0.64), Alert("end", 2, 1.28)]


@pytest.mark.parametrize("threshold, min_snippets, message", [
    (float("nan"), 3, "--threshold must be a finite number in [0, 1], not nan; scores are probabilities in [0, 1]"),
    (1.5, 3, "--threshold must be a finite number in [0, 1], not 1.5; scores are probabilities in [0, 1]"),
    (0.5, 0, "--min_snippets must be an integer at least 1, not 0"),
])
def test_impossible_settings_are_refused(threshold, min_snippets, message):
    with pytest.raises(InputError) as refused:
        AlertTracker(threshold, min_snippets)
    assert str(refused.value) == message
