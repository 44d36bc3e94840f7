"""The train/eval loop of ``tools/trainval_anomaly_detector.py``: the published flow, resumable.

Flow: validate and load every input (before anything is written), build S3R and Adam, evaluate once (the
initial AUC), then train for ``max_epoch`` steps, evaluating every ``evaluate_freq`` steps past
``evaluate_min_step``. An improvement saves ``<dataset>_<model>_<backbone>_best.pth`` (a plain state_dict in the
published layout) and appends a row to the ``.score`` log. The full training state (model, optimizer, step,
evaluation history, batch-stream positions, random generators) is saved atomically every ``save_freq`` steps,
on SIGINT/SIGTERM and at the end, so ``--resume <state file>`` continues a run exactly where it stopped.
"""

import contextlib
import datetime
import hashlib
import logging
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
import yaml
from munch import Munch
from terminaltables import AsciiTable
from tqdm import tqdm

from anomaly.data import TestVideos, TrainingVideos, load_dictionary, read_video_list, split_training_list
from anomaly.engine.checkpoint import (
    TRAINING_STATE_FORMAT,
    is_training_state,
    load_checkpoint,
    load_model_weights,
    model_state_of,
)
from anomaly.engine.evaluator import DeviceTestSet, Evaluation, evaluate
from anomaly.engine.precision import resolve_precision
from anomaly.engine.trainer import TrainingData, make_optimizer, train_step
from anomaly.errors import InputError
from anomaly.files import check_writable_folder, save_pickle, save_text, save_torch
from anomaly.models import S3R, kernel_choice

LOGGER_NAME = "AnomalyDetection"
SCORE_COLUMNS = "| {:^6s} | {:^8s} | {:^15s} | {:^30s} | {:^30s} |"


class TrainingInterrupted(Exception):
    """Raised after the training state was saved because the process received SIGINT or SIGTERM."""

    def __init__(self, signal_number: int, state_file: Path):
        self.signal_number = signal_number
        self.state_file = state_file
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}; resume with --resume {state_file}")


@dataclass
class RunFiles:
    """Where a run writes: checkpoints and logs in a folder per version, inference scores per dataset."""

    checkpoint_dir: Path
    log_dir: Path
    best_checkpoint: Path
    training_state: Path
    score_file: Path
    log_file: Path
    results_file: Path

    @classmethod
    def of(cls, args: Any, modality: str) -> "RunFiles":
        stem = f"{args.dataset}_{args.model_name}_{args.backbone}"
        checkpoint_dir = Path(args.checkpoint_path) / args.version
        log_dir = Path(args.log_path) / args.version
        return cls(
            checkpoint_dir=checkpoint_dir,
            log_dir=log_dir,
            best_checkpoint=checkpoint_dir / f"{stem}_best.pth",
            training_state=checkpoint_dir / f"{stem}.state",
            score_file=log_dir / f"{stem}.score",
            log_file=log_dir / f"{stem}.log",
            results_file=Path("output") / args.dataset / f"{args.dataset}_{modality}_results.pickle",
        )


def setup_logger(log_file: Optional[Path]) -> logging.Logger:
    """The published log format on stdout, and in ``log_file`` when given."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def load_run_dictionary(config: Munch, feature_size: int) -> np.ndarray:
    """The dictionary of the config's modality (see ``anomaly.dictionary_learning`` for how each is made)."""
    if config.modality == "taskaware":
        return load_dictionary(config.files.task_dictionary, feature_size)
    from anomaly.dictionary_learning import load_modality_dictionary

    return load_modality_dictionary(config, feature_size)


class Datasets:
    """Every input of a run, validated and in memory: dictionary, training videos by class, test videos."""

    def __init__(self, args: Any, config: Munch, feature_size: int, with_training: bool):
        self.dictionary = load_run_dictionary(config, feature_size)
        common = dict(
            root=args.root_path,
            dataset=args.dataset,
            dictionary=self.dictionary,
            backbone=args.backbone,
            num_crops=config.num_crops,
            feature_size=feature_size,
        )
        test_ids = read_video_list(config.files.testing_list)
        self.test = TestVideos(video_ids=test_ids, ground_truth=config.files.ground_truth, progress=True, **common)
        anomalous_frames = int(self.test.frame_labels.sum())
        if anomalous_frames == 0 or (config.metric == "AUC" and anomalous_frames == len(self.test.frame_labels)):
            raise InputError(
                config.files.ground_truth,
                f"the test videos have {anomalous_frames} anomalous frames of {len(self.test.frame_labels)}: "
                f"frame-level {config.metric} needs anomalous" + (" and normal frames" if config.metric == "AUC" else " frames"),
            )
        self.normal = self.anomalous = None
        if with_training:
            split = split_training_list(config.files.training_list, config.num_anomalous_train)
            for name, ids in split.items():
                if len(ids) < args.batch_size:
                    raise InputError(
                        config.files.training_list,
                        f"only {len(ids)} {name} training videos, fewer than --batch_size {args.batch_size}: "
                        f"lower --batch_size to at most {len(ids)} or add {name} videos",
                    )
            self.normal = TrainingVideos(
                video_ids=split["normal"], label=0, quantize_size=args.quantize_size, progress=True, **common
            )
            self.anomalous = TrainingVideos(
                video_ids=split["anomalous"], label=1, quantize_size=args.quantize_size, progress=True, **common
            )


def _fingerprint(content: bytes) -> str:
    """A short digest identifying some content (the training video ids, a dictionary's values)."""
    return hashlib.sha256(content).hexdigest()[:16]


def random_states() -> Dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def restore_random_states(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    *internal, version, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def deferred_signals() -> Iterator[Dict[str, Optional[int]]]:
    """Turn SIGINT/SIGTERM into a flag checked between steps, so the state is saved before the process ends."""
    received: Dict[str, Optional[int]] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def remember(signal_number, _frame):
        received["signal"] = signal_number

    previous = {number: signal.signal(number, remember) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def summary_table(dataset: str, model_name: str, backbone: str, metric: str, value: float) -> str:
    title = [["Dataset", "Method", "Feature", f"{metric} (%)"]]
    row = [[dataset, model_name.upper(), backbone.upper(), f"{value * 100.0:.3f}"]]
    table = AsciiTable(title + row, f" Performance on {dataset} ")
    for column in range(len(title[0])):
        table.justify_columns[column] = "center"
    return table.table


def best_evaluations_table(dataset: str, metric: str, history: List[Dict[str, Any]], report_k: int) -> str:
    """The ``report_k`` best evaluations, ascending, the best marked with '*' (the published final table)."""
    values = np.array([entry["value"] for entry in history])
    best = int(np.argmax(values))
    shown = np.argsort(values, kind="stable")[-report_k:]
    rows = [
        [str(history[index]["step"]), f"{history[index]['value'] * 100.0:.3f}", "*" if index == best else ""]
        for index in shown
    ]
    table = AsciiTable([["Step", metric, "Best"]] + rows, f" Performance on {dataset} ")
    table.justify_columns[0], table.justify_columns[2] = "center", "center"
    return table.table


def score_row(entry: Dict[str, Any]) -> str:
    return (
        SCORE_COLUMNS.format(
            str(entry["step"]), f"{entry['value'] * 100.0:.3f}", f"{entry['loss']:.3f}", entry["elapsed"], entry["now"]
        )
        + " \n"
    )


class Run:
    """One invocation of the train/eval script."""

    def __init__(self, args: Any, config: Munch):
        self.args = args
        self.config = config
        self.feature_size = args.feature_size or config.feature_size
        try:
            self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError:
            self.device = None
        if self.device is None or self.device.type not in ("cpu", "cuda"):
            raise InputError(None, f"--device {args.device}: not a usable device (cpu, cuda, cuda:1, ...)")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(None, f"--device {args.device}: no CUDA device is available here (use --device cpu)")
        self.precision, note = resolve_precision(args.precision, self.device)
        if note:
            print(note, file=sys.stderr)
        self.lr = args.lr if args.lr else config.init_lr
        self.files = RunFiles.of(args, config.modality)
        self.metric = config.metric

    # ---------------------------------------------------------------- setup
    def _model(self) -> S3R:
        model = S3R(
            self.feature_size,
            batch_size=self.args.batch_size,
            quantize_size=self.args.quantize_size,
            dropout=self.args.dropout,
            modality=self.config.modality,
        )
        return model.to(self.device)

    def _load_resume(self, model: S3R) -> Optional[Dict[str, Any]]:
        """Load the weights of ``--resume`` into ``model``; return the checkpoint when it is a training state."""
        checkpoint = load_checkpoint(self.args.resume, map_location=self.device)
        description = f"S3R(feature_size={self.feature_size})"
        load_model_weights(model, model_state_of(checkpoint, self.args.resume), self.args.resume, description)
        return checkpoint if is_training_state(checkpoint) else None

    def _check_same_run(self, state: Dict[str, Any]) -> None:
        """A training state continues only the run that saved it: same data, dictionary and settings."""
        saved = state["run"]
        differences = [
            f"{key} {saved.get(key)} -> {value}" for key, value in self.identity.items() if saved.get(key) != value
        ]
        if differences:
            raise InputError(
                self.args.resume, f"this training state belongs to another run setup ({'; '.join(differences)})"
            )

    def _run_identity(self, data: "Datasets") -> Dict[str, Any]:
        """The settings and data a resumed run must share with the run that saved the state."""
        return {
            "training videos": _fingerprint("\n".join(data.normal.video_ids + data.anomalous.video_ids).encode()),
            "normal / anomalous videos": f"{len(data.normal)} / {len(data.anomalous)}",
            "dictionary": _fingerprint(data.dictionary.tobytes()),
            "dataset": self.args.dataset,
            "feature_size": self.feature_size,
            "batch_size": self.args.batch_size,
            "quantize_size": self.args.quantize_size,
            "dropout": self.args.dropout,
            "lr": self.lr,
            "model_name": self.args.model_name,
        }

    # ---------------------------------------------------------------- inference
    def infer(self) -> Evaluation:
        """Load ``--resume``, evaluate once, print the table and write per-video snippet scores."""
        check_writable_folder(self.files.results_file.parent)
        data = Datasets(self.args, self.config, self.feature_size, with_training=False)
        model = self._model()
        self._load_resume(model)
        logger = setup_logger(None)
        logger.info(f">>> Checkpoint {self.args.resume} loaded.")
        result = self._evaluate(model, DeviceTestSet(data.test, self.device, self.metric))
        table = summary_table(self.args.dataset, self.args.model_name, self.args.backbone, self.metric, result.value)
        logger.info(f"Summary Result on {self.metric} metric\n{table}")
        self.files.results_file.parent.mkdir(parents=True, exist_ok=True)
        save_pickle(result.snippet_scores, self.files.results_file)
        logger.info(f"Per-video snippet scores written to {self.files.results_file}")
        return result

    def _evaluate(self, model: S3R, test_set: DeviceTestSet) -> Evaluation:
        return evaluate(model, test_set, precision=self.precision)

    # ---------------------------------------------------------------- training
    def train(self) -> List[Dict[str, Any]]:
        args = self.args
        for folder in (self.files.checkpoint_dir, self.files.log_dir):
            check_writable_folder(folder)
        data = Datasets(args, self.config, self.feature_size, with_training=True)
        model = self._model()
        optimizer = make_optimizer(model, self.lr)
        self.identity = self._run_identity(data)
        state = self._load_resume(model) if args.resume else None
        if state is not None:
            self._check_same_run(state)
        training = TrainingData(data.normal.videos, data.anomalous.videos, args.batch_size, self.device)
        test_set = DeviceTestSet(data.test, self.device, self.metric)
        dictionary = torch.from_numpy(data.dictionary).to(self.device)

        self.files.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.files.log_dir.mkdir(parents=True, exist_ok=True)
        logger = setup_logger(self.files.log_file)
        max_steps = 3 if args.debug else args.max_epoch

        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            training.load_state_dict(state["batches"])
            restore_random_states(state["random"])
            kernel_choice.load_state_dict(state.get("kernels", {}))  # the same kernels, the same rounding
            history, header = state["history"], state["score_header"]
            first_step, elapsed_before = int(state["step"]) + 1, float(state["elapsed"])
            initial_value = float(state["initial_value"])
            logger.info(f">>> Training state {args.resume} loaded: continuing at step {first_step}.")
        else:
            history, first_step, elapsed_before = [], 1, 0.0
            header, initial_value = self._start(model, test_set, logger)
        best = max(history, key=lambda entry: entry["value"]) if history else None
        rows = "".join(score_row(entry) for entry in history if entry["improved"])
        save_text(header + rows, self.files.score_file)

        start_time = time.time() - elapsed_before
        current_value = history[-1]["value"] if history else initial_value
        progress_bar = tqdm(
            total=max_steps,
            initial=first_step - 1,
            desc=f"{args.dataset}",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )
        with progress_bar as progress, deferred_signals() as received:
            for step in range(first_step, max_steps + 1):
                normal, anomalous = training.next_batch()
                losses = train_step(model, optimizer, normal, anomalous, dictionary, self.precision)
                evaluate_now = args.debug or (step % args.evaluate_freq == 0 and step > args.evaluate_min_step)
                if evaluate_now:
                    entry = self._evaluation_entry(model, test_set, step, losses, start_time, best)
                    current_value = entry["value"]
                    history.append(entry)
                    if entry["improved"]:
                        best = entry
                        save_torch(model.state_dict(), self.files.best_checkpoint)
                        rows += score_row(entry)
                        save_text(header + rows, self.files.score_file)
                if step % args.plot_freq == 0 or step == max_steps or evaluate_now:
                    best_value = best["value"] if best else initial_value
                    progress.set_postfix_str(
                        f"lr {optimizer.param_groups[0]['lr']:g}, loss {float(losses['total']):.4f}, "
                        f"{self.metric} {current_value * 100:.3f}, best {best_value * 100:.3f}",
                        refresh=False,
                    )
                progress.update(1)
                stopping = received["signal"] is not None
                if stopping or step == max_steps or (args.save_freq and step % args.save_freq == 0):
                    self._save_state(model, optimizer, training, step, history, header, initial_value, start_time)
                if stopping:
                    raise TrainingInterrupted(received["signal"], self.files.training_state)
        save_text(header + rows + "+{}+\n".format("-" * (len(SCORE_COLUMNS.format(*[""] * 5)) - 2)), self.files.score_file)
        if history:
            table = best_evaluations_table(args.dataset, self.metric, history, args.report_k)
            logger.info(f"Summary Result on {self.metric} metric\n{table}")
        if best is None:
            logger.warning(
                f"No evaluation ran (steps 1-{max_steps}, --evaluate_min_step {args.evaluate_min_step}), so there is no "
                f"best checkpoint; the final weights are in the training state {self.files.training_state}"
            )
        else:
            logger.info(f"Best checkpoint: {self.files.best_checkpoint}; training state: {self.files.training_state}")
        return history

    def _evaluation_entry(self, model, test_set, step, losses, start_time, best) -> Dict[str, Any]:
        """Evaluate after ``step``: the history entry (also a ``.score`` row when it improves on ``best``)."""
        value = self._evaluate(model, test_set).value
        return {
            "step": step,
            "value": value,
            "loss": float(losses["total"]),
            "elapsed": str(datetime.timedelta(seconds=time.time() - start_time)),
            "now": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "improved": best is None or value > best["value"],
        }

    def _start(self, model: S3R, test_set: DeviceTestSet, logger: logging.Logger):
        """Log the setup, evaluate the initial model and compose the ``.score`` header."""
        args = self.args
        from torch.utils.collect_env import get_pretty_env_info

        arguments = yaml.dump(
            {key: (str(value) if isinstance(value, Path) else value) for key, value in args.as_dict().items()},
            sort_keys=False,
            default_flow_style=False,
        )
        environment = get_pretty_env_info()
        logger.info(f"Arguments \n{arguments}{'-' * 40}")
        logger.info(f"Environment Information\n\n{environment}\n")
        logger.info(f"Device: {self.device}; precision: {self.precision}")
        logger.info(f"Model Structure: \n{model}")
        if args.resume:
            logger.info(f">>> Checkpoint {args.resume} loaded.")
        initial = self._evaluate(model, test_set)
        if args.resume:
            table = summary_table(args.dataset, args.model_name, args.backbone, self.metric, initial.value)
            logger.info(f"Summary Result on {self.metric} metric\n{table}")
        system_info = (
            f"\n    Video Anomaly Detection\n"
            f"        - dataset:\t {args.dataset}\n"
            f"        - version:\t {args.version}\n"
            f"        - description:\t {' '.join(args.descr)}\n"
            f"        - initial {self.metric} score: {initial.value * 100.0:.3f} %\n"
            f"        - initial learning rate: {self.lr:.4f}\n"
        )
        logger.info(system_info)
        title = SCORE_COLUMNS.format("Step", self.metric, "Training loss", "Elapsed time", "Now")
        header = (
            f"\n{'*' * 10}\n{arguments}\n\n\n{environment}\n{'*' * 10}\n"
            f"\n{'=' * 10}\n{model}\n{'=' * 10}\n"
            f"\n{system_info}\n"
            f"+{'-' * (len(title) - 2)}+\n{title}\n{'-' * len(title)}\n"
        )
        return header, initial.value

    def _save_state(self, model, optimizer, training, step, history, header, initial_value, start_time) -> None:
        save_torch(
            {
                "format": TRAINING_STATE_FORMAT,
                "run": self.identity,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "batches": training.state_dict(),
                "random": random_states(),
                "kernels": kernel_choice.state_dict(),
                "history": history,
                "score_header": header,
                "initial_value": initial_value,
                "elapsed": time.time() - start_time,
            },
            self.files.training_state,
        )
