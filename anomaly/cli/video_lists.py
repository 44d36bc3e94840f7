"""Write a ``video-id`` csv list of every feature file of a folder, anomalous videos first.

    python tools/make_video_lists.py --dataset ucf-crime --features data/ucf-crime/i3d/train \
        --output data/ucf-crime/ucf-crime.training.csv
    python tools/make_video_lists.py --dataset shanghaitech --features data/shanghaitech/i3d/train \
        --anomalous test_frame_mask/ --output data/shanghaitech/shanghaitech.training.csv

Which videos are anomalous: ``--anomalous`` (a folder of frame masks: a video whose mask marks an anomalous
frame; or a text/csv file of anomalous ids, one per line), required for ShanghaiTech whose names do not tell.
Without it UCF-Crime's normal videos are those named ``*Normal*`` and XD-Violence's those named ``*label_A*``.
Each group is sorted by id. The number of anomalous rows (the configs' ``num_anomalous_train``) is printed.
An id in the ``--anomalous`` file without a feature file (in ``--features`` or a sibling split folder, so one file
may list both splits' anomalous videos) is an error, and so is a list without any anomalous video.
"""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.data.video_lists import make_video_list
from anomaly.data.catalog import DATASET_NAMES


class Arguments(CommandArguments):
    dataset: Literal[DATASET_NAMES]  # dataset of the features (how its anomalous videos are found)
    features: Path  # folder of <id>_<backbone>.npy features
    output: Path  # csv list to write
    anomalous: Optional[Path] = None  # frame-mask folder or file of anomalous video ids
    backbone: str = "i3d"  # feature file suffix

    def configure(self) -> None:
        self.add_argument("--dataset", type=str, choices=DATASET_NAMES)  # argparse's "invalid choice: 'x'" message


def run(args: Arguments) -> int:
    video_ids, num_anomalous = make_video_list(args.dataset, args.features, args.output, args.anomalous, args.backbone)
    print(f"{args.output}: {len(video_ids)} videos, the first {num_anomalous} anomalous")
    return 0
