"""Summaries over runs (several seeds of one setup): is a re-trained number 'reproduced'?

A run is the training curve a training run writes (``logs/<version>/<dataset>_<model>_<backbone>.curve.csv``, see
``anomaly.engine.report``); a run folder holds one per dataset trained under that version. Per run: the best
evaluation after training started and its step (the one the best checkpoint holds). Per dataset: the mean and the
sample standard deviation (ddof=1: the ± papers report; undefined for one run), min and max over runs, beside the
S3R paper's figure (``anomaly.data.catalog``). Values are in %.
"""

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union


from anomaly.data.catalog import DATASETS
from anomaly.engine.report import CURVE_CSV_SUFFIX, read_training_curve
from anomaly.errors import InputError
from anomaly.files import save_text
from anomaly.layout import dataset_of_run_stem
from anomaly.plotting import plot_strip
from anomaly.tables import ascii_table

PathLike = Union[str, Path]


@dataclass(frozen=True)
class RunResult:
    curve: Path  # the run's curve CSV
    dataset: str
    metric: str
    best_step: int
    best_value: float  # in %


@dataclass(frozen=True)
class DatasetSummary:
    dataset: str
    metric: str
    runs: int
    mean: float
    std: Optional[float]  # sample standard deviation (ddof=1); None for a single run
    minimum: float
    maximum: float
    published: Optional[float]


def dataset_of_curve(path: Path) -> str:
    """The dataset a curve file belongs to, from its name ``<dataset>_<model>_<backbone>.curve.csv``."""
    stem = path.name[: -len(CURVE_CSV_SUFFIX)] if path.name.endswith(CURVE_CSV_SUFFIX) else ""
    dataset = dataset_of_run_stem(stem)
    if not dataset or dataset == stem:
        raise InputError(path, f"is not named as a run's curve (<dataset>_<model>_<backbone>{CURVE_CSV_SUFFIX})")
    return dataset


def curve_files(run: PathLike) -> List[Path]:
    """The curve CSVs of a run: the file itself, or every curve in a run folder."""
    run = Path(run)
    if run.is_file():
        return [run]
    if not run.is_dir():
        raise InputError(run, "no such run folder or curve file")
    curves = sorted(run.glob(f"*{CURVE_CSV_SUFFIX}"))
    if not curves:
        raise InputError(run, f"holds no training curve (*{CURVE_CSV_SUFFIX}): not a run folder (logs/<version>) of "
                              "tools/trainval_anomaly_detector.py")
    return curves


def read_run(curve_path: Path) -> RunResult:
    curve = read_training_curve(curve_path)
    if curve.best_step is None:
        raise InputError(curve_path, "has no evaluation after training started, so no best value")
    return RunResult(curve_path, dataset_of_curve(curve_path), curve.metric, curve.best_step, curve.best_value * 100)


def summarize(results: Sequence[RunResult]) -> List[DatasetSummary]:
    """One summary per dataset, in order of first appearance."""
    by_dataset: Dict[str, List[RunResult]] = {}
    for result in results:
        by_dataset.setdefault(result.dataset, []).append(result)
    summaries = []
    for dataset, runs in by_dataset.items():
        values = [run.best_value for run in runs]
        metrics = {run.metric for run in runs}
        if len(metrics) > 1:
            raise InputError(runs[0].curve, f"the {dataset} runs use different metrics ({', '.join(sorted(metrics))})")
        summaries.append(DatasetSummary(
            dataset, runs[0].metric, len(values), statistics.mean(values),
            statistics.stdev(values) if len(values) > 1 else None, min(values), max(values),
            DATASETS[dataset].published if dataset in DATASETS else None,
        ))
    return summaries


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def runs_table(results: Sequence[RunResult]) -> str:
    rows = [["Run", "Dataset", "Metric", "Best step", "Best (%)"]]
    rows += [[str(run.curve), run.dataset, run.metric, str(run.best_step), _number(run.best_value)] for run in results]
    return ascii_table(rows, " Runs ")


def summary_table(summaries: Sequence[DatasetSummary]) -> str:
    rows = [["Dataset", "Metric", "Runs", "Mean ± std (%)", "Min", "Max", "Published", "Mean - published"]]
    for summary in summaries:
        spread = "" if summary.std is None else f" ± {summary.std:.3f}"
        gap = None if summary.published is None else summary.mean - summary.published
        rows.append([summary.dataset, summary.metric, str(summary.runs), f"{summary.mean:.3f}{spread}",
                     _number(summary.minimum), _number(summary.maximum), _number(summary.published),
                     "n/a" if gap is None else f"{gap:+.3f}"])
    return ascii_table(rows, " Over runs (std: sample, ddof=1) ", dict.fromkeys(range(2, len(rows[0])), "right"))


def write_summary_csv(results: Sequence[RunResult], summaries: Sequence[DatasetSummary], path: PathLike) -> None:
    """Per run ``dataset,metric,run,best_step,best_value``, then per dataset rows whose ``run`` is mean, std (ddof=1),
    min, max and published (``best_step`` empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "metric", "run", "best_step", "best_value"])
    for run in results:
        writer.writerow([run.dataset, run.metric, str(run.curve), run.best_step, repr(run.best_value)])
    for summary in summaries:
        for name, value in (("mean", summary.mean), ("std", summary.std), ("min", summary.minimum),
                            ("max", summary.maximum), ("published", summary.published)):
            writer.writerow([summary.dataset, summary.metric, name, "", "" if value is None else repr(value)])
    save_text(buffer.getvalue(), path)


def plot_runs(results: Sequence[RunResult], summaries: Sequence[DatasetSummary], path: PathLike) -> Path:
    """The strip plot: each run's best value per dataset, mean ± std, the published figure."""
    groups: Dict[str, List[float]] = {}
    for run in results:
        groups.setdefault(f"{run.dataset}\n({run.metric})", []).append(run.best_value)
    references = {f"{summary.dataset}\n({summary.metric})": summary.published for summary in summaries}
    return plot_strip(path, groups, "best value over the run (%)", references)
