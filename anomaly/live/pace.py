"""Whether a watch keeps up with its live stream, said once, in one line, after its first snippets.

A live source (a URL, a device, a pipe, a file with ``--realtime``) brings snippets at its own rate (its frame rate
/ 16) and drops those the network cannot take in time. The watch times, for every snippet that gives a score as
it comes in (with a lookahead, the first snippets give none), the network (the I3D forward of its crops) and S3R's
scoring of the window due. The first ``WARMUP_SNIPPETS`` are left out (their times hold one-time costs: oneDNN's
primitives, first allocations); after ``MEASURED_SNIPPETS`` more, the median of those snippets' times gives the
snippets per second it sustains, said beside the rate the stream brings. A count of snippets rather than of seconds: the line then rests on the same number of measurements on a
fast machine and a slow one, and comes within about 5 snippets of the stream (3.2 s at 25 fps) where it keeps up.

When it falls behind the line says how long a snippet may take to keep up, and what could get there, from this
run's measurements alone: fewer crops (a detector trained on features of fewer crops) take at least their share of
this run's time per snippet (fewer crops run no faster per crop: a smaller batch, less of the first convolution
shared), so a crop count whose share is over the budget cannot keep up, and the largest one under it might (its
real time is measured by ``s3r benchmark-live --crops N``); bf16 is named where it is native and not already run.
A file read at its own pace is never dropped from (decoding waits for the network): there is no rate to keep up
with, and nothing is said.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Optional, Tuple

from anomaly.layout import FRAMES_PER_SNIPPET, NUM_CROPS, crops_text

WARMUP_SNIPPETS = 1  # snippets whose times are left out: they hold the one-time costs
MEASURED_SNIPPETS = 4  # snippets whose median time is said (one slow snippet does not move a median of four)


def pace_line(network_ms: float, scoring_ms: float, crops: int, precision: str, native_bf16: bool,
              frame_rate: float) -> str:  # fmt: skip
    """The line: ``network_ms`` and ``scoring_ms`` per snippet (``crops`` crops, both in ``precision``)
    against a stream of ``frame_rate`` frames per second; ``native_bf16``: whether the device computes bf16
    natively."""
    snippet_ms = network_ms + scoring_ms
    sustained, brought = 1000 / snippet_ms, frame_rate / FRAMES_PER_SNIPPET
    head = (f"scoring {sustained:.2f} snippets/s; the stream brings {brought:.2f}/s ({frame_rate:g} fps): a snippet "
            f"takes {snippet_ms:,.0f} ms in {precision} (the network {network_ms:,.0f} with {crops_text(crops)}, S3R "
            f"{scoring_ms:,.0f})")
    if sustained >= brought:
        return f"{head}: keeping up"
    budget = 1000 / brought
    options = []
    fewer = [count for count in sorted(NUM_CROPS) if count < crops]
    possible = [count for count in fewer if snippet_ms * count / crops <= budget]
    if possible:
        options.append(f"{crops_text(possible[-1])} might keep up (at least {snippet_ms * possible[-1] / crops:,.0f} ms "
                       f"a snippet; s3r benchmark-live --crops {possible[-1]} measures it)")
    elif fewer:
        options.append(f"fewer crops cannot ({crops_text(fewer[0])} takes at least {snippet_ms * fewer[0] / crops:,.0f} "
                       "ms)")
    if precision == "fp32" and native_bf16:
        options.append("--precision auto would run bf16, native here (s3r benchmark-live --precision fp32 bf16 "
                       "measures it)")
    elif not possible:
        options.append("a faster device is needed")
    return (f"{head}: falling behind, about {sustained / brought:.0%} of the snippets scored, the others dropped; "
            f"keeping up needs under {budget:,.0f} ms a snippet: " + "; ".join(options))


@dataclass
class Pace:
    """Times of the snippets a watch takes (``add``); the line of :func:`pace_line`, once, to ``log``."""

    crops: int
    precision: str  # what the network and S3R run (never auto)
    native_bf16: bool
    log: Callable[[str], None]
    taken: int = 0  # snippets timed so far
    said: bool = False
    _times: Deque[Tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MEASURED_SNIPPETS))

    def add(self, network_s: float, scoring_s: float, frame_rate: Optional[float]) -> None:
        """One snippet's times, in seconds; ``frame_rate``: the stream's frames per second (None: not known yet,
        and the line waits for it)."""
        if self.said:
            return
        self.taken += 1
        if self.taken > WARMUP_SNIPPETS:
            self._times.append((1000 * network_s, 1000 * scoring_s))
        if len(self._times) < MEASURED_SNIPPETS or not frame_rate:
            return
        # The snippet of median total time, split as it was (medians of each part could mix snippets).
        network_ms, scoring_ms = sorted(self._times, key=sum)[(MEASURED_SNIPPETS - 1) // 2]
        self.log(pace_line(network_ms, scoring_ms, self.crops, self.precision, self.native_bf16, frame_rate))
        self.said = True
