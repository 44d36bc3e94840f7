"""A video's anomaly report as one self-contained HTML page: the video, its score curve, its segments.

The page needs no network and no server: its style, script and data are inline, the curve is inline SVG drawn by
the page's script from the embedded JSON, and the video is linked relative to the page's folder, so the page opens
from the file system (``file://``) and keeps working when its folder is moved together with the video.

What the page shows: the title and a summary line (number of segments, maximum score), with what made the features
(preset, crops, precision) when given; an HTML5 player; the score curve over time with the threshold line, the
ground truth shaded and a playhead that follows the video; and the segments above the threshold, each a button
that seeks the video to the segment's start. Clicking the curve seeks the video to the clicked time. Without a
video (none given, or the file missing when the page is opened) the page shows the curve and the segments, a note
instead of the player, and the playhead marks the last clicked time.

Times are the video's: each frame's own (``times``, a stream's timestamps, the CSV's) or f / fps, so that a
variable frame rate or a gap in a stream puts the curve, the segments, seeking and the playhead where the video and
the CSV have them; the x axis is in seconds, and seeking sets the video's clock to the axis's time.

The curve of a long video is drawn from at most ``MAX_POINTS`` points, each the highest score of a bucket of
consecutive frames (:func:`curve_points`), so that every peak survives; the segments are found on every frame.
Frames without a score (NaN: the snippets a live stream dropped when the network fell behind) are gaps in the curve.
"""

import html
import json
import math
import os
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import numpy as np

from anomaly.files import save_text
from anomaly.plotting import true_runs

PathLike = Union[str, Path]
MAX_POINTS = 2000  # the most points the curve is drawn from: a few thousand keep the page light for hours of video


def write_report_page(
    path: PathLike,
    *,
    title: str,
    scores: Sequence[float],
    threshold: float,
    fps: Optional[float] = None,
    times: Optional[Sequence[float]] = None,
    ground_truth: Optional[Sequence] = None,
    video: Optional[PathLike] = None,
    features: Optional[str] = None,
) -> Path:
    """Write the report page of one video to ``path`` (by convention ``<stem>_report.html``) atomically.

    ``scores``: one float per frame, shape (F,), F >= 1: frame f's anomaly score (``frame_scores`` of
    ``anomaly.detection``, or a live stream's scores so far), NaN for a frame that was not scored (a gap in the
    curve), at least one frame scored. ``threshold``: the segments are the runs of
    consecutive frames scoring strictly above it, as :func:`segments_above` finds them, each with its
    peak score. ``times``: each frame's time in seconds, shape (F,), non-decreasing (a stream's timestamps, which
    a variable frame rate or a reconnection makes uneven): the x axis, the segment list, seeking and the playhead
    are then in those times (frame f spans times[f] to times[f + 1], the last frame one frame duration: 1/fps, else
    the mean interval). ``fps``: frames per second of the video; without ``times``, frame f is at f/fps. Neither:
    the axis and the segments are in frames, and the page maps the video's time to frames by the video's duration
    (F frames over its length). ``ground_truth``: 0/1 per frame, shape (F,), 1 = anomalous; shaded
    on the curve. ``video``: the video file; the page links it relative to ``path``'s folder, so the file may be
    absent now (a recording still under way) and the page still opens without it. ``title``: shown as is (escaped).
    ``features``: what made the features the scores come from (their preset, crops and precision), shown under the
    summary (escaped).

    Raises ValueError (one line) for scores that are empty, not 1-D, infinite or all NaN, a ground truth of another length
    or with values other than 0 and 1, a non-finite threshold, an fps that is not a positive number, or times of
    another length, not finite or decreasing.
    Returns ``Path(path)``.
    """
    path = Path(path)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"scores must be one number per frame (a non-empty 1-D sequence), not shape {scores.shape}")
    infinite = np.flatnonzero(np.isinf(scores))
    if infinite.size:
        raise ValueError(f"scores must be finite (or NaN: not scored): frame {infinite[0]} scores "
                         f"{scores[infinite[0]]}")
    if np.isnan(scores).all():
        raise ValueError("scores must hold at least one scored frame: every one is NaN (not scored)")
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"the threshold must be a finite number, not {threshold}")
    fps = None if fps is None else float(fps)  # a container's rate may be a Fraction, which JSON cannot hold
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number (or None for an axis in frames), not {fps}")
    truth_runs: List[Tuple[int, int]] = []
    if ground_truth is not None:
        labels = np.asarray(ground_truth, dtype=np.float64)
        if labels.ndim != 1:
            raise ValueError(f"ground_truth must be one 0/1 per frame (1-D), not shape {labels.shape}")
        if len(labels) != len(scores):
            raise ValueError(f"ground_truth has {len(labels)} values for {len(scores)} scores: give one 0/1 per frame")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError("ground_truth must hold only 0 (normal) and 1 (anomalous) per frame")
        truth_runs = true_runs(labels == 1)
    axis = frame_axis(len(scores), fps, times)
    segments = segments_above(scores, threshold)
    frames, values = curve_points(scores)
    data = {
        "fps": fps,
        "frames": len(scores),
        "seconds": axis is not None,  # the x axis: seconds (the video's clock), else frames
        "end": float(axis[-1]) if axis is not None else len(scores),
        "threshold": threshold,
        "yRange": [min(0.0, float(np.nanmin(scores)), threshold), max(1.0, float(np.nanmax(scores)), threshold)],
        # Each drawn point's frame and its place on the x axis (its time): no more than MAX_POINTS of either.
        "curve": {"frames": frames.tolist(), "x": _at(axis, frames).tolist(),
                  "scores": [None if math.isnan(value) else value for value in values.tolist()]},  # null: a gap
        "truth": [[float(_at(axis, start)), float(_at(axis, stop))] for start, stop in truth_runs],
    }
    relative = None if video is None else relative_path(video, path.parent)
    page = _page(title, scores, threshold, fps, axis, segments, ground_truth is not None, relative, data, features)
    save_text(page, path)
    return path


def frame_axis(frames: int, fps: Optional[float], times: Optional[Sequence[float]]) -> Optional[np.ndarray]:
    """Where each frame starts on the x axis, and where the last one ends (``frames`` + 1 values, seconds), or None
    for an axis in frames (neither ``times`` nor ``fps``)."""
    if times is None:
        return None if fps is None else np.arange(frames + 1) / fps
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (frames,):
        raise ValueError(f"times must be one per frame: {times.shape} for {frames} scores")
    if not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise ValueError("times must be finite seconds that never decrease, one per frame")
    duration = 1 / fps if fps else ((times[-1] - times[0]) / (frames - 1) if frames > 1 else 0) or 1.0
    return np.append(times, times[-1] + duration)


def _at(axis: Optional[np.ndarray], frames):
    """The x axis's value at the start of ``frames`` (an index, or an array of them; ``frames`` = F: the end)."""
    return np.asarray(frames, dtype=np.float64) if axis is None else axis[frames]


class Segment(NamedTuple):
    """A run of consecutive frames scoring above a threshold: its first and last frame and its peak score."""

    first_frame: int
    last_frame: int
    peak: float

    def describe(self, axis: Optional[np.ndarray]) -> str:
        """Its span in seconds on ``axis`` (:func:`frame_axis`: where each frame starts, and the last ends), else in
        frames; and its peak."""
        if axis is not None:
            span = f"{axis[self.first_frame]:.2f}-{axis[self.last_frame + 1]:.2f} s"
        else:
            span = f"frames {self.first_frame}-{self.last_frame}"
        return f"{span} (peak {self.peak:.3f})"


def segments_above(scores: np.ndarray, threshold: float) -> List[Segment]:
    """Runs of frames scoring above ``threshold``, with their peak score: what the page lists and ``s3r detect``
    says."""
    return [Segment(start, stop - 1, float(scores[start:stop].max())) for start, stop in true_runs(scores > threshold)]


def curve_points(scores: Sequence[float], max_points: int = MAX_POINTS) -> Tuple[np.ndarray, np.ndarray]:
    """The (frames, scores) the page draws: every frame when there are at most ``max_points``; otherwise exactly
    ``max_points`` buckets of consecutive frames (their sizes differ by at most one), each drawn at the frame of its
    highest score (the first on ties) with that score, so that no peak is lost or moved. NaN scores (not scored)
    are passed over; a bucket of NaN alone is NaN, drawn at its first frame (a gap)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) <= max_points:
        return np.arange(len(scores)), scores
    starts = np.arange(max_points) * len(scores) // max_points
    peaks = np.fmax.reduceat(scores, starts)  # fmax: the larger of a number and NaN is the number
    bucket_of_frame = np.repeat(np.arange(max_points), np.diff(np.append(starts, len(scores))))
    at_peak = np.append(np.flatnonzero(scores == peaks[bucket_of_frame]), len(scores))
    first = at_peak[np.searchsorted(at_peak, starts)]
    return np.where(np.isnan(peaks), starts, first), peaks


def relative_path(video: PathLike, folder: PathLike) -> str:
    """``video``'s path from the page's ``folder``, '/' separated (the page's link is its percent-encoding)."""
    return os.path.relpath(os.path.abspath(video), os.path.abspath(folder)).replace(os.sep, "/")


def _time(seconds: float, long: bool) -> str:
    """A time as the page writes it: seconds, m:ss.ss or h:mm:ss.ss for a long video."""
    if not long:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:05.2f}" if hours else f"{minutes}:{rest:05.2f}"


def _span(first: int, last: int, axis: Optional[np.ndarray], long: bool) -> str:
    if axis is None:
        return f"frames {first}–{last}"
    return f"{_time(axis[first], long)} – {_time(axis[last + 1], long)}"


def json_for_script(data: dict) -> str:
    """``data`` as JSON that cannot end its <script> element or be read as markup (nor break older JavaScript)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for character in "<>&\u2028\u2029":
        text = text.replace(character, f"\\u{ord(character):04x}")
    return text


def _page(title: str, scores: np.ndarray, threshold: float, fps: Optional[float], axis: Optional[np.ndarray],
          segments: List[Segment], has_truth: bool, video: Optional[str], data: dict, features: Optional[str]) -> str:
    escape = html.escape
    long = axis is not None and axis[-1] >= 60
    peak_frame = int(np.nanargmax(scores))
    length = f"{len(scores)} frames"
    if axis is not None:
        length += f", {_time(axis[-1], long)}" + (f" at {fps:g} fps" if fps else "")
    count = f"{len(segments)} segment{'s' if len(segments) != 1 else ''}" if segments else "No segment"
    peak_at = _time(axis[peak_frame], long) if axis is not None else f"frame {peak_frame}"
    summary = f"{count} above the threshold {threshold:g} · max score {scores[peak_frame]:.3f} at {peak_at} · {length}"
    if video is None:
        player = ('<p class="note" id="no-video">No video was given with this report: the curve and the segments '
                  'alone.</p>')
    else:
        name = escape(video)
        player = (f'<video id="video" src="{escape(quote(video))}" controls muted preload="metadata"></video>\n'
                  f'<p class="caption" id="video-caption">{name}</p>\n'
                  f'<p class="note" id="video-missing" hidden>The video {name} could not be opened (moved, renamed '
                  f'or not written yet): the curve and the segments alone.</p>')
    if segments:
        items = "\n".join(
            f'<li><button type="button" data-first-frame="{first}" data-x="{float(_at(axis, first))!r}">'
            f'{escape(_span(first, last, axis, long))}</button>'
            f' <span class="peak">peak {peak:.3f}</span></li>'
            for first, last, peak in segments
        )
        segment_list = f'<ol id="segments">\n{items}\n</ol>'
    else:
        segment_list = f'<p class="note" id="segments-none">No frame scores above {threshold:g}.</p>'
    truth_legend = '<span class="key truth">ground truth</span>' if has_truth else ""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no request for /favicon.ico
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f'<header><h1 id="report-title">{escape(title)}</h1><p id="summary">{escape(summary)}</p>'
        + ("" if features is None else f'<p id="features">{escape(features)}</p>') + "</header>",
        "<main>",
        f'<section class="top"><div class="player">{player}</div>',
        f'<div class="segments"><h2>Segments above {threshold:g}</h2>{segment_list}</div></section>',
        '<section class="plot">',
        f'<div class="legend"><span class="key score">score</span><span class="key threshold">threshold '
        f'{threshold:g}</span>{truth_legend}<span class="key playhead">playhead '
        '<output id="playhead-time"></output></span></div>',
        '<svg id="curve" viewBox="0 0 1000 300" role="img" aria-label="anomaly score over time"></svg>',
        '<p class="hint">Click the curve or a segment to seek the video.</p>',
        "</section>",
        "</main>",
        f'<script type="application/json" id="report-data">{json_for_script(data)}</script>',
        f"<script>{_SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ])


_STYLE = """
body { margin: 0 auto; max-width: 1100px; padding: 16px 24px; color: #1d2733; background: #f6f7f9;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 15px; margin: 0 0 8px; }
#summary { margin: 0 0 16px; color: #4a5563; }
#features { margin: -12px 0 16px; font-size: 13px; color: #6b7685; }
.top { display: flex; flex-wrap: wrap; gap: 16px; margin-bottom: 16px; }
.player { flex: 1 1 420px; }
.segments { flex: 1 1 280px; max-height: 340px; overflow: auto; background: #fff; border: 1px solid #dde1e6;
            border-radius: 6px; padding: 12px 16px; }
video { width: 100%; max-height: 280px; background: #000; border-radius: 6px; }
.caption { margin: 4px 0 0; font-size: 13px; color: #4a5563; overflow-wrap: anywhere; }
.note { background: #fff8e1; border: 1px solid #f0d98c; border-radius: 6px; padding: 10px 14px; margin: 0;
        overflow-wrap: anywhere; }
ol { margin: 0; padding-left: 26px; }
li { margin: 2px 0; }
li button { font: inherit; color: #1557b0; background: none; border: 0; padding: 0; cursor: pointer;
            text-decoration: underline; }
.peak { color: #4a5563; font-size: 13px; }
.plot { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 10px 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 18px; font-size: 13px; color: #4a5563; }
.key::before { content: ""; display: inline-block; width: 18px; height: 0; margin-right: 6px;
               vertical-align: middle; border-top: 2px solid #1f6fd1; }
.key.threshold::before { border-top: 2px dashed #333; }
.key.truth::before { height: 10px; border: 0; background: rgba(220, 50, 47, 0.22); }
.key.playhead::before { width: 0; height: 12px; border-top: 0; border-left: 2px solid #e07b00; }
#curve { display: block; width: 100%; height: auto; cursor: crosshair; }
#curve text { font-size: 12px; fill: #4a5563; }
.hint { margin: 2px 0 0; font-size: 12px; color: #6b7685; }
"""

# The page's one script: draws the curve from the embedded JSON and wires the player, the curve and the segment
# buttons together. It builds no markup from text: labels are set as textContent.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var svg = document.getElementById("curve");
  var video = document.getElementById("video");
  var readout = document.getElementById("playhead-time");
  var box = {left: 56, top: 12, width: 926, height: 238};  // the plot area in the 1000 x 300 viewBox
  // The x axis: seconds on the video's clock (data.seconds: each drawn point at its frame's time), else frames.
  var xEnd = data.end;
  var yLow = data.yRange[0], yHigh = data.yRange[1];
  var videoUsable = Boolean(video);

  function x(value) { return box.left + box.width * value / xEnd; }
  function y(score) { return box.top + box.height * (yHigh - score) / (yHigh - yLow); }
  function add(name, attributes, text) {
    var element = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    if (text !== undefined) { element.textContent = text; }
    svg.appendChild(element);
    return element;
  }
  function step(span, most, candidates) {
    for (var i = 0; i < candidates.length; i++) { if (span / candidates[i] <= most) { return candidates[i]; } }
    return candidates[candidates.length - 1];
  }
  function decimalSteps() {
    var steps = [];
    for (var power = -3; power <= 10; power++) {
      [1, 2, 5].forEach(function (m) { steps.push(m * Math.pow(10, power)); });
    }
    return steps;
  }
  function decimals(stepSize) { return stepSize >= 1 ? 0 : Math.ceil(-Math.log10(stepSize) - 1e-9); }
  function pad(number) { return (number < 10 ? "0" : "") + number; }
  function clock(seconds, places) {
    var whole = Math.floor(seconds + 1e-9), hours = Math.floor(whole / 3600), minutes = Math.floor(whole / 60) % 60;
    var rest = seconds - 60 * Math.floor(whole / 60);
    var text = (rest < 10 ? "0" : "") + rest.toFixed(places);
    return hours ? hours + ":" + pad(minutes) + ":" + text : minutes + ":" + text;
  }
  var long = data.seconds && xEnd >= 60;
  function label(value, places) {
    if (!data.seconds) { return "frame " + Math.round(value); }
    return long ? clock(value, places) : value.toFixed(places) + " s";
  }

  add("rect", {x: box.left, y: box.top, width: box.width, height: box.height, fill: "#fff", id: "plot-area"});
  data.truth.forEach(function (run) {
    add("rect", {x: x(run[0]), y: box.top, width: x(run[1]) - x(run[0]),
                 height: box.height, fill: "rgba(220, 50, 47, 0.22)", "class": "truth"});
  });
  var timeSteps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                   7200, 10800, 21600, 43200, 86400];
  var xStep = step(xEnd, 8, !data.seconds ? decimalSteps().filter(function (s) { return s >= 1; }) : timeSteps);
  for (var i = 0; i * xStep <= xEnd + 1e-9; i++) {
    var tickX = x(i * xStep);
    add("line", {x1: tickX, x2: tickX, y1: box.top, y2: box.top + box.height, stroke: "#eef0f3"});
    add("line", {x1: tickX, x2: tickX, y1: box.top + box.height, y2: box.top + box.height + 5, stroke: "#8a94a3"});
    var tickLabel = !data.seconds ? String(Math.round(i * xStep))
                  : (long ? clock(i * xStep, 0) : (i * xStep).toFixed(decimals(xStep)));
    add("text", {x: tickX, y: box.top + box.height + 19, "text-anchor": "middle", "class": "x-tick"}, tickLabel);
  }
  add("text", {x: box.left + box.width / 2, y: 296, "text-anchor": "middle"},
      !data.seconds ? "frame" : (long ? "time (h:mm:ss / m:ss)" : "time (s)"));
  var yStep = step(yHigh - yLow, 6, decimalSteps());
  for (var value = Math.ceil(yLow / yStep - 1e-9) * yStep; value <= yHigh + 1e-9; value += yStep) {
    var tickY = y(value);
    add("line", {x1: box.left, x2: box.left + box.width, y1: tickY, y2: tickY, stroke: "#eef0f3"});
    add("line", {x1: box.left - 5, x2: box.left, y1: tickY, y2: tickY, stroke: "#8a94a3"});
    add("text", {x: box.left - 8, y: tickY + 4, "text-anchor": "end", "class": "y-tick"},
        value.toFixed(decimals(yStep)));
  }
  add("text", {x: 14, y: box.top + box.height / 2, "text-anchor": "middle",
               transform: "rotate(-90 14 " + (box.top + box.height / 2) + ")"}, "score");
  add("rect", {x: box.left, y: box.top, width: box.width, height: box.height, fill: "none", stroke: "#8a94a3"});
  add("line", {x1: box.left, x2: box.left + box.width, y1: y(data.threshold), y2: y(data.threshold),
               stroke: "#333", "stroke-dasharray": "6 4", id: "threshold"});
  // One path: a new subpath (M) after each gap of frames without a score (null), a line (L) to the next point.
  var commands = [], drawn = 0, gap = true;
  data.curve.x.forEach(function (at, index) {
    var score = data.curve.scores[index];
    if (score === null) { gap = true; return; }
    commands.push((gap ? "M" : "L") + x(at).toFixed(2) + "," + y(score).toFixed(2));
    gap = false;
    drawn++;
  });
  add("path", {d: commands.join(" "), fill: "none", stroke: "#1f6fd1", "stroke-width": 1.6,
               "stroke-linejoin": "round", id: "score-curve", "data-points": drawn});
  var playhead = add("line", {x1: box.left, x2: box.left, y1: box.top, y2: box.top + box.height,
                              stroke: "#e07b00", "stroke-width": 2, id: "playhead"});

  function setPlayhead(value) {
    value = Math.min(Math.max(value, 0), xEnd);
    playhead.setAttribute("x1", x(value));
    playhead.setAttribute("x2", x(value));
    readout.textContent = label(value, 2);
  }
  // The x axis's units per second of the video's clock: 1 for an axis in seconds; for one in frames, the video's
  // frames over its duration (null until the duration is known).
  function perSecond() {
    if (data.seconds) { return 1; }
    return video && isFinite(video.duration) && video.duration > 0 ? data.frames / video.duration : null;
  }
  function seek(value) {
    value = Math.min(Math.max(value, 0), xEnd);
    setPlayhead(value);
    if (videoUsable && perSecond() !== null) { video.currentTime = value / perSecond(); }
  }
  function follow() { if (perSecond() !== null) { setPlayhead(video.currentTime * perSecond()); } }
  function followWhilePlaying() {
    follow();
    if (!video.paused && !video.ended) { window.requestAnimationFrame(followWhilePlaying); }
  }
  function videoMissing() {
    videoUsable = false;
    video.hidden = true;
    document.getElementById("video-caption").hidden = true;
    document.getElementById("video-missing").hidden = false;
  }

  setPlayhead(0);
  if (video) {
    ["timeupdate", "seeked", "pause", "loadedmetadata"].forEach(function (name) {
      video.addEventListener(name, follow);
    });
    video.addEventListener("play", function () { window.requestAnimationFrame(followWhilePlaying); });
    video.addEventListener("error", videoMissing);
    if (video.error) { videoMissing(); }
  }
  svg.addEventListener("click", function (event) {
    var point = new DOMPoint(event.clientX, event.clientY).matrixTransform(svg.getScreenCTM().inverse());
    if (point.x < box.left || point.x > box.left + box.width) { return; }
    seek((point.x - box.left) / box.width * xEnd);
  });
  Array.prototype.forEach.call(document.querySelectorAll("#segments button"), function (button) {
    button.addEventListener("click", function () { seek(Number(button.dataset.x)); });
  });
})();
"""
