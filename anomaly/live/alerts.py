"""Alerts from a stream of snippet scores, with hysteresis: one noisy snippet is not an event.

An alert starts when the score has stayed at or above the threshold for ``min_snippets`` consecutive snippets (its
time is the first of them), and ends when it has stayed below for as many (its time is the first below). So an
event needs ``min_snippets`` high snippets to begin and as many low ones to end, and a score hovering at the
threshold does not make a storm of alerts.
"""

from dataclasses import dataclass
from typing import Optional

from anomaly.errors import check_range


@dataclass(frozen=True)
class Alert:
    kind: str  # "start" or "end"
    snippet: int  # the first snippet of the run that made it
    time_s: float  # that snippet's start, in seconds from the stream's first frame


class AlertTracker:
    """Feed every scored snippet in order with ``update``; it returns the alert that snippet completes, if any."""

    def __init__(self, threshold: float, min_snippets: int = 3):
        self.threshold = check_range(threshold, "--threshold", minimum=0, maximum=1,
                                     fix="scores are probabilities in [0, 1]")
        self.min_snippets = check_range(min_snippets, "--min_snippets", minimum=1, integer=True)
        self.active = False
        self._run_start: Optional[Alert] = None  # the first snippet of the current run across the threshold
        self._run_length = 0

    def update(self, snippet: int, start_s: float, score: float) -> Optional[Alert]:
        crossing = (score >= self.threshold) != self.active  # on the other side of the threshold than the state
        if not crossing:
            self._run_start, self._run_length = None, 0
            return None
        if self._run_start is None:
            self._run_start = Alert("end" if self.active else "start", snippet, start_s)
        self._run_length += 1
        if self._run_length < self.min_snippets:
            return None
        alert, self._run_start, self._run_length = self._run_start, None, 0
        self.active = not self.active
        return alert
