"""Watching a source: each snippet scored causally as it arrives, one JSON line per snippet, alerts, and at the end
the anomaly curve's CSV, picture and report page of what was seen.

Per snippet (``anomaly.live.stream``: decoded, upright and resized in a thread ahead), the network of the detector's
backbone makes its features (a batch of one clip: its ``FeatureNetwork``) and ``CausalScores`` scores it on the
window of the last ``window`` snippets (plus ``lookahead`` after it, once they have come), by the detector's packed scorer
(``anomaly.detection.window_scorer``, built once), or by an exported folder's runtime (``--runtime``,
``anomaly.detection.open_models``). Each score is a line of ``lines``, flushed::

    {"snippet": 4, "start_s": 2.56, "end_s": 3.2, "score": 0.8123, "latency_ms": 845.2, "precision": "fp32"}
    {"alert": "start", "time_s": 1.92, "snippet": 3}

``latency_ms``: from the snippet's last frame decoded to its score (with a lookahead, the wait for the snippets
after it included); ``precision``: what the network and S3R ran for it (fp32 or bf16, never ``auto``), in every
line, so that a line read alone says what made it; ``dropped`` (only when some were): the snippets a live
source dropped since the line before, because the network fell behind. Alerts come from ``AlertTracker``
(hysteresis); an event still going when the stream ends gets its end there (``"stream_ended": true``, at the end
of the last snippet). The last line sums up::

    {"end": "end of stream", "frames": 190, "snippets": 12, "dropped": 0, "alerts": 1}

At the end of the stream, after ``timeout`` seconds without data, when it breaks, or on SIGINT/SIGTERM (the
interruption is raised again once the files are written), the scores so far become ``<name>_scores.csv``,
``_scores.png`` and ``_report.html`` (``anomaly.detection.write_curve_files``, as detection writes them): each
snippet's score for its frames, the frames of dropped snippets without a score, times from the stream's timestamps;
the page names the features' preset, crops and precision.

From a live source, after its first snippets, one line on standard error says how many snippets per second the
watch scores against the rate the stream brings, and when it falls behind what could keep up (``anomaly.live.pace``).
"""

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO, Union

import numpy as np
import torch

from anomaly.detection import CurveFiles, DetectorFiles, features_description, open_models, write_curve_files
from anomaly.errors import InputError, Interrupted, check_choice, check_range
from anomaly.extraction import PRESETS, ExtractionSettings, FeatureOptions, Preset
from anomaly.files import check_writable_folder, ensure_folder, name_problem
from anomaly.hardware import resolve_device
from anomaly.live.alerts import AlertTracker
from anomaly.live.causal import CausalScores, ScoreWindow
from anomaly.live.pace import Pace
from anomaly.live.source import RTSP_TRANSPORTS, Source, open_source, source_of
from anomaly.live.stream import Snippet, SnippetStream, to_stderr
from anomaly.precision import AUTO

PathLike = Union[str, Path]
Features = Callable[[np.ndarray], np.ndarray]  # one clip, uint8 16 h w 3 -> its features N C
DEFAULT_REPORT_FOLDER = Path("output/watch")  # where the files go when the lines go to standard output


@dataclass
class WatchResult:
    """What a watch scored: the snippets (without their frames) and their scores, in order; the alerts started."""

    scored: List[Snippet] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)
    alerts: int = 0

    def frame_scores(self, frames: int) -> np.ndarray:
        """One score per frame of the first ``frames`` of the stream: its snippet's, NaN where no snippet was
        scored (dropped, or not scored yet)."""
        scores = np.full(frames, np.nan)
        for snippet, score in zip(self.scored, self.scores):
            scores[snippet.first_frame : snippet.first_frame + snippet.frames] = score
        return scores

    @property
    def frames_scored(self) -> int:
        """The frames up to the end of the last snippet scored."""
        return max((snippet.first_frame + snippet.frames for snippet in self.scored), default=0)


class Watch:
    """Scores a :class:`SnippetStream` as it comes: ``features`` of each snippet's clip (the network), causal scores
    by ``score_window`` (``CausalScores``), alerts (``AlertTracker``); each line written by ``write_line`` at once.
    ``precision``: what the network and ``score_window`` run, recorded in every snippet's line. ``pace``: given
    every snippet's times from a live stream, to say once whether the watch keeps up (``anomaly.live.pace``). Every
    setting is checked here, before anything is read or written (one-line InputError)."""

    def __init__(self, features: Features, score_window: ScoreWindow, window: int = 16, lookahead: int = 0,
                 threshold: float = 0.5, min_snippets: int = 3, precision: Optional[str] = None,
                 pace: Optional[Pace] = None):  # fmt: skip
        self.features = features
        self.precision = precision
        self.pace = pace
        self.causal = CausalScores(score_window, window, lookahead)
        self.alerts = AlertTracker(threshold, min_snippets)
        self.result = WatchResult()
        self._pushed: List[Snippet] = []  # every snippet given to CausalScores, in order, without its clip
        self._unreported = 0  # snippets dropped since the last line

    def run(self, stream: SnippetStream, write_line: Callable[[Dict], None]) -> WatchResult:
        """Score every snippet of ``stream`` until it ends (then the scores still waiting for their lookahead, on
        the snippets there are). An interruption propagates: ``result`` holds what was scored and written."""
        pace = self.pace if stream.live else None  # a file read at its own pace has no rate to keep up with
        for snippet, dropped in stream:
            self._unreported += dropped
            started = time.perf_counter()
            features = torch.from_numpy(self.features(snippet.clip))
            network_done = time.perf_counter()
            self._pushed.append(replace(snippet, clip=None))
            due = self.causal.push(features)
            if pace is not None and due:  # a snippet in, a score out: the steady state (a lookahead fills first)
                pace.add(network_done - started, time.perf_counter() - network_done, stream.frame_rate)
            for index, score in due:
                self._write(index, score, write_line)
        for index, score in self.causal.finish():
            self._write(index, score, write_line)
        if self.alerts.active and self.result.scored:  # an event still going when the stream ends ends with it
            last = self.result.scored[-1]
            self.alerts.active = False
            write_line({"alert": "end", "time_s": round(last.end_s, 4), "snippet": last.index + 1,
                        "stream_ended": True})
        return self.result

    def _write(self, index: int, score: float, write_line: Callable[[Dict], None]) -> None:
        snippet = self._pushed[index]
        # Kept before its line is written: a report written after an interruption has every snippet of a line.
        self.result.scored.append(snippet)
        self.result.scores.append(score)
        line = {"snippet": snippet.index, "start_s": round(snippet.start_s, 4), "end_s": round(snippet.end_s, 4),
                "score": score, "latency_ms": round(1000 * (time.monotonic() - snippet.decoded_at), 1)}
        if self.precision is not None:
            line["precision"] = self.precision
        if self._unreported:
            line["dropped"], self._unreported = self._unreported, 0
        write_line(line)
        alert = self.alerts.update(snippet.index, snippet.start_s, score)
        if alert is not None:
            self.result.alerts += alert.kind == "start"
            write_line({"alert": alert.kind, "time_s": round(alert.time_s, 4), "snippet": alert.snippet})


class JsonLines:
    """The lines of a watch, one JSON object each, flushed one by one: to a file, or to standard output (``-``).

    After a line that cannot be written (the reader of standard output went away, ``s3r watch ... | head -1``; a
    full disk) no line is written: ``failure`` says why, and ``on_failure`` is called (the watch halts its stream
    for that reason, says it in its last line on standard error and still writes its files)."""

    def __init__(self, output: PathLike, on_failure: Callable[[], None]):
        self.output = output
        self.on_failure = on_failure
        self.failure = ""
        self.file: Optional[TextIO] = None

    def open(self) -> "JsonLines":
        if str(self.output) == "-":
            self.file = sys.stdout
            return self
        try:
            self.file = open(self.output, "w", encoding="utf-8")
        except OSError as error:
            raise InputError(self.output, f"cannot be written ({error.strerror or error})") from None
        return self

    def __call__(self, record: Dict) -> None:
        if self.failure:
            return
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as error:
            where = "standard output" if self.file is sys.stdout else str(self.output)
            self.failure = f"the lines could not be written to {where} ({error.strerror or error})"
            self._discard()
            self.on_failure()

    def _discard(self) -> None:
        """Drop what the failed file still buffers, so that no later flush (at close, at exit) fails again."""
        if self.file is sys.stdout:  # Python flushes standard output again at exit: let that go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        else:
            try:
                self.file.close()
            except OSError:
                pass  # the same failure, already said

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout and not self.failure:
            self.file.close()


def report_folder(output: PathLike, report_dir: Optional[PathLike]) -> Path:
    """Where the CSV, PNG and page go: ``report_dir``, else beside the JSON lines (``DEFAULT_REPORT_FOLDER`` when
    they go to standard output)."""
    if report_dir is not None:
        return Path(report_dir)
    return DEFAULT_REPORT_FOLDER if str(output) == "-" else Path(output).parent


def watch(
    source: str,
    options: FeatureOptions,
    detector: DetectorFiles,
    output: PathLike = "-",
    window: int = 16,
    lookahead: int = 0,
    threshold: float = 0.5,
    min_snippets: int = 3,
    timeout: float = 10.0,
    realtime: bool = False,
    reconnect: bool = False,
    report_dir: Optional[PathLike] = None,
    rtsp_transport: str = "tcp",
    log: Callable[[str], None] = to_stderr,
) -> int:
    """Watch ``source`` (``anomaly.live.source``) with ``detector`` on features made with ``options`` (its preset
    and crops: the detector's when None; a stream is scored one clip at a time as it comes, so its ``batch_size``
    and ``accept_partial`` do not apply): the lines to ``output`` (a file, or ``-``), the CSV, PNG and page to
    ``report_folder``.

    Every argument is checked (``output`` and the files must be writable files, not folders) before a model is
    loaded, and the source opened before anything is written: a one-line InputError otherwise. Returns 0 when the
    stream ended (its end, ``timeout`` seconds without data, or the lines could no longer be written: their reader
    went away), 1 when no snippet could be scored or the stream ended on a failure (it broke, or its frames were
    refused; said in one line). SIGINT and SIGTERM propagate, after the lines are flushed and the files written.
    Whatever else is raised, the decoding thread is stopped and the source closed first.
    """
    check_range(timeout, "--timeout", above=0, fix="seconds without data after which the stream is over")
    check_choice(rtsp_transport, RTSP_TRANSPORTS, "--rtsp_transport")
    options.check()
    spec = source_of(source)
    if realtime and spec.kind != "file":
        raise InputError(spec.shown, "--realtime paces a video file by its timestamps; this source comes at its own "
                         "pace")
    if reconnect and not spec.reopens:
        raise InputError(spec.shown, "--reconnect opens a URL, a device or a FIFO again; a file or standard input "
                         "cannot continue where it broke")
    folder = report_folder(output, report_dir)
    files = CurveFiles.of(folder, spec.name)
    for path in ([] if str(output) == "-" else [Path(output)]) + list(files):
        check_writable_folder(path.parent)
        problem = name_problem(path) or ("is a folder, not a file" if path.is_dir() else "")
        if not problem and path == Path(output) and path.exists() and not os.access(path, os.W_OK):
            problem = "cannot be written (permission denied)"  # the others are replaced, as their folder allows
        if problem:
            raise InputError(path, problem)
    torch_device = resolve_device(options.network_device, "live detection")
    models = open_models(options, detector, torch_device)
    network = models.network
    recipe = models.features
    settings, precision_note = ExtractionSettings.made_by(network, recipe.preset, recipe.num_crops, recipe.backbone,
                                                          recipe.frames, options.precision, torch_device)  # fmt: skip
    precision = settings.precision
    chosen_preset, crops = PRESETS[settings.preset], settings.num_crops
    extractor = network.runner(torch_device, precision, settings.frames, None, "auto", log)
    if precision_note:
        log(precision_note)
    bf16_runs = network.resolve_precision(AUTO, torch_device)[0] == "bf16"  # natively, by this runtime
    pace = Pace(crops, precision, bf16_runs, lambda line: log(f"{spec.shown}: {line}"))
    live = Watch(lambda clip: extractor(clip[None], chosen_preset, crops)[0],
                 models.scorer(precision, window + lookahead), window, lookahead, threshold, min_snippets, precision,
                 pace)  # fmt: skip
    stream = open_stream(spec, chosen_preset, timeout, realtime, reconnect, rtsp_transport, log)
    features = features_description(settings)
    interrupted = False
    lines = JsonLines(output, lambda: stream.halt(lines.failure))
    try:  # whatever happens from here on, the decoding thread is stopped and the source closed
        for needed in {folder} | (set() if str(output) == "-" else {Path(output).parent}):
            ensure_folder(needed)
        lines.open()
        try:
            live.run(stream.start(), lines)
        except (KeyboardInterrupt, Interrupted) as interruption:
            interrupted = True
            number = interruption.signal_number if isinstance(interruption, Interrupted) else signal.SIGINT
            stream.halt(f"interrupted by {signal.Signals(number).name}")
            finish(live.result, stream, spec, files, threshold, lines, features, log)
            raise
        return finish(live.result, stream, spec, files, threshold, lines, features, log)
    finally:
        # After an interruption only the stop request: joining the thread could wait for a network read, and
        # closing the container under it would pull the frames from under FFmpeg. The process ends with it.
        stream.close(wait=not interrupted)
        lines.close()


def open_stream(source: Source, preset: Preset, timeout: float = 10.0, realtime: bool = False,
                reconnect: bool = False, rtsp_transport: str = "tcp",
                log: Callable[[str], None] = to_stderr) -> SnippetStream:  # fmt: skip
    """``source`` opened (a one-line InputError when it cannot be) as a :class:`SnippetStream`, not started."""
    stop = threading.Event()
    opened = open_source(source, timeout, stop, rtsp_transport)
    return SnippetStream(opened, source, preset, stop, lambda: open_source(source, timeout, stop, rtsp_transport),
                         realtime, timeout, reconnect, log)  # fmt: skip


def finish(result: WatchResult, stream: SnippetStream, source: Source, files: CurveFiles, threshold: float,
           lines: JsonLines, features: str, log: Callable[[str], None]) -> int:  # fmt: skip
    """The last line, the files of what was scored (``features``: ``features_description`` of what made the
    features, on the page), one line on ``log``; the exit status (see ``watch``)."""
    end = stream.end
    dropped = stream.queue.dropped
    lines({"end": end, "frames": stream.frames, "snippets": len(result.scored), "dropped": dropped,
           "alerts": result.alerts})
    if not result.scored:
        log(f"{source.shown}: no snippet was scored: {end}")
        return 1
    frames = result.frames_scored
    times = np.array(stream.frame_times[:frames], dtype=np.float64)
    write_curve_files(files, result.frame_scores(frames), threshold, source.shown, stream.frame_rate, times=times,
                      video=source.video, features=features)
    counts = f"{len(result.scored)} snippets scored" + (f", {dropped} dropped" if dropped else "")
    alerts = f"{result.alerts} alert" + ("" if result.alerts == 1 else "s")
    log(f"{source.shown}: {end}: {counts}, {alerts}; wrote {files.csv}, {files.picture}, {files.page}")
    return 1 if stream.failed else 0
