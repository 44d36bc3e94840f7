"""A source's frames decoded into snippets as they arrive, in a thread of its own, ahead of the network.

The decoding thread turns each frame upright and resizes it (``anomaly.extraction``'s ``upright`` and
``ClipBuilder``, the steps extraction takes), stacks 16 into a snippet with its times, and puts the snippet into a
bounded queue (``QUEUE_SNIPPETS``) that the network takes from. When the queue is full:

- a live source (a URL, a device, a pipe, a file with ``realtime``) does not wait: the oldest waiting snippet is
  dropped, counted, so that the scores stay close to the stream instead of falling further and further behind;
- a file read at its own pace waits for the network: nothing is dropped from it.

Times come from the stream's timestamps, in seconds from its first frame (frames without a timestamp take their
index over the stream's rate, else the time they arrived). With ``realtime`` a file's frames are let through at
those times. The stream ends at its end, after ``timeout`` seconds without data (URLs, pipes), when it breaks (a
read fails), or when its frames are refused (a size change: the frames before it are scored); then the last
partial snippet is given as the preset treats a video's tail (rtfm: loop-padded). With ``reconnect`` the source is
opened again when it breaks (a URL, a device, a FIFO), and a URL also when it ends or goes quiet (a camera or server
that went away); a FIFO whose writer closes it, like a device that ends, is the end of the stream. Opening is tried
until it succeeds or ``timeout`` seconds have passed since the source went down (connections that give no frame
count as down); then the stream ends as a failure. The frames of the snippet it went down in are lost, and times go
on from the last frame's by the time that passed (at least a frame's duration).
"""

import sys
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Iterator, Optional, Tuple

import av
import numpy as np

from anomaly.errors import InputError
from anomaly.extraction.preprocess import ClipBuilder, Preset
from anomaly.extraction.video import failure_reason, nominal_rate, upright, video_stream
from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.live.source import OpenedSource, Source, SourceTimeout

QUEUE_SNIPPETS = 2  # decoded snippets waiting for the network: a live source drops beyond them
WAIT_SLICE_S = 0.2  # waits are cut into slices this long, to see a stop request (and signals) in time
RECONNECT_PAUSE_S = 1.0  # between two attempts to open a broken stream again


def to_stderr(line: str) -> None:
    """Where a watch says what happens to its stream by default: standard error (standard output may carry the JSON
    lines)."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class Snippet:
    """16 resized upright frames of the stream (uint8 16 h w 3) and where they are in it."""

    index: int  # its place in the stream: 0, 1, ... (a dropped snippet keeps its number)
    clip: np.ndarray
    first_frame: int  # the stream's index of its first frame
    frames: int  # the stream's frames in it: 16, fewer in a loop-padded tail
    start_s: float  # its first frame's time, in seconds from the stream's first frame
    end_s: float  # its last frame's time plus that frame's duration
    decoded_at: float  # time.monotonic() when its last frame was decoded


class SnippetQueue:
    """A bounded queue of snippets between the decoding thread and the network. ``put`` on a full queue drops the
    oldest snippet (``drop_oldest``: a live source) or waits; ``get`` gives the next snippet and how many were
    dropped since the previous ``get``, or None once the queue is closed and empty."""

    def __init__(self, size: int, drop_oldest: bool):
        self.size = size
        self.drop_oldest = drop_oldest
        self.dropped = 0  # in all
        self._items: Deque[Snippet] = deque()
        self._dropped_since_get = 0
        self._closed = False
        self._changed = threading.Condition()

    def put(self, snippet: Snippet, stop: threading.Event) -> None:
        with self._changed:
            while len(self._items) >= self.size:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    self._dropped_since_get += 1
                elif stop.is_set():
                    return
                else:
                    self._changed.wait(WAIT_SLICE_S)
            self._items.append(snippet)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def get(self) -> Optional[Tuple[Snippet, int]]:
        with self._changed:
            while not self._items and not self._closed:
                self._changed.wait(WAIT_SLICE_S)
            if not self._items:
                return None
            dropped, self._dropped_since_get = self._dropped_since_get, 0
            snippet = self._items.popleft()
            self._changed.notify_all()
            return snippet, dropped


class SnippetStream:
    """Decode ``opened`` (the opened ``source``) into snippets in a thread; iterate over (snippet, snippets dropped
    just before it). Once the iteration ends: ``end`` says why, ``failed`` whether the stream ended on a failure
    (it broke, or its frames were refused), ``frame_times`` holds the time of every frame decoded and ``fps`` the
    stream's declared rate (None when it declares none). ``open_again`` opens the source again (``reconnect``)."""

    def __init__(
        self, opened: OpenedSource, source: Source, preset: Preset, stop: threading.Event,
        open_again: Callable[[], OpenedSource], realtime: bool = False, timeout: float = 10.0,
        reconnect: bool = False, log: Callable[[str], None] = to_stderr,
    ) -> None:  # fmt: skip
        self.source = source
        self.preset = preset
        self.stop = stop
        self.open_again = open_again
        self.realtime = realtime
        self.timeout = timeout
        self.reconnect = reconnect
        self.log = log
        self.live = source.kind != "file" or realtime
        self.queue = SnippetQueue(QUEUE_SNIPPETS, drop_oldest=self.live)
        self.frame_times = array("d")
        self.fps: Optional[float] = None
        self.end = ""
        self.failed = False
        self._opened = opened
        self._last_frame_at = 0.0  # time.monotonic() when the last frame was decoded
        self._snippets = 0  # snippets made so far, delivered or dropped: the next one's index
        self._crash: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="snippet-decoder", daemon=True)

    @property
    def frames(self) -> int:
        return len(self.frame_times)

    @property
    def frame_rate(self) -> Optional[float]:
        """Frames per second: the declared ``fps``, else the rate the timestamps so far show (None before two
        frames at different times)."""
        if self.fps is not None:
            return self.fps
        frames = len(self.frame_times)
        if frames > 1 and self.frame_times[-1] > 0:
            return (frames - 1) / self.frame_times[-1]
        return None

    def start(self) -> "SnippetStream":
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Tuple[Snippet, int]]:
        while (item := self.queue.get()) is not None:
            yield item
        if self._crash is not None:
            raise self._crash

    def halt(self, reason: str) -> None:
        """Stop decoding early, for ``reason`` (what ``end`` says): the snippets made so far still come through."""
        self.end = reason
        self.stop.set()

    def close(self, wait: bool = True) -> None:
        """Stop decoding, wait for the thread (a URL's read gives up within its timeout) and close the source;
        without ``wait`` only the stop request (the thread ends on its own, and the source with the process)."""
        self.stop.set()
        if not wait:
            return
        if self._thread.ident is not None:  # started
            self._thread.join(self.timeout + 1)
        if not self._thread.is_alive():  # never under a decoder still reading
            self._opened.close()

    # ------------------------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        try:
            self._decode_connections()
        except BaseException as error:  # a bug, not the stream: raised in the consuming thread
            self._crash = error
        finally:
            self.queue.close()

    def _decode_connections(self) -> None:
        offset = 0.0  # added to a connection's times, so that they go on from the connection before
        outage: Optional[float] = None  # since when the source has been down, until a connection gives a frame
        while True:
            connection = _Connection(ClipBuilder(self.preset, self.source.shown), self.frames)
            try:
                self._decode(connection, offset)
                if self.stop.is_set():  # halted: ``end`` says why
                    break
                down, broke = f"the stream ended after {self.frames} frames", False
                self.end = "end of stream"
            except (SourceTimeout, av.ExitError):
                down, broke = f"no data for --timeout {self.timeout:g} s", False
                self.end = down
            except InputError as error:  # frames that cannot be scored (too wide, changing size, odd rotation)
                self.end, self.failed = error.problem, True
                break
            except (av.FFmpegError, OSError, MemoryError) as error:
                down, broke = f"the stream broke after {self.frames} frames ({failure_reason(error)})", True
                self.end = down
            # A URL that ends or goes quiet is a camera or server that went away: opened again like a broken one.
            if self.stop.is_set() or not (self.reconnect and (broke or self.source.kind == "url")):
                self.failed = broke
                break
            self.log(f"{self.source.shown}: {down}; reconnecting (--reconnect)")
            if connection.builder.frames or outage is None:  # a connection that gave frames ends one outage
                outage = time.monotonic()
            opened = self._reopen(outage)
            if opened is None:
                self.end, self.failed = f"{down}; not opened again within --timeout {self.timeout:g} s", True
                break
            self._opened.close()
            self._opened = opened
            if self.frames:  # times go on by the time that passed since the last frame
                offset = self.frame_times[-1] + max(connection.frame_duration, time.monotonic() - self._last_frame_at)
        self._finish(connection)

    def _reopen(self, since: float) -> Optional[OpenedSource]:
        """The source opened again, or None once ``timeout`` seconds have passed since ``since`` (or on stop)."""
        while not self.stop.is_set() and time.monotonic() - since < self.timeout:
            try:
                opened = self.open_again()
            except InputError:
                self.stop.wait(RECONNECT_PAUSE_S)
                continue
            self.log(f"{self.source.shown}: reconnected")
            return opened
        return None

    def _decode(self, connection: "_Connection", offset: float) -> None:
        stream = video_stream(self._opened.container)
        # Frame threads hold frames back (one per thread) to decode them in parallel: the fastest for a file read at
        # its own pace, a delay for a live source, which gets slice threads alone.
        stream.thread_type = "SLICE" if self.live else "AUTO"
        rate = nominal_rate(stream)
        if self.fps is None and rate:
            self.fps = rate
        started = time.monotonic()
        first_stamp: Optional[float] = None
        for index, frame in enumerate(_frames(self._opened.container, stream)):
            if self.stop.is_set():
                return
            _, image = upright(frame, self.source.shown)
            # In the stream's time base: the frames a flushed decoder gives back carry no time base of their own.
            if frame.pts is not None and stream.time_base:
                stamp = float(frame.pts * stream.time_base)
            else:
                stamp = index / rate if rate else time.monotonic() - started
            first_stamp = stamp if first_stamp is None else first_stamp
            time_s = offset + stamp - first_stamp
            if self.realtime:  # the frame comes through at its time
                self.stop.wait(max(0.0, started + (time_s - offset) - time.monotonic()))
            if frame.duration and stream.time_base:
                connection.frame_duration = float(frame.duration * stream.time_base)
            elif rate:
                connection.frame_duration = 1 / rate
            clips = connection.builder.push(image)
            self.frame_times.append(time_s)  # once taken: a frame the builder refuses is not counted
            self._last_frame_at = time.monotonic()
            if connection.builder.frames % FRAMES_PER_SNIPPET == 0:
                connection.completed.append(time.monotonic())
            for clip in clips:
                self._put(connection, clip, connection.completed.popleft())

    def _finish(self, connection: "_Connection") -> None:
        """The clips at the end of the stream: one held back (gowtham's first) and the tail, as the preset treats a
        video's end. None when there are fewer frames than the preset needs for a snippet (said in ``end``)."""
        try:
            clips = connection.builder.finish()
        except InputError as error:
            self.end += f"; {error.problem}"
            return
        for clip in clips:
            self._put(connection, clip, connection.completed.popleft() if connection.completed else time.monotonic())

    def _put(self, connection: "_Connection", clip: np.ndarray, decoded_at: float) -> None:
        first = connection.first_frame + connection.made * FRAMES_PER_SNIPPET
        frames = min(FRAMES_PER_SNIPPET, connection.first_frame + connection.builder.frames - first)
        end_s = self.frame_times[first + frames - 1] + connection.frame_duration
        snippet = Snippet(self._snippets, clip, first, frames, self.frame_times[first], end_s, decoded_at)
        connection.made += 1
        self._snippets += 1
        self.queue.put(snippet, self.stop)


def _frames(container: "av.container.InputContainer", stream: "av.video.VideoStream") -> Iterator["av.VideoFrame"]:
    """The stream's decoded frames; when no data comes within the timeout, first the frames the decoder still holds
    (a decoder with B-frames holds a couple back until it is flushed, as it is at a file's end), then the timeout."""
    try:
        yield from container.decode(stream)
    except (SourceTimeout, av.ExitError):
        try:
            yield from stream.codec_context.decode(None)
        except av.FFmpegError:
            pass  # nothing more to give
        raise


@dataclass
class _Connection:
    """What decoding one opening of the source keeps: its clips, its first frame, the clips made of it, when each
    complete clip's last frame was decoded (until the clip is released), the duration of its last frame."""

    builder: ClipBuilder
    first_frame: int
    made: int = 0
    completed: Deque[float] = field(default_factory=deque)
    frame_duration: float = 0.0
