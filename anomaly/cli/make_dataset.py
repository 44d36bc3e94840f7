"""Make a trainable dataset from folders of your videos: features, lists, ground truth, description, dictionary.

    s3r make-dataset my-cameras --videos clips/ --annotations incidents.csv --weights pretrained/i3d_r50_kinetics.pth
    s3r train --dataset my-cameras --version my-cameras

``--videos``: ``train/normal/**``, ``train/anomalous/**`` (video-level labels) and ``test/**``. ``--annotations``:
the anomalous intervals of the test videos, a CSV ``video,start,end`` in seconds, a CSV
``video,start_frame,end_frame`` (0-based, end included) or a folder of ``<video>.npy`` 0/1 frame masks. A rerun
continues where a stopped one ended. See anomaly/video_dataset/. Exit status 1 when some videos could not be
extracted (one line each; the dataset is written once they are fixed or removed).
"""

from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.extraction import FeatureOptions
from anomaly.layout import BACKBONE_NAMES, FRAME_READINGS, NUM_CROPS, PRESET_NAMES
from anomaly.precision import NETWORK_CHOICES
from anomaly.video_dataset.builder import make_dataset


class Arguments(CommandArguments):
    name: str  # the dataset's name: letters, digits, '-' and '.' (its folder under --root_path)
    videos: Path  # folder with train/normal, train/anomalous and test
    weights: Path  # the backbone's weights: i3d_r50_kinetics.pth (pytorch-resnet3d's release), or CLIP ViT-B/16's (docs/clip.md)
    annotations: Optional[Path] = None  # the test videos' anomalies: a seconds or frames CSV, or a folder of masks
    backbone: Literal[BACKBONE_NAMES] = "i3d"  # feature network: i3d (the published features, 2048 channels) or clip (ViT-B/16, 512)
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the backbone's: rtfm for i3d, vadclip for clip; gowtham for i3d too)
    num_crops: Literal[NUM_CROPS] = 10  # crops per snippet (1: the centre crop, ten times less work)
    clip_frames: Optional[Literal[FRAME_READINGS]] = None  # clip: a snippet's row is the mean of its 16 frames' embeddings (default) or its middle frame's
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    precision: Literal[NETWORK_CHOICES] = "fp32"  # network arithmetic; auto: bf16 where the device computes it natively, else fp32 (said in one line)
    batch_size: Optional[int] = None  # training videos per class in a step (default: the smaller class, up to 32)
    extract_batch_size: int = 4  # snippets per network forward pass
    root_path: Path = Path("data")  # the datasets' folder
    dictionary_path: Path = Path("dictionary")  # the dictionaries' folder
    dictionary_ratio: int = 90  # dictionary atoms in %% of the normal training videos (an integer: it names the file)
    accept_partial: bool = False  # extract the frames that decode of a partial video (cut short), saying so
    no_progress: bool = False  # no progress bars

    def configure(self) -> None:
        self.add_argument("name")
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)


def run(args: Arguments) -> int:
    options = FeatureOptions(args.weights, args.preset, args.num_crops, args.precision, args.device,
                             args.extract_batch_size, args.accept_partial, args.backbone, args.clip_frames)  # fmt: skip
    failed = make_dataset(
        args.name, args.videos, args.annotations, options, batch_size=args.batch_size, root_path=args.root_path,
        dictionary_path=args.dictionary_path, dictionary_ratio=args.dictionary_ratio, progress=not args.no_progress,
    )  # fmt: skip
    return 1 if failed else 0
