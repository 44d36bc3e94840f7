"""Score videos with a trained S3R: an anomaly curve per video (CSV, PNG, HTML report) and the segments above a
threshold.

    s3r detect street.mp4 --detector checkpoint/mine/my-cameras_s3r_i3d.detector.pth \
        --weights pretrained/i3d_r50_kinetics.pth --output output/street
    python tools/detect_anomalies.py street.mp4 --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth \
        --dictionary dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.90pct.npy \
        --weights pretrained/i3d_r50_kinetics.pth --output output/street

The detector is a detector file (written by training: weights, dictionary and the features' preset and crops), or
a released checkpoint with its dictionary (``rtfm`` and ten crops unless ``--preset``/``--num_crops`` say otherwise),
or with --runtime onnxruntime|openvino the folder s3r export wrote (--exported), run on the CPU by that runtime:

    s3r detect street.mp4 --runtime openvino --exported exported/my-cameras --output output/street

Extracts the video's features with the detector's backbone, preset and crops (reusing <output>/<stem>_<backbone>.npy
when it is whole and was extracted from the same video file with the same settings), scores every snippet as evaluation does, and writes
<output>/<stem>_scores.csv (frame, time_s, score), <stem>_scores.png and <stem>_report.html (the video with its
curve, a playhead and the segments, in a browser). See anomaly/detection.py. Exit status 1
when some videos could not be read or scored (one line each; the others are).
"""

from pathlib import Path
from typing import List, Optional

from anomaly.cli.detector_arguments import DetectorArguments
from anomaly.detection import detect_anomalies


class Arguments(DetectorArguments):
    videos: List[str]  # video files, folders of videos, or text files listing videos
    output: Path = Path("output/detections")  # folder of the features, CSVs, PNGs and report pages
    threshold: float = 0.5  # score in [0, 1] above which frames are reported as anomalous
    ground_truth: Optional[List[Path]] = None  # per video, in order: .npy of 0/1 per frame, shaded in the PNG
    batch_size: int = 4  # snippets per network forward pass
    accept_partial: bool = False  # score the frames that decode of a partial video (cut short), saying so
    no_progress: bool = False  # no progress bars

    def configure(self) -> None:
        super().configure()
        self.add_argument("videos", nargs="+")
        self.add_argument("--ground_truth", type=Path, nargs="+")


def run(args: Arguments) -> int:
    failed = detect_anomalies(
        args.videos, args.output, args.feature_options(batch_size=args.batch_size, accept_partial=args.accept_partial),
        args.detector_files(), threshold=args.threshold, ground_truth=args.ground_truth, progress=not args.no_progress,
    )  # fmt: skip
    return 1 if failed else 0
