"""What a run leaves for a researcher to report and look at.

After ``--inference``, beside the published scores pickle (``output/<dataset>/``): ``metrics.json`` (every metric of
``anomaly.engine.metrics``), ``roc.png``, ``pr.png``, ``score_curves/<video_id>.png`` (score against frame, the
ground-truth anomalies shaded; for the anomalous videos, all or none: ``--plot_videos``) and
``score_curves_overview.png`` (the anomalous videos on one sheet); :func:`metrics_table` prints them all.

During training, whenever the training state is saved: ``logs/<version>/<stem>.curve.csv`` (one row per step: its
loss, the metric where it was evaluated, the best marked; step 0 is the initial evaluation) and the same as a
picture, ``<stem>.curve.png``. :func:`read_training_curve` reads the CSV back (``anomaly.engine.summary`` does).
"""

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.engine.metrics import (
    frame_metrics,
    snippet_label_weights,
    weighted_precision_recall_curve,
    weighted_roc_curve,
)
from anomaly.errors import InputError, check_choice
from anomaly.files import ensure_folder, save_text
from anomaly.plotting import plot_overview, plot_precision_recall, plot_roc, plot_score_curve, plot_training_curve
from anomaly.tables import ascii_table

PathLike = Union[str, Path]
PLOT_VIDEOS = ("anomalous", "all", "none")
CURVE_CSV_SUFFIX = ".curve.csv"  # logs/<version>/<stem>.curve.csv, read back by anomaly.engine.summary
CURVE_PNG_SUFFIX = ".curve.png"

SCORE_COLUMNS = "| {:^6s} | {:^8s} | {:^15s} | {:^30s} | {:^30s} |"  # the published .score table

# metrics.json key -> (table label, who reports it)
METRIC_ROWS = {
    "frame_auc": ("frame AUC", "the published S3R / RTFM number (ShanghaiTech, UCF-Crime)"),
    "anomalous_video_auc": ("AUC, anomalous videos only", "BN-WVAD's AUC_sub, VadCLIP's Ano-AUC"),
    "ap_stepwise": ("AP step-wise (average_precision_score)", "this project's XD-Violence metric; VadCLIP"),
    "ap_trapezoidal": ("AP trapezoidal (auc(recall, precision))", "RTFM, MGFN, UR-DMU, BN-WVAD, PEL4VAD on XD-Violence"),
    "false_alarm_rate": ("false-alarm rate, normal videos", "PEL4VAD (frames scored >= threshold)"),
}


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value * 100.0:.3f}"


def metrics_table(dataset: str, report: Dict[str, Any]) -> str:
    """Every metric of ``report`` (``frame_metrics``'s dict) in %, with who reports it; per-class AUCs last."""
    rows = [["Metric", "Value (%)", "Reported by"]]
    for key, (label, source) in METRIC_ROWS.items():
        if key == "false_alarm_rate":
            label = f"{label} @ {report['false_alarm_threshold']:g}"
        rows.append([label, _percent(report[key]), source])
    for name, value in report.get("per_class_auc", {}).items():
        rows.append([f"AUC {name} (+ all normal videos)", _percent(value), "per-class AUC"])
    title = (f" All metrics on {dataset}: {report['anomalous_videos']} anomalous, {report['normal_videos']} normal "
             "test videos ")
    return ascii_table(rows, title, {1: "right"})


def summary_table(dataset: str, model_name: str, backbone: str, metric: str, value: float) -> str:
    title = [["Dataset", "Method", "Feature", f"{metric} (%)"]]
    row = [[dataset, model_name.upper(), backbone.upper(), f"{value * 100.0:.3f}"]]
    return ascii_table(title + row, f" Performance on {dataset} ", dict.fromkeys(range(len(title[0])), "center"))


def best_evaluations_table(dataset: str, metric: str, history: List[Dict[str, Any]], report_k: int) -> str:
    """The ``report_k`` best evaluations, ascending, the best marked with '*' (the published final table)."""
    values = np.array([entry["value"] for entry in history])
    best = int(np.argmax(values))
    shown = np.argsort(values, kind="stable")[-report_k:]
    rows = [
        [str(history[index]["step"]), f"{history[index]['value'] * 100.0:.3f}", "*" if index == best else ""]
        for index in shown
    ]
    return ascii_table([["Step", metric, "Best"]] + rows, f" Performance on {dataset} ", {0: "center", 2: "center"})


def score_row(entry: Dict[str, Any]) -> str:
    return (
        SCORE_COLUMNS.format(
            str(entry["step"]), f"{entry['value'] * 100.0:.3f}", f"{entry['loss']:.3f}", entry["elapsed"], entry["now"]
        )
        + " \n"
    )


def score_table_closing() -> str:
    """The line that closes the ``.score`` table at the end of a run."""
    return "+{}+\n".format("-" * (len(SCORE_COLUMNS.format(*[""] * 5)) - 2))


def run_description(dataset: str, version: str, description: str, metric: str, initial_value: float, lr: float) -> str:
    """The published block that opens a run's log and ``.score`` file."""
    return (
        f"\n    Video Anomaly Detection\n"
        f"        - dataset:\t {dataset}\n"
        f"        - version:\t {version}\n"
        f"        - description:\t {description}\n"
        f"        - initial {metric} score: {initial_value * 100.0:.3f} %\n"
        f"        - initial learning rate: {lr:.4f}\n"
    )


def score_file_header(arguments: str, environment: str, model: str, description: str, metric: str) -> str:
    """The published ``.score`` header: arguments, environment, model, run description and the table's title."""
    title = SCORE_COLUMNS.format("Step", metric, "Training loss", "Elapsed time", "Now")
    return (
        f"\n{'*' * 10}\n{arguments}\n\n\n{environment}\n{'*' * 10}\n"
        f"\n{'=' * 10}\n{model}\n{'=' * 10}\n"
        f"\n{description}\n"
        f"+{'-' * (len(title) - 2)}+\n{title}\n{'-' * len(title)}\n"
    )


@dataclass
class InferenceFiles:
    """The files an inference writes into ``folder`` (the published scores pickle's folder)."""

    folder: Path

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.json"

    @property
    def roc(self) -> Path:
        return self.folder / "roc.png"

    @property
    def precision_recall(self) -> Path:
        return self.folder / "pr.png"

    @property
    def score_curves(self) -> Path:
        return self.folder / "score_curves"

    @property
    def overview(self) -> Path:
        return self.folder / "score_curves_overview.png"


def write_inference_report(
    files: InferenceFiles,
    video_ids: Sequence[str],
    snippet_scores: Dict[str, np.ndarray],
    frame_labels: np.ndarray,
    extra: Dict[str, Any],
    plot_videos: str = "anomalous",
    per_class: bool = False,
) -> Dict[str, Any]:
    """Compute every metric of the test videos ``video_ids`` (their snippet scores, concatenated 0/1 frame labels)
    and write ``files``; return the report (``frame_metrics``'s dict; ``metrics.json`` also holds ``extra``)."""
    check_choice(plot_videos, PLOT_VIDEOS, "--plot_videos")
    scores = torch.from_numpy(np.concatenate([snippet_scores[video_id].reshape(-1) for video_id in video_ids]))
    lengths = torch.tensor([snippet_scores[video_id].size for video_id in video_ids])
    positives, negatives = snippet_label_weights(torch.from_numpy(np.asarray(frame_labels)), lengths)
    report = frame_metrics(scores, positives, negatives, lengths, video_ids, per_class=per_class)
    save_text(json.dumps({**extra, **report}, indent=1) + "\n", files.metrics)

    if report["frame_auc"] is not None:
        fpr, tpr = weighted_roc_curve(scores, positives, negatives)
        plot_roc(files.roc, fpr.numpy(), tpr.numpy(), report["frame_auc"])
    recall, precision = weighted_precision_recall_curve(scores, positives, negatives)
    plot_precision_recall(files.precision_recall, recall.numpy(), precision.numpy(), report["ap_stepwise"],
                          report["ap_trapezoidal"])

    ensure_folder(files.score_curves)
    for stale in files.score_curves.glob("*.png"):  # pictures of an earlier inference's choice of videos
        stale.unlink()
    bounds = np.cumsum([0] + [FRAMES_PER_SNIPPET * int(length) for length in lengths])
    anomalous_sheet = []
    for video_id, start, end in zip(video_ids, bounds[:-1], bounds[1:]):
        truth = np.asarray(frame_labels[start:end])
        per_frame = np.repeat(snippet_scores[video_id].reshape(-1), FRAMES_PER_SNIPPET)  # a picture, not a metric
        anomalous = bool(truth.any())
        if anomalous:
            anomalous_sheet.append((video_id, per_frame, truth))
        if plot_videos == "all" or (plot_videos == "anomalous" and anomalous):
            plot_score_curve(files.score_curves / f"{video_id}.png", np.arange(len(per_frame)), per_frame,
                             ground_truth=truth, title=video_id)
    if anomalous_sheet and plot_videos != "none":
        plot_overview(files.overview, anomalous_sheet)
    else:
        files.overview.unlink(missing_ok=True)  # an earlier inference's sheet would not match these scores
    return report


# ------------------------------------------------------------------ training curve
@dataclass
class TrainingCurve:
    """A run's curve: the metric at each evaluation (step 0: before training) and the loss at each step."""

    metric: str
    evaluation_steps: List[int]
    evaluation_values: List[float]
    loss_steps: List[int]
    losses: List[float]
    best_step: Optional[int]  # the best evaluation after training started (None: none ran)

    @property
    def best_value(self) -> Optional[float]:
        if self.best_step is None:
            return None
        return self.evaluation_values[self.evaluation_steps.index(self.best_step)]


def training_curve(metric: str, initial_value: float, history: Sequence[Dict[str, Any]],
                   losses: Sequence[float]) -> TrainingCurve:
    """The curve of a training session: ``history`` (its evaluations), ``losses`` (one per step from step 1)."""
    best = max(history, key=lambda entry: entry["value"]) if history else None  # the first of equal bests
    return TrainingCurve(
        metric=metric,
        evaluation_steps=[0] + [int(entry["step"]) for entry in history],
        evaluation_values=[float(initial_value)] + [float(entry["value"]) for entry in history],
        loss_steps=list(range(1, len(losses) + 1)),
        losses=[float(loss) for loss in losses],
        best_step=None if best is None else int(best["step"]),
    )


def write_training_curve(curve: TrainingCurve, csv_path: PathLike, png_path: PathLike) -> None:
    """The curve as CSV (``step,loss,<metric>,best``, one row per step, empty where not evaluated) and PNG."""
    values = dict(zip(curve.evaluation_steps, curve.evaluation_values))
    losses = dict(zip(curve.loss_steps, curve.losses))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "loss", curve.metric, "best"])
    for step in sorted(set(values) | set(losses)):
        loss = losses.get(step)
        writer.writerow([
            step,
            "" if loss is None or math.isnan(loss) else repr(loss),
            repr(values[step]) if step in values else "",
            "1" if step == curve.best_step else "",
        ])
    save_text(buffer.getvalue(), csv_path)
    plot_training_curve(png_path, curve.metric, curve.evaluation_steps, curve.evaluation_values, curve.loss_steps,
                        curve.losses, curve.best_step)


def read_training_curve(path: PathLike) -> TrainingCurve:
    """Read a curve CSV written by :func:`write_training_curve`; anything else is an InputError naming the file."""
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text())))
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if not rows or len(rows[0]) != 4 or rows[0][:2] != ["step", "loss"] or rows[0][3] != "best":
        raise InputError(path, "not a training curve: expected the header 'step,loss,<metric>,best'")
    curve = TrainingCurve(rows[0][2], [], [], [], [], None)
    for number, row in enumerate(rows[1:], start=2):
        try:
            step, loss, value, best = row
            step = int(step)
            if loss:
                curve.loss_steps.append(step)
                curve.losses.append(float(loss))
            if value:
                curve.evaluation_steps.append(step)
                curve.evaluation_values.append(float(value))
        except ValueError:
            raise InputError(path, f"line {number} is not 'step,loss,{curve.metric},best' with numbers: {row}") from None
        if best:
            if not value or step == 0:
                raise InputError(path, f"line {number} marks step {step} best but it has no evaluation after training")
            curve.best_step = step
    return curve
