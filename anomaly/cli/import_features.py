"""Make a trainable dataset from features released elsewhere: VadCLIP's CLIP features of UCF-Crime or XD-Violence.

    s3r import-features ucf-clip --from vadclip --benchmark ucf-crime --features downloads/ \
        --train_list VadCLIP/list/ucf_CLIP_rgb.csv --test_list VadCLIP/list/ucf_CLIP_rgbtest.csv \
        --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt
    s3r learn-dictionary --dataset ucf-clip
    s3r train --dataset ucf-clip --version ucf-clip

Writes ``<root>/<NAME>/``: the features ``clip/{train,test}/<id>_clip.npy`` ([T, crops, 512]), the lists, the
frame-level ground truth (16 frames a row) and the description. ``--features``: folders where the lists' paths are
looked up by their longest tail (default: the paths as written). See anomaly/importing/.
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.importing import IMPORTERS, RELEASES
from anomaly.importing.vadclip import BENCHMARKS


class Arguments(CommandArguments):
    name: str  # the new dataset's name: letters, digits, '-' and '.' (its folder under --root_path)
    benchmark: Literal[tuple(BENCHMARKS)]  # whose videos the features are of
    train_list: Path  # the release's training list (VadCLIP: list/ucf_CLIP_rgb.csv, list/xd_CLIP_rgb.csv)
    test_list: Path  # the release's test list (VadCLIP: list/ucf_CLIP_rgbtest.csv, list/xd_CLIP_rgbtest.csv)
    annotations: Path  # official temporal annotations: UCF-Crime's Temporal_Anomaly_Annotation_for_Testing_Videos.txt (or its .mat folder), XD-Violence's annotations.txt
    features: List[Path] = []  # folders holding the downloaded features (default: the lists' paths as written)
    batch_size: Optional[int] = None  # training videos per class in a step (default: the smaller class, up to 32)
    dictionary_ratio: Optional[int] = None  # dictionary atoms in %% of the normal training videos (default: the benchmark's, 50)
    root_path: Path = Path("data")  # the datasets' folder
    dictionary_path: Path = Path("dictionary")  # the dictionaries' folder (a stale regular-features file of NAME there is removed)
    no_progress: bool = False  # no progress bar

    def configure(self) -> None:
        self.add_argument("name")
        self.add_argument("--from", dest="release", choices=RELEASES, required=True,
                          help="(str, required) whose release the features are (VadCLIP: github.com/nwpu-zxr/VadCLIP)")


def run(args: Arguments) -> int:
    return IMPORTERS[args.release](
        args.name, args.benchmark, args.train_list, args.test_list, args.annotations, features=args.features,
        batch_size=args.batch_size, dictionary_ratio=args.dictionary_ratio, root_path=args.root_path,
        dictionary_path=args.dictionary_path, progress=not args.no_progress,
    )  # fmt: skip
