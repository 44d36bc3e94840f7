"""Pictures of results as PNG files: matplotlib's Agg canvas (no display needed), saved atomically.

``plot_score_curve``: a score per sample against x (frames, seconds, snippets: any 1-D axis), with the
ground-truth anomalous spans shaded and a threshold line when given.
"""

import io
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from anomaly.files import atomic_write

PathLike = Union[str, Path]


def true_runs(mask: Sequence) -> List[Tuple[int, int]]:
    """The [start, stop) index ranges where ``mask`` is true (nonzero)."""
    mask = np.asarray(mask).astype(bool)
    edges = np.diff(np.concatenate(([False], mask, [False])).astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def save_figure(figure: Figure, path: PathLike, dpi: int = 100) -> Path:
    """Render ``figure`` with Agg and write it as PNG atomically (no half-written picture on failure)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write(path, lambda file: file.write(buffer.getvalue()))
    return Path(path)


def plot_score_curve(
    path: PathLike,
    x: Sequence[float],
    scores: Sequence[float],
    x_label: str = "frame",
    y_label: str = "anomaly score",
    threshold: Optional[float] = None,
    ground_truth: Optional[Sequence] = None,
    title: Optional[str] = None,
    size: Tuple[float, float] = (10.0, 3.0),
) -> Path:
    """Draw ``scores`` against ``x`` (same length) into the PNG ``path``.

    ``ground_truth``: 0/1 per sample; each anomalous run is shaded from its first sample's x to the next sample's
    x (so a run covers its samples' whole intervals). ``threshold``: a dashed horizontal line. Scores in [0, 1] keep
    that y range; others are scaled to fit.
    """
    x = np.asarray(x, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if x.shape != scores.shape or x.ndim != 1:
        raise ValueError(f"x and scores must be 1-D of the same length, not {x.shape} and {scores.shape}")
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.add_subplot()
    if ground_truth is not None:
        step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0
        ends = np.append(x[1:], x[-1] + step) if len(x) else x
        for number, (start, stop) in enumerate(true_runs(ground_truth)):
            axes.axvspan(x[start], ends[stop - 1], color="tab:red", alpha=0.2, lw=0,
                         label="ground-truth anomaly" if number == 0 else None)  # fmt: skip
    axes.plot(x, scores, color="tab:blue", lw=1.2, label="score")
    if threshold is not None:
        axes.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    if len(scores) and scores.min() >= 0 and scores.max() <= 1:
        axes.set_ylim(-0.02, 1.02)
    if len(x):
        axes.set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.legend(loc="upper right", fontsize="small")
    return save_figure(figure, path)
