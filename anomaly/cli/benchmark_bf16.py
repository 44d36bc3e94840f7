"""What bf16 I3D changes: the features of videos in bf16 against fp32, and a detector's frame scores and AUC.

    s3r benchmark-bf16 --weights pretrained/i3d_r50_kinetics.pth --videos my_videos/ \
        --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth \
        --dictionary dictionary/shanghaitech/shanghaitech_dictionaries.taskaware.omp.100iters.90pct.npy \
        --annotations incidents.csv
    s3r benchmark-bf16 --num_crops 1     # seeded weights, made videos, a detector trained on them (minutes on a CPU)

Every video is extracted in fp32 and in bf16: bf16 as extraction computes it where the device has native bf16, else
its float32 simulation (the roundings where bf16 I3D stores bf16), said in the output. Per video: the relative L2
error and the largest error; the bound bf16's rounding explains. With a detector (--detector, or --checkpoint and
--dictionary): the largest change of a frame's score and, with --annotations (the test annotations of s3r
make-dataset: a seconds or frames CSV, or a folder of masks), the frame AUC from each. Without --videos: a made set
of labelled videos and, without a detector, S3R trained for --steps steps on their fp32 features. Without --weights:
the seeded weights of the tests (no released weights were at hand), which the output says. See
anomaly/benchmark/bf16_effect.py. Exit status 1 when some videos could not be extracted (one line each; the others
are measured).
"""

import sys
import tempfile
from pathlib import Path
from typing import List, Literal, Optional

import numpy as np

from anomaly.benchmark.bf16_effect import SEEDED_WEIGHTS, Extracted, format_bf16_effect, measure_bf16_effect
from anomaly.cli.command import CommandArguments
from anomaly.detection import DetectorFiles
from anomaly.errors import InputError, check_range
from anomaly.extraction import PRESETS, I3DResNet50, list_videos, load_i3d
from anomaly.extraction.network import seeded_state_dict
from anomaly.hardware import resolve_device
from anomaly.layout import NUM_CROPS, PRESET_NAMES
from anomaly.video_dataset.annotations import read_annotations


class Arguments(CommandArguments):
    videos: Optional[List[str]] = None  # video files, folders or lists (default: a made set of labelled videos)
    weights: Optional[Path] = None  # i3d_r50_kinetics.pth (default: seeded weights, said in the output)
    detector: Optional[Path] = None  # a detector file written by training
    checkpoint: Optional[Path] = None  # or: S3R weights trained on 2048-channel I3D features (a released checkpoint)
    dictionary: Optional[Path] = None  # with --checkpoint: its dictionary of normal atoms [S, 2048]
    annotations: Optional[Path] = None  # the videos' anomalies (as s3r make-dataset reads them): frame AUCs
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the detector's, else rtfm)
    num_crops: Optional[Literal[NUM_CROPS]] = None  # crops per snippet (default: the detector's, else 10)
    steps: int = 100  # training steps of the detector trained on made videos
    seed: int = 0  # of that training
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    batch_size: int = 4  # snippets per I3D forward pass

    def configure(self) -> None:
        self.add_argument("--videos", nargs="+")
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)

    def process_args(self) -> None:
        check_range(self.steps, "--steps", minimum=1, integer=True)
        check_range(self.batch_size, "--batch_size", minimum=1, integer=True)
        if self.annotations is not None and self.videos is None:
            raise InputError(self.annotations, "--annotations label --videos; the made videos carry their own labels")


def run(args: Arguments) -> int:
    device = resolve_device(args.device, "the bf16 benchmark")
    detector = name = None
    if args.detector is not None or args.checkpoint is not None or args.dictionary is not None:
        detector = DetectorFiles(args.detector, args.checkpoint, args.dictionary).load(args.preset, args.num_crops,
                                                                                       None, device)  # fmt: skip
        name = str(args.detector or args.checkpoint)
        if detector.features.backbone != "i3d":
            raise InputError(name, f"scores {detector.features.backbone} features; this benchmark measures bf16's "
                             "effect on I3D's")
    preset = PRESETS[detector.features.preset if detector else args.preset or "rtfm"]
    num_crops = detector.features.num_crops if detector else args.num_crops or 10
    videos = list_videos(args.videos) if args.videos is not None else None
    annotations = read_annotations(args.annotations) if args.annotations is not None else None
    if args.weights is not None:
        network, weights = load_i3d(args.weights), str(args.weights)
    else:
        network, weights = I3DResNet50(), SEEDED_WEIGHTS
        network.load_state_dict(seeded_state_dict())

    def labels(video: Path, extracted: Extracted) -> Optional[np.ndarray]:
        if annotations is None:
            return None
        return annotations.frame_labels(video.stem, extracted.frames, extracted.times)

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as folder:
        effect = measure_bf16_effect(network.eval(), weights, device, preset, num_crops, args.batch_size, Path(folder),
                                     videos, labels, detector, name or "", args.steps, args.seed, log)  # fmt: skip
    print(format_bf16_effect(effect))
    return 1 if effect.failures else 0
