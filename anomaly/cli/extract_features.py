"""Extract features from videos: ten-crop I3D ResNet-50 (float32 [T, N, 2048] per video) or CLIP ViT-B/16 ([T, N, 512]).

    python tools/extract_features.py --videos path/to/videos/ --output data/mine/i3d/test \
        --weights pretrained/i3d_r50_kinetics.pth
    s3r extract --backbone clip --videos clips/ --output features/ --weights pretrained/open_clip_model.safetensors
    torchrun --nproc_per_node 4 tools/extract_features.py --videos list.txt --output features/ --weights ...

``--videos``: video files, folders (searched recursively) or text files listing videos (one a line); a folder or
list that names no video is refused before anything is written, a file that is not a video fails alone. Writes
``<output>/<video stem>_<backbone>.npy`` and its settings ``<stem>_<backbone>.json``; a video is skipped when its features are
whole and were made from the same video file with the same settings, and extracted again (said in one line)
otherwise. A partial video (decoding fails part way, or fewer frames than its container declares) fails unless
``--accept_partial``. Under torchrun the videos are split across the processes (one GPU each; gloo on CPU) and
the files are the same as with one process. See anomaly/extraction/. Exit status 1 when some videos could not be
extracted (one line each; the others are).
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.extraction import FeatureOptions, run_extraction
from anomaly.layout import BACKBONE_NAMES, FRAME_READINGS, NUM_CROPS, PRESET_NAMES
from anomaly.precision import NETWORK_CHOICES


class Arguments(CommandArguments):
    videos: List[str]  # video files, folders of videos, or text files listing videos
    output: Path  # folder of the <stem>_<backbone>.npy feature files
    weights: Path  # the backbone's weights: i3d_r50_kinetics.pth (pytorch-resnet3d's release), or CLIP ViT-B/16's (docs/clip.md)
    backbone: Literal[BACKBONE_NAMES] = "i3d"  # feature network: i3d (the published features, 2048 channels) or clip (ViT-B/16, 512)
    preset: Optional[Literal[PRESET_NAMES]] = None  # preprocessing recipe (default: the backbone's: rtfm for i3d, vadclip for clip; gowtham for i3d too)
    num_crops: Literal[NUM_CROPS] = 10  # 10: ten-crop; 5: the first five (XD-Violence); 1: centre crop
    clip_frames: Optional[Literal[FRAME_READINGS]] = None  # clip: a snippet's row is the mean of its 16 frames' embeddings (default) or its middle frame's
    precision: Literal[NETWORK_CHOICES] = "fp32"  # network arithmetic; auto: bf16 where the device computes it natively, else fp32 (said in one line)
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    batch_size: int = 4  # snippets per forward pass (each of --num_crops clips)
    accept_partial: bool = False  # extract the frames that decode of a partial video (cut short), saying so
    no_progress: bool = False  # no progress bars

    def configure(self) -> None:
        self.add_argument("--videos", nargs="+")
        self.add_argument("--num_crops", type=int, choices=NUM_CROPS)


def run(args: Arguments) -> int:
    options = FeatureOptions(args.weights, args.preset, args.num_crops, args.precision, args.device, args.batch_size,
                             args.accept_partial, args.backbone, args.clip_frames)  # fmt: skip
    summary = run_extraction(args.videos, args.output, options, progress=not args.no_progress)
    if summary.is_main:
        print(summary.table())
    return 1 if summary.count("failed") else 0
