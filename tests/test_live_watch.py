"""s3r watch: streams fed in real time (a FIFO, a loopback UDP socket) scored as they come, equal to detection's
offline scores where the window covers the whole video; causality end to end; dropping under load from a live
source only; alerts; SIGINT; every bad input refused in one line before anything is written; the report page in
a real browser.

Real I3D (seeded weights, the centre crop) where the test is about the scores; elsewhere an injected network (the
``Watch`` constructor's ``features``), so that a slowed or paused one is a plain argument.
"""

import csv
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly.detection import DetectorFiles
from anomaly.engine.detector_file import FeatureSpec, save_detector
from anomaly.extraction import PRESETS, FeatureOptions
from anomaly.live.source import source_of
from anomaly.live import watch as live_watch
from anomaly.live.pace import MEASURED_SNIPPETS, WARMUP_SNIPPETS, Pace
from anomaly.live.watch import Watch, open_stream
from anomaly.models.s3r import S3R
from tests.browser import PageParts, console_errors, open_page
from tests.conftest import REPO, run_tool
from tests.extraction_helpers import make_video, write_frames, write_picture, write_seeded_weights
from tests.live_helpers import free_udp_port, send_paced, udp_port_bound
from tests.browser import curve, video_ready, webm_codec

pytestmark = pytest.mark.realtime  # streams paced in real time: run alone

FPS = 25
FRAMES = 56  # 3 snippets and a tail of 8 frames, loop-padded as detection pads it: 4 snippets
STARTS = [0.0, 0.64, 1.28, 1.92]
ENDS = [0.64, 1.28, 1.92, 2.24]  # the tail ends with its last frame: 55 / 25 s + one frame


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("watch")
    weights = write_seeded_weights(folder)
    torch.manual_seed(0)
    state = S3R(2048).state_dict()
    # The seeded I3D features are large and would saturate an untrained S3R's scores at 0; a smaller last layer
    # gives scores around 0.06 that differ from snippet to snippet.
    state["video_classifier.6.weight"].mul_(0.01)
    state["video_classifier.6.bias"].zero_()
    detector = folder / "cameras.detector.pth"
    atoms = torch.from_numpy(np.random.default_rng(0).random((8, 2048), dtype=np.float32))
    save_detector(detector, state, atoms, FeatureSpec("i3d", "rtfm", 1, 2048), "cameras", "AUC", 0.9, 1)
    video = make_video(folder / "street.ts", FRAMES, 64, 48, fps=FPS)  # MPEG-TS, as cameras send
    return dict(folder=folder, weights=weights, detector=detector, video=video)


def watch(inputs, source, output, *extra):
    arguments = (source, "--detector", inputs["detector"], "--weights", inputs["weights"], "--output", output, *extra)
    return run_tool("watch.py", *map(str, arguments))


def read_lines(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def offline(inputs, tmp_path_factory):
    """Detection's scores of the whole video (s3r detect), one per snippet."""
    output = tmp_path_factory.mktemp("offline")
    status, _, err = run_tool("detect_anomalies.py", str(inputs["video"]), "--detector", str(inputs["detector"]),
                              "--weights", str(inputs["weights"]), "--output", str(output), "--batch_size", "1",
                              "--no_progress")  # fmt: skip
    assert status == 0, err
    with open(output / "street_scores.csv") as file:
        frames = [float(row["score"]) for row in csv.DictReader(file)]
    return frames[::16]


def check_snippet_lines(lines, offline):
    snippets = [line for line in lines if "snippet" in line and "alert" not in line]
    assert [line["snippet"] for line in snippets] == [0, 1, 2, 3]
    assert [line["start_s"] for line in snippets] == pytest.approx(STARTS)
    assert [line["end_s"] for line in snippets] == pytest.approx(ENDS)
    assert all(line["latency_ms"] > 0 and "dropped" not in line for line in snippets)
    assert all(line["precision"] == "fp32" for line in snippets)  # what the network ran, in every line
    # --window 64 --lookahead 8: every snippet's window is the whole video, so each score is the offline one.
    assert [line["score"] for line in snippets] == pytest.approx(offline, abs=1e-6)
    assert len(set(offline)) == 4  # the scores differ: the equality says something


def test_a_fifo_fed_in_real_time_is_scored_as_it_comes_and_equals_offline_where_the_window_covers_it(
    inputs, offline, tmp_path
):
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    sender = send_paced(inputs["video"], str(fifo))
    output = tmp_path / "out" / "camera.jsonl"
    status, out, err = watch(inputs, fifo, output, "--window", "64", "--lookahead", "8", "--timeout", "5")
    sender.join()
    assert sender.error is None and status == 0, err
    lines = read_lines(output)
    check_snippet_lines(lines, offline)
    assert lines[-1] == {"end": "end of stream", "frames": FRAMES, "snippets": 4, "dropped": 0, "alerts": 0}
    assert err == (f"{fifo}: end of stream: 4 snippets scored, 0 alerts; wrote {tmp_path / 'out' / 'camera_scores.csv'}"
                   f", {tmp_path / 'out' / 'camera_scores.png'}, {tmp_path / 'out' / 'camera_report.html'}\n")
    with open(tmp_path / "out" / "camera_scores.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["time_s"]) for row in rows] == pytest.approx(np.arange(FRAMES) / FPS)  # the stream's times
    assert [float(row["score"]) for row in rows] == pytest.approx(np.repeat(offline, 16)[:FRAMES], abs=1e-6)
    page = PageParts((tmp_path / "out" / "camera_report.html").read_text())
    assert page.texts["features"] == "I3D features: --preset rtfm, 1 crop, fp32"


def test_a_udp_mpeg_ts_stream_on_loopback_is_scored_until_it_goes_quiet(inputs, offline, tmp_path):
    port = free_udp_port()
    sender = send_paced(inputs["video"], f"udp://127.0.0.1:{port}?pkt_size=1316", ready=lambda: udp_port_bound(port))
    output = tmp_path / "udp.jsonl"
    status, _, err = watch(inputs, f"udp://127.0.0.1:{port}", output, "--window", "64", "--lookahead", "8",
                           "--timeout", "1")  # fmt: skip
    sender.join()
    assert sender.error is None and status == 0, err
    lines = read_lines(output)
    check_snippet_lines(lines, offline)
    assert lines[-1] == {"end": "no data for --timeout 1 s", "frames": FRAMES, "snippets": 4, "dropped": 0,
                         "alerts": 0}  # fmt: skip
    assert (tmp_path / f"127.0.0.1_{port}_report.html").is_file()  # named from the URL


# ---------------------------------------------------------------------------------------------------------------
# The loop, with an injected network
# ---------------------------------------------------------------------------------------------------------------


def brightness(clip: np.ndarray) -> np.ndarray:
    """A stand-in network: a clip's mean brightness in [0, 1] as one crop of one feature."""
    return np.array([[clip.mean() / 255]], dtype=np.float32)


def mean_score(video: torch.Tensor) -> torch.Tensor:
    """A stand-in window scoring: each snippet's own feature (N T C -> T)."""
    return video.mean(dim=(0, 2))


def window_mean_score(video: torch.Tensor) -> torch.Tensor:
    """A stand-in scoring in which every score depends on the whole window, as S3R's does."""
    return video.mean(dim=(0, 2)) + video.mean()


def lossless_video(path: Path, levels, fps: int = FPS) -> Path:
    """16 frames of one grey level per snippet, lossless (FFV1): decoded exactly as drawn."""
    frames = [np.full((48, 64, 3), level, np.uint8) for level in levels for _ in range(16)]
    return write_frames(path, frames, "ffv1", "yuv420p", fps)


def run_watch(path: Path, features=brightness, score=mean_score, **settings):
    """Watch the file ``path`` with the stand-ins; (the lines written, the stream)."""
    stream = open_stream(source_of(str(path)), PRESETS["rtfm"])
    lines = []
    Watch(features, score, **settings).run(stream.start(), lines.append)
    stream.close()
    return lines, stream


def test_no_score_changes_when_later_snippets_change(tmp_path):
    """--lookahead 0: snippet t is scored on snippets t - 3 .. t only, so two videos that differ from snippet 3 on
    give the first three the same scores, through the whole pipeline."""
    first, _ = run_watch(lossless_video(tmp_path / "a.mkv", [10, 60, 110, 160, 210]), score=window_mean_score,
                         window=4)  # fmt: skip
    second, _ = run_watch(lossless_video(tmp_path / "b.mkv", [10, 60, 110, 250, 0]), score=window_mean_score,
                          window=4)  # fmt: skip
    assert [line["score"] for line in first[:3]] == [line["score"] for line in second[:3]]
    assert first[3]["score"] != second[3]["score"] and first[4]["score"] != second[4]["score"]


def test_alerts_start_and_end_with_hysteresis(tmp_path):
    levels = [25, 230, 25, 230, 230, 230, 25, 230, 25, 25, 25]  # scores 0.1 and 0.9
    lines, _ = run_watch(lossless_video(tmp_path / "events.mkv", levels), threshold=0.5, min_snippets=2)
    alerts = [line for line in lines if "alert" in line]
    assert alerts == [{"alert": "start", "time_s": 1.92, "snippet": 3}, {"alert": "end", "time_s": 5.12, "snippet": 8}]
    assert lines.index(alerts[0]) == 5 and lines.index(alerts[1]) == 11  # each right after the line that made it


def test_an_event_still_going_at_the_end_of_the_stream_ends_with_it(tmp_path):
    lines, _ = run_watch(lossless_video(tmp_path / "open.mkv", [25, 230, 230, 230]), threshold=0.5, min_snippets=2)
    alerts = [line for line in lines if "alert" in line]
    assert alerts == [{"alert": "start", "time_s": 0.64, "snippet": 1},
                      {"alert": "end", "time_s": 2.56, "snippet": 4, "stream_ended": True}]
    assert lines[-1] == alerts[-1]


class PausedNetwork:
    """A network that falls behind: its first snippet takes until the stream has been decoded to its end."""

    def __init__(self):
        self.stream = None

    def for_stream(self, stream):
        self.stream = stream
        return self

    def __call__(self, clip):
        while not self.stream.end:  # set by the decoding thread once every snippet has been made
            time.sleep(0.01)
        return brightness(clip)


def test_a_live_source_drops_whole_snippets_when_the_network_falls_behind(tmp_path):
    """--realtime makes a file a live source: while the network holds its first snippet (snippet 0, or a later one
    if the network came late), the queue (2 snippets) keeps the newest, 4 and 5, and drops the others whole, each
    counted in the line after it, whatever the timing."""
    video = lossless_video(tmp_path / "fast.mkv", [10, 20, 30, 40, 50, 60], fps=200)
    network = PausedNetwork()
    stream = open_stream(source_of(str(video)), PRESETS["rtfm"], realtime=True)
    lines = []
    Watch(network.for_stream(stream), mean_score, window=4).run(stream.start(), lines.append)
    stream.close()
    scored = [line["snippet"] for line in lines]
    assert scored == sorted({scored[0], 4, 5})
    assert lines[0].get("dropped", 0) == scored[0]  # the snippets before the first one the network took
    assert sum(line.get("dropped", 0) for line in lines) == stream.queue.dropped == 6 - len(scored) > 0


def test_a_file_read_at_its_own_pace_is_never_dropped_from(tmp_path):
    video = lossless_video(tmp_path / "file.mkv", [10, 20, 30, 40, 50, 60], fps=200)

    def slow(clip):
        time.sleep(0.1)
        return brightness(clip)

    lines, stream = run_watch(video, features=slow, window=4)
    assert [line["snippet"] for line in lines] == [0, 1, 2, 3, 4, 5]
    assert not any("dropped" in line for line in lines) and stream.queue.dropped == 0


PACE_LINE = (r"scoring \d+\.\d\d snippets/s; the stream brings 6\.25/s \(100 fps\): a snippet takes [\d,]+ ms in fp32 "
             r"\(the network [\d,]+ with 1 crop, S3R [\d,]+\): (keeping up|falling behind, .*)")


def test_a_live_source_says_once_whether_the_watch_keeps_up(tmp_path):
    """After its first snippets (the warm-up, then the measured ones), in one line; the numbers are this machine's,
    so only the line's form is checked."""
    said = []
    video = lossless_video(tmp_path / "live.mkv", [10, 20, 30] * 4, fps=100)
    stream = open_stream(source_of(str(video)), PRESETS["rtfm"], realtime=True)  # live: paced by its timestamps
    lines = []
    Watch(brightness, mean_score, window=4, pace=Pace(1, "fp32", False, said.append)).run(stream.start(), lines.append)
    stream.close()
    assert len(lines) >= WARMUP_SNIPPETS + MEASURED_SNIPPETS  # enough snippets reached the network
    assert len(said) == 1 and re.fullmatch(PACE_LINE, said[0]), said


def test_a_file_read_at_its_own_pace_has_no_rate_to_keep_up_with(tmp_path):
    said = []
    video = lossless_video(tmp_path / "file.mkv", [10, 20, 30] * 4, fps=100)
    lines, _ = run_watch(video, window=4, pace=Pace(1, "fp32", False, said.append))
    assert len(lines) == 12 and said == []


# ---------------------------------------------------------------------------------------------------------------
# Interrupted; refused
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_flushes_the_lines_and_writes_the_report(inputs, tmp_path, signal_number):
    video = make_video(tmp_path / "long.ts", 240, 64, 48, fps=FPS)  # 9.6 s, paced by --realtime
    arguments = [sys.executable, str(REPO / "tools" / "watch.py"), str(video), "--realtime", "--output", "-",
                 "--report_dir", str(tmp_path / "report"), "--detector", str(inputs["detector"]),
                 "--weights", str(inputs["weights"])]  # fmt: skip
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    first = process.stdout.readline()  # the first snippet's line: the watch is under way
    process.send_signal(signal_number)
    rest, err = process.communicate(timeout=120)
    name = signal.Signals(signal_number).name
    assert process.returncode == 128 + signal_number, err  # 130, 143
    lines = [json.loads(line) for line in (first + rest).splitlines()]  # every line whole
    assert lines[0]["snippet"] == 0 and lines[-1]["end"] == f"interrupted by {name}"
    scored = [line for line in lines if "snippet" in line and "alert" not in line]
    assert lines[-1]["snippets"] == len(scored) < 15
    assert err.splitlines()[-1] == f"s3r watch: interrupted by {name}"
    with open(tmp_path / "report" / "long_scores.csv") as file:  # every frame up to the last snippet scored
        assert len(list(csv.DictReader(file))) == 16 * (scored[-1]["snippet"] + 1)
    assert (tmp_path / "report" / "long_scores.png").is_file() and (tmp_path / "report" / "long_report.html").is_file()


def test_when_the_reader_of_the_lines_goes_away_the_watch_stops_and_still_writes_its_files(inputs, tmp_path):
    """``s3r watch ... --output - | head -1``: the next line finds no reader; the watch stops there, says why in its
    one line, writes the report of what it scored, and ends as a stream that ended does."""
    video = make_video(tmp_path / "long.ts", 240, 64, 48, fps=FPS)  # 9.6 s, paced by --realtime
    report = tmp_path / "report"
    arguments = [sys.executable, str(REPO / "tools" / "watch.py"), str(video), "--realtime", "--output", "-",
                 "--report_dir", str(report), "--detector", str(inputs["detector"]),
                 "--weights", str(inputs["weights"])]  # fmt: skip
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert json.loads(process.stdout.readline())["snippet"] == 0
    process.stdout.close()  # what head does after its line
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    # A live source: once enough snippets are scored, whether the watch keeps up is said first (a line of its own).
    said = re.fullmatch(rf"({re.escape(str(video))}: scoring .*\n)?"
                        rf"{re.escape(str(video))}: the lines could not be written to standard output \(Broken pipe\)"
                        rf": \d+ snippets scored(, \d+ dropped)?, 0 alerts; wrote {re.escape(str(report / 'long_scores.csv'))}, "
                        rf"{re.escape(str(report / 'long_scores.png'))}, {re.escape(str(report / 'long_report.html'))}\n",
                        err)  # fmt: skip
    assert said, err
    with open(report / "long_scores.csv") as file:  # the frames up to the last snippet scored, not the video's
        assert 16 <= len(list(csv.DictReader(file))) < 240
    assert (report / "long_report.html").is_file()


def test_a_failure_inside_the_watch_stops_decoding_and_closes_the_source(inputs, tmp_path, monkeypatch):
    """Anything raised while watching (here a full disk) leaves no decoding thread behind, nor the source open."""
    streams, closed = [], []

    def recorded(*arguments, **settings):
        stream = open_stream(*arguments, **settings)
        real_close = stream._opened.close
        stream._opened.close = lambda: closed.append(real_close())
        streams.append(stream)
        return stream

    def failing(self, stream, write_line):
        next(iter(stream))  # decoding is under way: a file read at its own pace waits for the network
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(live_watch, "open_stream", recorded)
    monkeypatch.setattr(Watch, "run", failing)
    video = make_video(tmp_path / "long.ts", 160, 64, 48, fps=FPS)
    with pytest.raises(OSError, match="No space left on device"):
        live_watch.watch(str(video), FeatureOptions(inputs["weights"], preset=None, num_crops=None),
                         DetectorFiles(inputs["detector"]), tmp_path / "lines.jsonl")
    (stream,) = streams
    assert not stream._thread.is_alive() and closed == [None]


@pytest.mark.parametrize("text, kind, name, shown", [
    ("rtsp://cam.local:554/live/1", "url", "cam.local_554_live_1", "rtsp://cam.local:554/live/1"),
    ("rtsp://admin:secret@10.0.0.7:554/h264?channel=1", "url", "10.0.0.7_554_h264_channel_1",
     "rtsp://admin:***@10.0.0.7:554/h264?channel=1"),
    # Two channels of one recorder: files of their own.
    ("rtsp://dvr/cam/realmonitor?channel=1&subtype=0", "url", "dvr_cam_realmonitor_channel_1_subtype_0",
     "rtsp://dvr/cam/realmonitor?channel=1&subtype=0"),
    ("rtsp://dvr/cam/realmonitor?channel=2&subtype=0", "url", "dvr_cam_realmonitor_channel_2_subtype_0",
     "rtsp://dvr/cam/realmonitor?channel=2&subtype=0"),
    ("http://cam/video.cgi?user=admin&pwd=s3cret&res=1", "url", "cam_video.cgi_user_admin_pwd_res_1",
     "http://cam/video.cgi?user=admin&pwd=***&res=1"),
    ("rtsp://cam/live?Password=s3cret;passwd=other", "url", "cam_live_Password_passwd",
     "rtsp://cam/live?Password=***;passwd=***"),
    ("udp://127.0.0.1:5000", "url", "127.0.0.1_5000", "udp://127.0.0.1:5000"),
])
def test_a_source_is_named_from_what_it_is_and_a_password_is_never_shown(text, kind, name, shown):
    source = source_of(text)
    assert (source.kind, source.name, source.shown) == (kind, name, shown)


STDIN_WATCH = """
import sys, time
import numpy as np
from anomaly.extraction import PRESETS
from anomaly.live.source import source_of
from anomaly.live.pace import MEASURED_SNIPPETS, WARMUP_SNIPPETS, Pace
from anomaly.live.watch import Watch, open_stream

def slow(clip):  # a network slower than the stream: a live source would drop snippets
    time.sleep(0.1)
    return np.array([[clip.mean() / 255]], dtype=np.float32)

source = source_of("-")
stream = open_stream(source, PRESETS["rtfm"])
lines = []
Watch(slow, lambda video: video.mean(dim=(0, 2)), window=4).run(stream.start(), lines.append)
stream.close()
print(source.kind, source.name, len(lines), stream.queue.dropped, stream.frames)
"""


@pytest.mark.parametrize("redirected", [True, False])
def test_standard_input_from_a_file_is_read_as_a_file_and_never_dropped_from(tmp_path, redirected):
    """``s3r watch - < video.ts`` is the file: every snippet scored, however slow the network; from a pipe it is a
    live source (dropped from when the network falls behind: not asserted here, it depends on the timing)."""
    video = make_video(tmp_path / "street.ts", 96, 64, 48, fps=FPS)  # 6 snippets
    command = [sys.executable, "-c", STDIN_WATCH]
    run = dict(capture_output=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    if redirected:
        with open(video, "rb") as stdin:
            done = subprocess.run(command, stdin=stdin, **run)
    else:
        done = subprocess.run(command, input=video.read_bytes(), **run)
    assert done.returncode == 0, done.stderr.decode()
    kind, name, scored, dropped, frames = done.stdout.decode().split()
    assert (kind, name, frames) == ("file" if redirected else "pipe", "stdin", "96")
    if redirected:
        assert (scored, dropped) == ("6", "0")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the probe is


@pytest.mark.parametrize("case", ["url", "malformed url", "device", "picture", "folder", "missing", "detector",
                                  "weights", "window", "realtime", "output"])
def test_bad_input_is_one_line_and_exit_status_2_before_anything_is_written(inputs, tmp_path, case):
    output, source = tmp_path / "out" / "lines.jsonl", str(inputs["video"])
    detector, weights, extra = inputs["detector"], inputs["weights"], []
    if case == "picture":
        source = str(write_picture(tmp_path / "clip.mp4", "PNG"))
        problem = f"{source}: not a video: a single picture (PNG image)"
    elif case == "folder":
        source = str(tmp_path / "street.mp4")
        os.mkdir(source)
        problem = f"{source}: is a folder, not a video file"
    elif case == "missing":
        source = str(tmp_path / "street.mp4")
        problem = (f"{source}: no such file, and not a URL (rtsp://, http://, udp://, ...), a capture device "
                   "(/dev/videoN) or - (standard input)")
    elif case == "url":
        source = f"rtsp://127.0.0.1:{closed_port()}/live"
        problem = f"{source}: cannot be opened (Connection refused)"
    elif case == "malformed url":
        source = "rtsp://admin:secret@[fe80::1/stream"
        problem = "rtsp://admin:***@[fe80::1/stream: not a valid URL (Invalid IPv6 URL)"
    elif case == "device":
        source = "/dev/video9"
        problem = "/dev/video9: no such capture device (is the camera connected? `ls /dev/video*` lists them)"
    elif case == "detector":
        detector = tmp_path / "notes.detector.pth"
        detector.write_text("not weights")
        problem = f"{detector}: not a readable checkpoint: truncated, corrupt or not a PyTorch file"
    elif case == "weights":
        weights = tmp_path / "missing.pth"
        problem = f"{weights}: weights file not found (i3d_r50_kinetics.pth from pytorch-resnet3d's release)"
    elif case == "window":
        extra = ["--window", "0"]
        problem = "--window must be an integer at least 1, not 0"
    elif case == "output":  # refused before the detector is read (this one does not exist)
        output, detector = tmp_path / "taken", tmp_path / "missing.detector.pth"
        output.mkdir()
        problem = f"{output}: is a folder, not a file"
    else:
        source, extra = f"udp://127.0.0.1:{closed_port()}", ["--realtime"]
        problem = f"{source}: --realtime paces a video file by its timestamps; this source comes at its own pace"
    status, out, err = run_tool("watch.py", source, "--detector", str(detector), "--weights", str(weights),
                                "--output", str(output), *extra)  # fmt: skip
    assert (status, out, err) == (2, "", f"s3r watch: {problem}\n")
    assert not (tmp_path / "out").exists()


def test_a_source_that_gives_no_frame_is_exit_status_1(inputs, tmp_path):
    """The first three MPEG-TS packets: the tables that declare the video stream, and the start of its first frame."""
    video = tmp_path / "cut.ts"
    video.write_bytes(inputs["video"].read_bytes()[: 3 * 188])
    status, _, err = watch(inputs, video, tmp_path / "cut.jsonl")
    assert (status, err) == (1, f"{video}: no snippet was scored: end of stream; no frames could be decoded\n")
    assert read_lines(tmp_path / "cut.jsonl") == [{"end": "end of stream; no frames could be decoded", "frames": 0,
                                                   "snippets": 0, "dropped": 0, "alerts": 0}]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The page, in a real browser
# ---------------------------------------------------------------------------------------------------------------


def test_the_report_page_of_a_watch_opens_in_the_browser(inputs, tmp_path, browser):
    video = make_video(tmp_path / "yard.webm", 40, 64, 64, fps=20, codec=webm_codec())
    status, _, err = watch(inputs, video, tmp_path / "out" / "yard.jsonl", "--window", "4")
    assert status == 0, err
    open_page(browser, tmp_path / "out" / "yard_report.html")
    video_ready(browser)  # the watched file, linked relative to the page
    assert curve(browser)[1] == 40  # a point per frame
    assert console_errors(browser) == []


# ---------------------------------------------------------------------------------------------------------------
# A stream that breaks
# ---------------------------------------------------------------------------------------------------------------


class TcpCamera:
    """A TCP server sending a video's bytes (MPEG-TS) to whoever connects (``tcp://127.0.0.1:<port>``). Its first
    connection stops once ``broken_after()`` holds, after 70 % of the bytes: with a reset (``reset``, as a camera
    that reboots gives) or closed as a stream's end; the second sends the whole video and closes (the end of the
    stream); then the server is gone (connection refused)."""

    def __init__(self, video: Path, broken_after, reset: bool = True):
        self.data = video.read_bytes()
        self.broken_after = broken_after
        self.reset = reset
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        with self.server:
            connection, _ = self.server.accept()
            connection.sendall(self.data[: int(0.7 * len(self.data)) // 188 * 188])
            while not self.broken_after():
                time.sleep(0.01)
            if self.reset:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            connection, _ = self.server.accept()
            with connection:
                connection.sendall(self.data)


BROKE = re.compile(r"^(tcp://127\.0\.0\.1:\d+): the stream broke after (\d+) frames \(Connection reset by peer\)")
ENDED = re.compile(r"^(tcp://127\.0\.0\.1:\d+): the stream ended after (\d+) frames")


def watch_camera(camera_of, video, timeout=2):
    """Watch a :class:`TcpCamera` with --reconnect, its first connection stopped once 6 snippets are made; (what
    was said, the lines, the stream)."""
    stream = None
    camera = camera_of(lambda: stream is not None and stream.frames >= 96)
    said = []
    stream = open_stream(source_of(camera.url), PRESETS["rtfm"], timeout=timeout, reconnect=True, log=said.append)
    lines = []
    Watch(brightness, mean_score, window=4).run(stream.start(), lines.append)
    stream.close()
    return camera, said, lines, stream


@pytest.mark.parametrize("reset", [True, False])
def test_with_reconnect_a_url_that_breaks_or_ends_is_opened_again_until_it_cannot_be(inputs, tmp_path, reset):
    """--reconnect: a URL that breaks (a reset) or ends (its server closed it) is opened again and the watch goes on,
    times and all; once it cannot be opened within --timeout seconds the watch ends, a failure."""
    video = make_video(tmp_path / "long.ts", 160, 64, 48, fps=FPS)
    camera, said, lines, stream = watch_camera(lambda after: TcpCamera(video, after, reset), video)
    first = (BROKE if reset else ENDED).match(said[0])
    before = int(first.group(2))  # frames of the first connection: those of its last, broken snippet are lost
    assert said == [f"{first.group(0)}; reconnecting (--reconnect)", f"{camera.url}: reconnected",
                    f"{camera.url}: the stream ended after {before + 160} frames; reconnecting (--reconnect)"]
    assert (stream.end, stream.failed, stream.frames) == (
        f"the stream ended after {before + 160} frames; not opened again within --timeout 2 s", True, before + 160)
    made = before // 16 + 10
    assert lines[-1]["snippet"] == made - 1 and len(lines) + stream.queue.dropped == made
    starts = [line["start_s"] for line in lines]
    # Times go on after the break, by at least a frame: the second connection's frames come after the first's.
    assert starts == sorted(starts) and lines[-1]["end_s"] >= (before + 160) / FPS - 1e-9


def test_a_frame_size_change_ends_the_watch_in_one_line_after_scoring_the_frames_before_it(inputs, tmp_path):
    """Frames 41 on are wider: the 40 before are scored (2 snippets and a tail of 8), the refused frame is not
    counted, and the end says why; the watch is a failure (exit status 1)."""
    first, second = make_video(tmp_path / "a.ts", 40, 64, 48), make_video(tmp_path / "b.ts", 40, 96, 48, seed=1)
    video = tmp_path / "both.ts"
    video.write_bytes(first.read_bytes() + second.read_bytes())
    lines, stream = run_watch(video, window=4)
    assert [line["snippet"] for line in lines] == [0, 1, 2] and lines[-1]["end_s"] == pytest.approx(40 / FPS)
    assert (stream.end, stream.failed, stream.frames) == (
        "changes its frame size from 64x48 to 96x48 at frame 41: the rtfm preset crops one frame size per video",
        True, 40)


def test_without_reconnect_a_broken_stream_ends_the_watch_with_status_1(inputs, tmp_path):
    video = make_video(tmp_path / "long.ts", 160, 64, 48, fps=FPS)
    output = tmp_path / "broken.jsonl"
    camera = TcpCamera(video, broken_after=lambda: output.exists() and output.read_text().count("\n") >= 2)
    status, _, err = watch(inputs, camera.url, output, "--window", "4")
    assert status == 1
    end = read_lines(output)[-1]["end"]
    assert re.fullmatch(r"the stream broke after \d+ frames \(Connection reset by peer\)", end)
    # A fast machine scores enough snippets before the break to say whether it keeps up (a line of its own, first).
    *pace, last = err.splitlines()
    assert last.startswith(f"{camera.url}: {end}: ")  # why it ended, what was scored
    assert len(pace) <= 1 and all(line.startswith(f"{camera.url}: scoring ") for line in pace)
