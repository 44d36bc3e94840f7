"""Watch a camera, a stream or a video: live anomaly scores as the snippets arrive, alerts, and a report at the end.

    s3r watch rtsp://camera.local/stream --detector checkpoint/mine/my-cameras_s3r_i3d.detector.pth \
        --weights pretrained/i3d_r50_kinetics.pth --output output/watch/camera.jsonl
    python tools/watch.py street.mp4 --realtime --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth \
        --dictionary dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.90pct.npy \
        --weights pretrained/i3d_r50_kinetics.pth
    s3r watch rtsp://camera.local/stream --runtime openvino --exported exported/my-cameras  # s3r export's folder

SOURCE: a video file (read at its own pace, or paced by its timestamps with --realtime), a URL FFmpeg opens as a
stream (rtsp://, http://, udp://, tcp://, ...), a capture device (/dev/video0), a FIFO, or - for standard input.
Each 16-frame snippet is scored on the window of the last --window snippets (and --lookahead after it): one JSON
line per snippet, alert lines, then <name>_scores.csv, <name>_scores.png and <name>_report.html of what was seen.
With --reconnect a URL that breaks, ends or goes quiet, and a device or FIFO that breaks, is opened again (for up
to --timeout seconds each time). See anomaly/live/watch.py. Exit status: 0 when the stream ended (or went quiet
for --timeout seconds, or the reader of the lines went away); 1 when no snippet could be scored, the stream broke
(without --reconnect), could not be opened again (with --reconnect) or its frames were refused; 2 bad input;
130/143 on SIGINT/SIGTERM, the lines and files written first.
"""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.detector_arguments import DetectorArguments
from anomaly.live.source import RTSP_TRANSPORTS
from anomaly.live.watch import watch


class Arguments(DetectorArguments):
    source: str  # a video file, a stream URL, /dev/videoN, a FIFO, or - (standard input)
    output: str = "-"  # the JSON lines: a .jsonl file, or - for standard output
    report_dir: Optional[Path] = None  # folder of the CSV, PNG and HTML report (default: beside --output; output/watch for -)
    window: int = 16  # snippets each score is computed on: the snippet and the window - 1 before it
    lookahead: int = 0  # snippets after it that a score waits for and uses (each score comes that many snippets later)
    threshold: float = 0.5  # score in [0, 1] at or above which a snippet counts towards an alert
    min_snippets: int = 3  # consecutive snippets at or above (below) the threshold that start (end) an alert
    timeout: float = 10.0  # seconds without data after which a stream is over (URLs, pipes; and how long --reconnect tries)
    realtime: bool = False  # pace a video file by its timestamps, as a camera would send it
    reconnect: bool = False  # open again a URL that breaks, ends or goes quiet, a device or FIFO that breaks (for up to --timeout s)
    rtsp_transport: Literal[RTSP_TRANSPORTS] = "tcp"  # how an rtsp:// source is carried

    def configure(self) -> None:
        super().configure()
        self.add_argument("source")


def run(args: Arguments) -> int:
    return watch(
        args.source, args.feature_options(), args.detector_files(), args.output, window=args.window,
        lookahead=args.lookahead, threshold=args.threshold, min_snippets=args.min_snippets, timeout=args.timeout,
        realtime=args.realtime, reconnect=args.reconnect, report_dir=args.report_dir,
        rtsp_transport=args.rtsp_transport,
    )  # fmt: skip
