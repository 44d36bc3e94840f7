"""Pictures of results as PNG files: matplotlib's Agg canvas (no display needed), saved atomically.

``plot_score_curve``: a score per sample against x (frames, seconds, snippets: any 1-D axis), with the
ground-truth anomalous spans shaded and a threshold line when given. ``plot_roc`` and ``plot_precision_recall``:
the frame-level curves of an evaluation; ``plot_overview``: many videos' score curves on one sheet;
``plot_training_curve``: the metric at each evaluation and the loss at each step of a run, the best marked;
``plot_strip``: one dot per run and group, with mean ± standard deviation and a reference line.
"""

import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

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
        _shade_runs(axes, x, ground_truth, "ground-truth anomaly")
    axes.plot(x, scores, color="tab:blue", lw=1.2, label="score")
    if threshold is not None:
        axes.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    if np.isfinite(scores).any() and np.nanmin(scores) >= 0 and np.nanmax(scores) <= 1:  # NaN: a gap in the line
        axes.set_ylim(-0.02, 1.02)
    if len(x):
        axes.set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.legend(loc="upper right", fontsize="small")
    return save_figure(figure, path)


def _shade_runs(axes, x: np.ndarray, ground_truth: Sequence, label: Optional[str]) -> None:
    """Shade each anomalous run of ``ground_truth`` (one 0/1 per x) over its samples' whole intervals."""
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0
    ends = np.append(x[1:], x[-1] + step) if len(x) else x
    for number, (start, stop) in enumerate(true_runs(ground_truth)):
        axes.axvspan(x[start], ends[stop - 1], color="tab:red", alpha=0.2, lw=0, label=label if number == 0 else None)


def plot_roc(path: PathLike, false_positive_rate: Sequence[float], true_positive_rate: Sequence[float],
             area: float, title: Optional[str] = None) -> Path:
    """The ROC curve (frame level) with its area in the legend and the chance diagonal."""
    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    axes.plot(false_positive_rate, true_positive_rate, color="tab:blue", lw=1.5, label=f"AUC {area * 100:.2f} %")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate (frames)", ylabel="true-positive rate (frames)")
    axes.set_title(title or "ROC")
    axes.legend(loc="lower right")
    return save_figure(figure, path)


def plot_precision_recall(path: PathLike, recall: Sequence[float], precision: Sequence[float], ap_stepwise: float,
                          ap_trapezoidal: float, title: Optional[str] = None) -> Path:
    """The precision-recall curve (frame level) with both average precisions in the legend."""
    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(recall, precision, color="tab:blue", lw=1.5,
              label=f"AP step-wise {ap_stepwise * 100:.2f} %\nAP trapezoidal {ap_trapezoidal * 100:.2f} %")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (frames)", ylabel="precision (frames)")
    axes.set_title(title or "precision-recall")
    axes.legend(loc="lower left")
    return save_figure(figure, path)


def plot_overview(path: PathLike, videos: Sequence[Tuple[str, Sequence[float], Sequence]], columns: int = 4) -> Path:
    """One sheet of small score curves: ``videos`` are (title, score per frame, 0/1 ground truth per frame)."""
    rows = max(1, -(-len(videos) // columns))
    figure = Figure(figsize=(3.2 * columns, 1.9 * rows), layout="constrained")
    for index, (title, scores, ground_truth) in enumerate(videos):
        axes = figure.add_subplot(rows, columns, index + 1)
        x = np.arange(len(scores))
        _shade_runs(axes, x, ground_truth, None)
        axes.plot(x, scores, color="tab:blue", lw=0.9)
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlim(0, max(len(scores), 1))
        axes.set_title(title, fontsize="small")
        axes.tick_params(labelsize="x-small")
    return save_figure(figure, path)


def plot_training_curve(path: PathLike, metric_name: str, evaluation_steps: Sequence[int],
                        evaluation_values: Sequence[float], loss_steps: Sequence[int], losses: Sequence[float],
                        best_step: Optional[int] = None) -> Path:
    """The metric (in %) at each evaluation above, the training loss at each step below, the best marked."""
    figure = Figure(figsize=(8.0, 5.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    values = np.asarray(evaluation_values, dtype=np.float64) * 100
    top.plot(evaluation_steps, values, color="tab:blue", marker="o" if len(values) < 50 else None, ms=3, lw=1.2)
    if best_step is not None:
        best = list(evaluation_steps).index(best_step)
        top.plot([best_step], [values[best]], marker="*", ms=12, color="tab:red", ls="",
                 label=f"best {values[best]:.3f} % at step {best_step}")
        top.legend(loc="lower right", fontsize="small")
    top.set_ylabel(f"{metric_name} (%)")
    bottom.plot(loss_steps, losses, color="tab:orange", lw=0.8)
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("step")
    return save_figure(figure, path)


def plot_strip(path: PathLike, groups: Dict[str, Sequence[float]], y_label: str,
               references: Optional[Dict[str, Optional[float]]] = None) -> Path:
    """One column per group: a dot per value, the mean with ± one standard deviation (ddof=1) as an error bar,
    and the group's reference value (a published figure) as a dashed line."""
    figure = Figure(figsize=(1.8 + 1.6 * len(groups), 4.0), layout="constrained")
    axes = figure.add_subplot()
    offsets = np.random.default_rng(0)  # horizontal jitter, the same every time
    referenced = False
    for position, (name, values) in enumerate(groups.items()):
        values = np.asarray(values, dtype=np.float64)
        axes.plot(position + offsets.uniform(-0.12, 0.12, len(values)), values, "o", color="tab:blue", alpha=0.7,
                  label="run" if position == 0 else None)
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        axes.errorbar([position + 0.3], [values.mean()], yerr=[spread], fmt="s", color="black", capsize=4,
                      label="mean ± std" if position == 0 else None)
        reference = (references or {}).get(name)
        if reference is not None:
            axes.hlines(reference, position - 0.4, position + 0.4, colors="tab:red", linestyles="--",
                        label=None if referenced else "published")
            referenced = True
    axes.set_xticks(range(len(groups)), list(groups))
    axes.set_xlim(-0.6, len(groups) - 0.4)
    axes.set_ylabel(y_label)
    axes.legend(loc="best", fontsize="small")
    return save_figure(figure, path)
