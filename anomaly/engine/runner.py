"""The train/eval loop of ``tools/trainval_anomaly_detector.py``: the published flow, resumable.

Flow: validate and load every input (before anything is written), build S3R and Adam, evaluate once (the
initial AUC), then train for ``max_epoch`` steps, evaluating every ``evaluate_freq`` steps past
``evaluate_min_step``. An improvement saves ``<dataset>_<model>_<backbone>_best.pth`` (a plain state_dict in the
published layout) and appends a row to the ``.score`` log. The full training state (model, optimizer, step,
evaluation history, batch-stream positions, random generators) is saved atomically every ``save_freq`` steps,
on SIGINT/SIGTERM and at the end, so ``--resume <state file>`` continues a run exactly where it stopped; each
save also refreshes the training curve (``<stem>.curve.csv`` and ``.png``, see ``anomaly.engine.report``).
``--inference`` prints the published table, then every metric, and writes them with pictures beside the scores.
"""

import contextlib
import datetime
import hashlib
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
import yaml
from munch import Munch
from tqdm import tqdm

from anomaly.data import TestVideos, TrainingVideos, load_dictionary, read_video_list, split_training_list
from anomaly.engine.detector_file import FeatureSpec, save_detector
from anomaly.engine.checkpoint import first_non_finite_weight, load_checkpoint, load_model_weights, model_state_of
from anomaly.engine.evaluator import DeviceTestSet, Evaluation, evaluate
from anomaly.engine.metrics import NonFiniteScores
from anomaly.engine.report import (
    CURVE_CSV_SUFFIX,
    CURVE_PNG_SUFFIX,
    InferenceFiles,
    best_evaluations_table,
    metrics_table,
    run_description,
    score_file_header,
    score_row,
    score_table_closing,
    summary_table,
    training_curve,
    write_inference_report,
    write_training_curve,
)
from anomaly.precision import resolve_precision
from anomaly.engine.trainer import TrainingData, make_optimizer, train_step
from anomaly.engine.version_folder import VersionFolder
from anomaly.engine.training_state import (
    is_training_state,
    random_states,
    restore_random_states,
    save_training_state,
)
from anomaly.errors import InputError, Interrupted
from anomaly.hardware import resolve_device
from anomaly.layout import DETECTOR_SUFFIX, run_stem
from anomaly.files import check_writable_folder, save_pickle, save_text, save_torch
from anomaly.models import S3R
from anomaly.models.packing import KERNELS

LOGGER_NAME = "AnomalyDetection"


class TrainingInterrupted(Interrupted):
    """Raised after the training state was saved because the process received SIGINT or SIGTERM."""

    def __init__(self, signal_number: int, state_file: Path):
        self.state_file = state_file
        super().__init__(signal_number, f"the training state is saved: resume with --resume {state_file}")


@dataclass
class RunFiles:
    """Where a run writes: checkpoints and logs in a folder per version, inference scores per dataset."""

    checkpoint_dir: Path
    log_dir: Path
    best_checkpoint: Path
    detector: Path
    training_state: Path
    score_file: Path
    log_file: Path
    curve_csv: Path
    curve_png: Path
    results_file: Path

    @classmethod
    def of(cls, args: Any, modality: str) -> "RunFiles":
        stem = run_stem(args.dataset, args.model_name, args.backbone)
        checkpoint_dir = Path(args.checkpoint_path) / args.version
        log_dir = Path(args.log_path) / args.version
        return cls(
            checkpoint_dir=checkpoint_dir,
            log_dir=log_dir,
            best_checkpoint=checkpoint_dir / f"{stem}_best.pth",
            detector=checkpoint_dir / f"{stem}{DETECTOR_SUFFIX}",
            training_state=checkpoint_dir / f"{stem}.state",
            score_file=log_dir / f"{stem}.score",
            log_file=log_dir / f"{stem}.log",
            curve_csv=log_dir / f"{stem}{CURVE_CSV_SUFFIX}",
            curve_png=log_dir / f"{stem}{CURVE_PNG_SUFFIX}",
            results_file=Path("output") / args.dataset / f"{args.dataset}_{modality}_results.pickle",
        )


class AtomicLogHandler(logging.Handler):
    """The log file, rewritten whole and atomically (``anomaly.files.save_text``) at every record: a crash or a full
    disk leaves the previous version, and a failed write ends the run with one line (an InputError) instead of
    logging's traceback. An existing log is continued (a resumed run; any other run's log was refused or removed
    before, see ``anomaly.engine.version_folder``)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.text = self.path.read_text(errors="replace") if self.path.is_file() else ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += self.format(record) + "\n"
        save_text(self.text, self.path)


def setup_logger(log_file: Optional[Path]) -> logging.Logger:
    """The published log format on stdout, and in ``log_file`` when given (see ``AtomicLogHandler``)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        handlers.append(AtomicLogHandler(log_file))
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


@dataclass
class TrainingSession:
    """What the steps of :meth:`Run.train` share: the model and its inputs, then the evaluation record."""

    model: S3R
    optimizer: torch.optim.Optimizer
    training: TrainingData
    test_set: DeviceTestSet
    dictionary: torch.Tensor
    logger: logging.Logger
    max_steps: int
    resumed_state: Optional[Dict[str, Any]] = None  # the --resume training state, until it is applied
    first_step: int = 1
    history: List[Dict[str, Any]] = field(default_factory=list)  # every evaluation: step, value, loss, times
    losses: List[float] = field(default_factory=list)  # the training loss of every step, from step 1
    best: Optional[Dict[str, Any]] = None  # the best entry of history
    header: str = ""  # the .score log's header ...
    rows: str = ""  # ... and its rows, one per improvement
    initial_value: float = 0.0  # the metric before training
    start_time: float = 0.0  # time.time() at step 0, earlier sessions included
    saved_step: Optional[int] = None  # the step of this run's training state file, once there is one


class Run:
    """One invocation of the train/eval script."""

    def __init__(self, args: Any, config: Munch):
        self.args = args
        self.config = config
        self.feature_size = args.feature_size or config.feature_size
        self.device = resolve_device(args.device, "training")
        self.precision, note = resolve_precision(args.precision, self.device)
        if note:
            print(note, file=sys.stderr)
        self.lr = args.lr if args.lr else config.init_lr
        self.files = RunFiles.of(args, config.modality)
        self.metric = config.metric
        self.feature_spec = FeatureSpec(config.backbone, config.preset, config.num_crops, self.feature_size,
                                        config.frames, config.weights_sha256)  # fmt: skip

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
        load_model_weights(model, model_state_of(checkpoint, self.args.resume), self.args.resume, description,
                           size_hint=" (check --feature_size)")
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
        """Load ``--resume``, evaluate once, print the tables, write per-video snippet scores, every metric
        (``metrics.json``) and the pictures (``anomaly.engine.report``)."""
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
        files = InferenceFiles(self.files.results_file.parent)
        report = write_inference_report(
            files, data.test.video_ids, result.snippet_scores, data.test.frame_labels,
            extra={"dataset": self.args.dataset, "checkpoint": str(self.args.resume), "metric": self.metric,
                   "value": result.value},
            plot_videos=self.args.plot_videos, per_class=self.config.per_class_auc,
        )
        logger.info(f"All metrics\n{metrics_table(self.args.dataset, report)}")
        logger.info(f"Metrics written to {files.metrics}; pictures: {files.roc}, {files.precision_recall}, "
                    f"{files.score_curves}/ (--plot_videos {self.args.plot_videos}), {files.overview}")
        return result

    def _evaluate(self, model: S3R, test_set: DeviceTestSet) -> Evaluation:
        return evaluate(model, test_set, precision=self.precision)

    # ---------------------------------------------------------------- training
    def train(self) -> List[Dict[str, Any]]:
        """Train for ``--max_epoch`` steps (3 with ``--debug``) and return the evaluation history.

        The version folder is locked for the whole run, and an earlier run's files in it are refused unless
        ``--resume`` continues that run or ``--overwrite`` replaces it (see ``anomaly.engine.version_folder``).
        """
        files = self.files
        for folder in (files.checkpoint_dir, files.log_dir):
            check_writable_folder(folder)
        run_files = [files.best_checkpoint, files.detector, files.training_state, files.score_file, files.log_file]
        with VersionFolder(files.checkpoint_dir, run_files) as version:
            version.check_owner(files.training_state, self.args.resume, self.args.overwrite)
            session = self._prepare(version)
            self._resume_or_start(session)
            self._step_loop(session)
            self._finish(session)
        return session.history

    def _prepare(self, version: VersionFolder) -> "TrainingSession":
        """Validate and load every input, build the model and optimizer; nothing is written before this ends."""
        data = Datasets(self.args, self.config, self.feature_size, with_training=True)
        model = self._model()
        self.identity = self._run_identity(data)
        state = self._load_resume(model) if self.args.resume else None
        if state is not None:
            self._check_same_run(state)
        version.clear(self.args.overwrite)
        self.files.log_dir.mkdir(parents=True, exist_ok=True)
        return TrainingSession(
            model=model,
            optimizer=make_optimizer(model, self.lr),
            training=TrainingData(data.normal.videos, data.anomalous.videos, self.args.batch_size, self.device),
            test_set=DeviceTestSet(data.test, self.device, self.metric),
            dictionary=torch.from_numpy(data.dictionary).to(self.device),
            logger=setup_logger(self.files.log_file),
            max_steps=3 if self.args.debug else self.args.max_epoch,
            resumed_state=state,
        )

    def _resume_or_start(self, session: "TrainingSession") -> None:
        """Continue from the training state of ``--resume``, or log the setup and evaluate the initial model."""
        state = session.resumed_state
        if state is not None:
            try:
                elapsed_before = self._apply_state(session, state)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
                raise InputError(self.args.resume, f"not a valid training state: an entry is missing or malformed "
                                 f"({type(error).__name__}: {error})") from None
            session.logger.info(f">>> Training state {self.args.resume} loaded: continuing at step {session.first_step}.")
        else:
            elapsed_before = 0.0
            session.header, session.initial_value = self._start(session.model, session.test_set, session.logger)
        session.resumed_state = None  # the weights and moments now live in the model and optimizer
        save_text(session.header + session.rows, self.files.score_file)
        session.start_time = time.time() - elapsed_before

    def _apply_state(self, session: "TrainingSession", state: Dict[str, Any]) -> float:
        """Put a training state's optimizer, batch streams, generators and evaluation record into ``session``;
        returns the seconds the run had spent. Raises what a missing or malformed entry makes fail."""
        session.optimizer.load_state_dict(state["optimizer"])
        session.training.load_state_dict(state["batches"])
        restore_random_states(state["random"])
        session.history, session.header = list(state["history"]), str(state["score_header"])
        session.losses = [float(loss) for loss in state["losses"]]
        session.model.kernel_choice.load_state_dict(state["kernels"], KERNELS)  # the same kernels, the same rounding
        session.first_step = int(state["step"]) + 1
        session.initial_value = float(state["initial_value"])
        values = [float(entry["value"]) for entry in session.history]
        if not all(math.isfinite(value) for value in values + [session.initial_value]):
            raise ValueError("an evaluation in its history is NaN or inf")
        session.best = max(session.history, key=lambda entry: entry["value"]) if session.history else None
        session.rows = "".join(score_row(entry) for entry in session.history if entry["improved"])
        if Path(self.args.resume).resolve() == self.files.training_state.resolve():
            session.saved_step = session.first_step - 1
        return float(state["elapsed"])

    def _diverged(self, session: "TrainingSession", step: int, problem: str) -> InputError:
        """The one-line error that stops a training whose loss, weights or scores are no longer finite."""
        if session.saved_step is None:
            kept = "no training state was saved before it"
        else:
            kept = f"the last good training state is {self.files.training_state} (step {session.saved_step})"
        return InputError(None, f"training diverged at step {step}: {problem}; nothing of step {step} was saved and "
                          f"{kept} (a smaller --lr may help)")

    def _check_finite_weights(self, session: "TrainingSession", step: int) -> None:
        """Before any save: weights that hold NaN or inf stop the run (see ``_diverged``)."""
        non_finite = first_non_finite_weight(session.model.state_dict())
        if non_finite is not None:
            raise self._diverged(session, step, f"the weight '{non_finite}' holds NaN or inf")

    def _step_loop(self, session: "TrainingSession") -> None:
        """The training steps: train, evaluate (keeping the best checkpoint), save the state, stop on a signal."""
        with self._progress_bar(session) as progress, deferred_signals() as received:
            for step in range(session.first_step, session.max_steps + 1):
                loss = self._train_one_step(session, step)
                evaluated = self._evaluates_at(step)
                if evaluated:
                    self._evaluate_and_keep_best(session, step, loss)
                if evaluated or step % self.args.plot_freq == 0 or step == session.max_steps:
                    progress.set_postfix_str(self._progress_line(session, loss), refresh=False)
                progress.update(1)
                stopping = received["signal"] is not None
                if stopping or step == session.max_steps or (self.args.save_freq and step % self.args.save_freq == 0):
                    self._save_state(session, step)
                if stopping:
                    raise TrainingInterrupted(received["signal"], self.files.training_state)

    def _progress_bar(self, session: "TrainingSession") -> tqdm:
        return tqdm(total=session.max_steps, initial=session.first_step - 1, desc=self.args.dataset, file=sys.stderr,
                    dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)

    def _progress_line(self, session: "TrainingSession", loss: float) -> str:
        current = session.history[-1]["value"] if session.history else session.initial_value
        best = session.best["value"] if session.best else session.initial_value
        return (f"lr {session.optimizer.param_groups[0]['lr']:g}, loss {loss:.4f}, "
                f"{self.metric} {current * 100:.3f}, best {best * 100:.3f}")

    def _train_one_step(self, session: "TrainingSession", step: int) -> float:
        """One optimisation step on the next batch; its loss is recorded and returned."""
        normal, anomalous = session.training.next_batch()
        try:
            losses = train_step(session.model, session.optimizer, normal, anomalous, session.dictionary, self.precision)
        except FloatingPointError as error:  # raised before the step's update is applied
            raise self._diverged(session, step, str(error)) from None
        session.losses.append(float(losses["total"]))
        return session.losses[-1]

    def _evaluates_at(self, step: int) -> bool:
        return self.args.debug or (step % self.args.evaluate_freq == 0 and step > self.args.evaluate_min_step)

    def _evaluate_and_keep_best(self, session: "TrainingSession", step: int, loss: float) -> None:
        """Evaluate after ``step``; an improvement saves the best checkpoint and adds a ``.score`` row."""
        try:
            entry = self._evaluation_entry(session, step, loss)
        except NonFiniteScores as error:
            raise self._diverged(session, step, str(error)) from None
        session.history.append(entry)
        if entry["improved"]:
            session.best = entry
            self._check_finite_weights(session, step)
            save_torch(session.model.state_dict(), self.files.best_checkpoint)
            save_detector(self.files.detector, session.model.state_dict(), session.dictionary, self.feature_spec,
                          self.args.dataset, self.metric, entry["value"], step)
            session.rows += score_row(entry)
            save_text(session.header + session.rows, self.files.score_file)

    def _finish(self, session: "TrainingSession") -> None:
        """Close the ``.score`` table and report the best evaluations."""
        save_text(session.header + session.rows + score_table_closing(), self.files.score_file)
        logger = session.logger
        if session.history:
            table = best_evaluations_table(self.args.dataset, self.metric, session.history, self.args.report_k)
            logger.info(f"Summary Result on {self.metric} metric\n{table}")
        # Name only files that exist (a run resumed from another folder's finished state wrote none of them).
        state = f"training state: {self.files.training_state}" if self.files.training_state.is_file() else ""
        if session.best is None:
            logger.warning(
                f"No evaluation ran (steps 1-{session.max_steps}, --evaluate_min_step {self.args.evaluate_min_step}), "
                f"so there is no best checkpoint" + (f"; the final weights are in the {state}" if state else "")
            )
        else:
            best = f"Best checkpoint: {self.files.best_checkpoint}" if self.files.best_checkpoint.is_file() else (
                f"Best evaluation at step {session.best['step']} (its checkpoint was written by an earlier run)")
            if self.files.detector.is_file():
                best += f"; detector (s3r detect --detector): {self.files.detector}"
            logger.info(f"{best}" + (f"; {state}" if state else ""))

    def _evaluation_entry(self, session: "TrainingSession", step: int, loss: float) -> Dict[str, Any]:
        """Evaluate after ``step``: the history entry (also a ``.score`` row when it improves on the best)."""
        value = self._evaluate(session.model, session.test_set).value
        best, start_time = session.best, session.start_time
        return {
            "step": step,
            "value": value,
            "loss": loss,
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
        system_info = run_description(args.dataset, args.version, " ".join(args.descr), self.metric, initial.value,
                                      self.lr)
        logger.info(system_info)
        header = score_file_header(arguments, environment, str(model), system_info, self.metric)
        return header, initial.value

    def _save_state(self, session: "TrainingSession", step: int) -> None:
        self._check_finite_weights(session, step)
        save_training_state(
            self.files.training_state,
            run=self.identity,
            step=step,
            model=session.model.state_dict(),
            optimizer=session.optimizer.state_dict(),
            batches=session.training.state_dict(),
            random=random_states(),
            history=session.history,
            score_header=session.header,
            initial_value=session.initial_value,
            elapsed=time.time() - session.start_time,
            losses=session.losses,
            kernels=session.model.kernel_choice.state_dict(),
        )
        session.saved_step = step
        curve = training_curve(self.metric, session.initial_value, session.history, session.losses)
        write_training_curve(curve, self.files.curve_csv, self.files.curve_png)
