"""Score videos with a trained S3R: an anomaly curve per video (CSV, PNG, HTML report) and the segments above a
threshold.

    s3r detect street.mp4 --detector checkpoint/mine/my-cameras_s3r_i3d.detector.pth \
        --weights pretrained/i3d_r50_kinetics.pth --output output/street
    python tools/detect_anomalies.py street.mp4 --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth \
        --dictionary dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.90pct.npy \
        --weights pretrained/i3d_r50_kinetics.pth --output output/street

The detector is a detector file (written by training: weights, dictionary and the features' preset and crops), or
a released checkpoint with its dictionary (``rtfm`` and ten crops unless ``--preset``/``--num_crops`` say otherwise).

Extracts the video's features with the detector's backbone, preset and crops (reusing <output>/<stem>_<backbone>.npy
when it is whole and was extracted from the same video file with the same settings), scores every snippet as evaluation does, and writes
<output>/<stem>_scores.csv (frame, time_s, score), <stem>_scores.png and <stem>_report.html (the video with its
curve, a playhead and the segments, in a browser). See anomaly/detection.py. Exit status 1
when some videos could not be read or scored (one line each; the others are).
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.detection import DetectorFiles, detect_anomalies
from anomaly.extraction import FeatureOptions
from anomaly.layout import FRAME_READINGS, NUM_CROPS, PRESET_NAMES
from anomaly.precision import NETWORK_CHOICES


class Arguments(CommandArguments):
    videos: List[str]  # video files, folders of videos, or text files listing videos
    weights: Path  # the weights of the detector's backbone: i3d_r50_kinetics.pth (pytorch-resnet3d's release), or CLIP ViT-B/16's
    detector: Optional[Path] = None  # a detector file written by training (<run>.detector.pth)
    checkpoint: Optional[Path] = None  # or: S3R weights trained on 2048-channel I3D features (a released checkpoint)
    dictionary: Optional[Path] = None  # with --checkpoint: its dictionary of normal atoms [S, 2048]
    output: Path = Path("output/detections")  # folder of the features, CSVs, PNGs and report pages
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the detector's; rtfm for a checkpoint)
    num_crops: Optional[Literal[NUM_CROPS]] = None  # crops per snippet (default: the detector's; 10 for a checkpoint)
    clip_frames: Optional[Literal[FRAME_READINGS]] = None  # a CLIP detector's frame reading (default: the detector's)
    precision: Literal[NETWORK_CHOICES] = "fp32"  # network arithmetic; auto: bf16 where the device computes it natively, else fp32 (said in one line)
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    threshold: float = 0.5  # score in [0, 1] above which frames are reported as anomalous
    ground_truth: Optional[List[Path]] = None  # per video, in order: .npy of 0/1 per frame, shaded in the PNG
    batch_size: int = 4  # snippets per network forward pass
    accept_partial: bool = False  # score the frames that decode of a partial video (cut short), saying so
    no_progress: bool = False  # no progress bars

    def configure(self) -> None:
        self.add_argument("videos", nargs="+")
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)
        self.add_argument("--ground_truth", type=Path, nargs="+")


def run(args: Arguments) -> int:
    options = FeatureOptions(args.weights, args.preset, args.num_crops, args.precision, args.device, args.batch_size,
                             args.accept_partial, backbone=None, clip_frames=args.clip_frames)  # the detector's
    failed = detect_anomalies(
        args.videos, args.output, options, DetectorFiles(args.detector, args.checkpoint, args.dictionary),
        threshold=args.threshold, ground_truth=args.ground_truth, progress=not args.no_progress,
    )  # fmt: skip
    return 1 if failed else 0
