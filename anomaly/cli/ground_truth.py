"""Build a test split's frame-level ground-truth json from a dataset's own annotations.

    python tools/make_ground_truth.py --dataset shanghaitech --annotations test_frame_mask/ \
        --features data/shanghaitech/i3d/test --list data/shanghaitech/shanghaitech.testing.csv \
        --output data/shanghaitech/shanghaitech_ground_truth.testing.json

``--annotations``: ShanghaiTech's ``test_frame_mask/`` folder; UCF-Crime's
``Temporal_Anomaly_Annotation_for_Testing_Videos.txt`` or its folder of per-video ``.mat`` files; XD-Violence's
``annotations.txt``. ``num_frames`` of each video is 16 × T of its feature file (read from the header only).
"""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.data.catalog import ANNOTATED_DATASETS
from anomaly.data.ground_truth import build_ground_truth, write_ground_truth
from anomaly.data.video_lists import read_video_list
from anomaly.files import ensure_folder


class Arguments(CommandArguments):
    dataset: Literal[ANNOTATED_DATASETS]  # dataset whose annotations --annotations holds
    annotations: Path  # mask folder, .txt file or .mat folder
    features: Path  # folder of <id>_<backbone>.npy test features
    list: Optional[Path] = None  # test list (csv, header video-id): the videos and their order (default: all, sorted)
    output: Path  # ground-truth json to write
    backbone: str = "i3d"  # feature file suffix

    def configure(self) -> None:
        self.add_argument("--dataset", type=str, choices=ANNOTATED_DATASETS)  # argparse's "invalid choice: 'x'" message


def run(args: Arguments) -> int:
    ensure_folder(args.output.parent)  # a blocked output folder fails before any annotation is read
    video_ids = read_video_list(args.list) if args.list is not None else None
    labels = build_ground_truth(args.dataset, args.annotations, args.features, video_ids, args.backbone, args.list)
    write_ground_truth(labels, args.output)
    frames = sum(len(value) for value in labels.values())
    anomalous = sum(bool(value.any()) for value in labels.values())
    print(f"{args.output}: {len(labels)} videos ({anomalous} with anomalous frames), {frames} frames")
    return 0
