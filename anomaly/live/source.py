"""What live detection watches: a SOURCE named on the command line, opened with PyAV (FFmpeg).

Kinds of source (``source_of`` tells them apart without opening anything):

- ``file``: a regular file's path, a video read at its own pace (or, with ``--realtime``, paced by its timestamps);
  opened as extraction opens videos (``anomaly.extraction.video.open_video``). Standard input redirected from a
  regular file (``s3r watch - < video.ts``) is a file too, read through :class:`PipeReader` (never dropped from);
- ``pipe``: ``-`` (standard input: a pipe, a terminal) or the path of a FIFO, read as its writer writes. A FIFO is not a regular file
  (``Path.is_file`` is False for it): it is opened without blocking (a FIFO's ``open`` waits for a writer) and read
  through :class:`PipeReader`, which waits for data at most ``timeout`` seconds at a time;
- ``url``: anything FFmpeg opens as a stream (``rtsp://``, ``http://``, ``udp://``, ``tcp://``, ...), FFmpeg's own
  timeout bounding every wait for data (RTSP over TCP unless ``rtsp_transport`` says ``udp``);
- ``device``: a capture device ``/dev/videoN``, through FFmpeg's v4l2 input.

Every refusal is a one-line InputError naming the source: a path that does not exist, a device that does not
exist, a source FFmpeg cannot open (FFmpeg's reason), one without a video stream; and a file as extraction refuses
it (a folder, an empty file, a single picture). A pipe of pictures is a stream of frames.
"""

import os
import re
import select
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import av

from anomaly.errors import InputError
from anomaly.extraction.video import failure_reason, open_video, with_video_stream

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEVICE = re.compile(r"^/dev/video\d+$")
RTSP_TRANSPORTS = ("tcp", "udp")
# A password in a URL: its user's (scheme://user:password@host) and a query's pwd=, password=, passwd=, pass=.
USER_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*?:)[^/?#]*@")
QUERY_PASSWORD = re.compile(r"([?&;](?:pwd|password|passwd|pass)=)[^&;#]*", re.IGNORECASE)
MASK = "***"
POLL_SLICE_S = 0.1  # a pipe is polled in slices this long, so that a stop request is seen within one


def masked(url: str) -> str:
    """``url`` with every password in it (see ``USER_PASSWORD``, ``QUERY_PASSWORD``) replaced by ``***``."""
    return QUERY_PASSWORD.sub(rf"\g<1>{MASK}", USER_PASSWORD.sub(rf"\g<1>{MASK}@", url, count=1))


class SourceTimeout(Exception):
    """No data came from a source within its timeout."""


@dataclass(frozen=True)
class Source:
    """A SOURCE as given (``text``); its kind (``file``, ``pipe``, ``url`` or ``device``); ``name``, the stem of
    the files written about it: a file's or FIFO's stem, a device's name (``video0``), ``stdin``, or a URL's host,
    port, path and query with every other character made ``_`` (``rtsp://cam.local:554/live/1`` ->
    ``cam.local_554_live_1``; ``rtsp://dvr/cam/realmonitor?channel=2`` -> ``dvr_cam_realmonitor_channel_2``, so two
    channels of one recorder write files of their own); and ``shown``, how messages, the lines and the report name
    it: ``text`` with every password in the URL (``masked``: cameras take one, ``rtsp://user:password@host/...``,
    ``...?user=admin&pwd=secret``) replaced by ``***``, which the name leaves out, with the user."""

    text: str
    kind: str
    name: str
    shown: str

    @property
    def is_stdin(self) -> bool:
        return self.text == "-"

    @property
    def video(self) -> Optional[Path]:
        """The video file the report page links: a file's path (None for standard input, even from a file)."""
        return Path(self.text) if self.kind == "file" and not self.is_stdin else None

    @property
    def reopens(self) -> bool:
        """Whether opening it again can continue the stream (``--reconnect``): a URL (when it breaks, ends or goes
        quiet), a device or a FIFO (when reading it fails; its writer closing it is its end); not a file (it would
        start again) or standard input (it cannot be opened again). See ``anomaly.live.stream``."""
        return self.kind in ("url", "device") or (self.kind == "pipe" and not self.is_stdin)


def source_of(text: str) -> Source:
    """The :class:`Source` that ``text`` names, or a one-line InputError for a path or device that does not exist."""
    if text == "-":  # standard input redirected from a regular file (< video.ts) is that file, read at its pace
        return Source(text, "file" if _stdin_is_a_file() else "pipe", "stdin", text)
    if URL.match(text):
        shown = masked(text)
        try:
            parts = urlsplit(shown)
            parts.port  # a port that is not a number is refused here too
        except ValueError as error:
            raise InputError(shown, f"not a valid URL ({error})") from None
        place = parts.netloc.rpartition("@")[2] + parts.path + (f"?{parts.query}" if parts.query else "")
        name = re.sub(r"[^A-Za-z0-9.-]+", "_", place.replace(MASK, "")).strip("_")
        return Source(text, "url", name or "stream", shown)
    path = Path(text)
    if DEVICE.match(text):
        if not path.exists():
            raise InputError(text, "no such capture device (is the camera connected? `ls /dev/video*` lists them)")
        return Source(text, "device", path.name, text)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(text, "no such file, and not a URL (rtsp://, http://, udp://, ...), a capture device "
                         "(/dev/videoN) or - (standard input)") from None
    except OSError as error:
        raise InputError(text, f"cannot be read ({error.strerror or error})") from None
    if stat.S_ISFIFO(mode):
        return Source(text, "pipe", path.stem, text)
    if stat.S_ISCHR(mode):
        return Source(text, "device", path.name, text)
    return Source(text, "file", path.stem, text)


def _stdin_is_a_file() -> bool:
    """Whether standard input (file descriptor 0, whatever ``sys.stdin`` was replaced by) is a regular file."""
    try:
        return stat.S_ISREG(os.fstat(0).st_mode)
    except OSError:  # closed: opening it says so
        return False


class PipeReader:
    """A pipe's file descriptor as the file-like object PyAV reads: ``read`` waits for data at most ``timeout``
    seconds (then raises :class:`SourceTimeout`), and gives up at once when ``stop`` is set (an empty read: the
    end of the stream). A pipe cannot seek, so PyAV reads it as a stream."""

    def __init__(self, descriptor: int, timeout: float, stop: threading.Event, owned: bool):
        self.descriptor = descriptor
        self.timeout = timeout
        self.stop = stop
        self.owned = owned  # a FIFO opened here is closed here; standard input is left open

    def wait(self) -> bool:
        """Whether data (or the writer's end) is there to read within the timeout; False when stopped."""
        poller = select.poll()
        poller.register(self.descriptor, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise SourceTimeout(f"no data for {self.timeout:g} s")
            if poller.poll(1000 * min(left, POLL_SLICE_S)):
                return True
        return False

    def read(self, size: int) -> bytes:
        if not self.wait():
            return b""
        return os.read(self.descriptor, size)

    def close(self) -> None:
        if self.owned:
            os.close(self.descriptor)


@dataclass
class OpenedSource:
    """A source's container, with the pipe it reads (None for a file, URL or device)."""

    container: "av.container.InputContainer"
    pipe: Optional[PipeReader] = None

    def close(self) -> None:
        self.container.close()
        if self.pipe is not None:
            self.pipe.close()


def open_source(source: Source, timeout: float, stop: threading.Event, rtsp_transport: str = "tcp") -> OpenedSource:
    """Open ``source`` for decoding; a one-line InputError naming it when it cannot be (FFmpeg's reason, or no data
    within ``timeout`` seconds for a URL or a pipe)."""
    if source.kind == "pipe" or source.is_stdin:
        return _open_pipe(source, timeout, stop)
    if source.kind == "file":
        return OpenedSource(open_video(Path(source.text)))
    options = {"rtsp_transport": rtsp_transport} if source.text.lower().startswith("rtsp") else {}
    device = {"format": "v4l2"} if source.kind == "device" else {}
    try:
        container = av.open(source.text, mode="r", timeout=(timeout, timeout), options=options, **device)
    except av.ExitError:
        raise InputError(source.shown, f"cannot be opened: no data within --timeout {timeout:g} s") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(source.shown, f"cannot be opened ({failure_reason(error)})") from None
    return OpenedSource(with_video_stream(container, source.shown))


def _open_pipe(source: Source, timeout: float, stop: threading.Event) -> OpenedSource:
    if source.is_stdin:
        pipe = PipeReader(sys.stdin.buffer.fileno(), timeout, stop, owned=False)
    else:
        try:  # without O_NONBLOCK, opening a FIFO waits until a writer opens it: no timeout would apply
            descriptor = os.open(source.text, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            raise InputError(source.shown, f"cannot be opened ({error.strerror or error})") from None
        os.set_blocking(descriptor, True)  # reads wait in PipeReader.wait's poll, with its timeout
        pipe = PipeReader(descriptor, timeout, stop, owned=True)
    try:
        container = av.open(pipe, mode="r")
    except SourceTimeout:
        pipe.close()
        raise InputError(source.shown, f"cannot be opened: no data within --timeout {timeout:g} s") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as error:
        pipe.close()
        raise InputError(source.shown, f"cannot be opened ({failure_reason(error)})") from None
    try:
        return OpenedSource(with_video_stream(container, source.shown), pipe)
    except InputError:  # no video stream
        pipe.close()
        raise
