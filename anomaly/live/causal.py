"""Causal snippet scores: the score of snippet t is the model's score of t computed on the window of the last
``window`` snippets ending at t, plus ``lookahead`` snippets after it (scored once those have arrived).

Every S3R snippet score depends on the whole input: the non-local block, the GroupNorm statistics over time and
de-Normal's channel gate (the mean over time) see every snippet given. Scored offline, snippet t depends on the
whole video; scored causally, it depends on snippets t - window + 1 .. t + lookahead only, and never changes once
given. Where the window covers the whole video (t - window + 1 <= 0 and t + lookahead >= the last snippet) the
two are the same function. A window of one snippet is defined: the model scores videos of any length >= 1.
"""

from collections import deque
from typing import Callable, Deque, List, Tuple

import torch
from torch import Tensor

from anomaly.errors import check_range

ScoreWindow = Callable[[Tensor], Tensor]  # N T C features of one video -> T scores


class CausalScores:
    """Feed the snippets' features (N C each) in order with ``push``; scores come out as they become due."""

    def __init__(self, score_window: ScoreWindow, window: int, lookahead: int = 0):
        self.score_window = score_window
        self.window = check_range(window, "--window", minimum=1, integer=True)
        self.lookahead = check_range(lookahead, "--lookahead", minimum=0, integer=True)
        self._snippets: Deque[Tensor] = deque(maxlen=self.window + self.lookahead)
        self._received = 0  # snippets pushed so far
        self._scored = 0  # snippets whose score was given

    def push(self, features: Tensor) -> List[Tuple[int, float]]:
        """One more snippet (N C); returns the (snippet, score) now due: that of snippet t - lookahead."""
        self._snippets.append(features)
        self._received += 1
        if self._received - self._scored > self.lookahead:
            return [self._score(self._scored)]
        return []

    def finish(self) -> List[Tuple[int, float]]:
        """At the end of the stream: the scores still waiting for their lookahead, with the snippets there are."""
        return [self._score(snippet) for snippet in range(self._scored, self._received)]

    def _score(self, snippet: int) -> Tuple[int, float]:
        """Score ``snippet`` on its window: the last ``window`` snippets up to it and what there is of the next
        ``lookahead`` (the deque holds snippets received - len .. received - 1)."""
        first_held = self._received - len(self._snippets)
        start = max(snippet - self.window + 1, first_held)
        held = list(self._snippets)[start - first_held :]
        video = torch.stack(held, dim=1)  # N T C
        scores = self.score_window(video)
        self._scored = snippet + 1
        return snippet, float(scores[snippet - start])
