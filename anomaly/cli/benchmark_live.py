"""What live detection costs here: the accuracy of causal scores beside offline ones, and the speed of a snippet.

    s3r benchmark-live --dataset synthetic --checkpoint checkpoint/demo/synthetic_s3r_i3d_best.pth
    python tools/benchmark_live.py --dataset shanghaitech --checkpoint checkpoint/shanghaitech_s3r_i3d_best.pth
    s3r benchmark-live --no_causality                  # the throughput alone

With --checkpoint: the dataset's test videos scored causally (every snippet on the window of the --windows W
snippets up to it and --lookaheads L after it, as s3r watch scores a stream) and offline (each video whole, as
--inference); the frame AUC and AP of each. Then, unless --no_throughput: the time of a snippet here (the I3D forward
of one clip with each of --crops in each --precision, S3R on a window of 16), the window's share of it, the snippets
per second, whether 25 and 30 fps streams are kept up with, and the GFLOP, GFLOP/s and share of the machine's peak
of the I3D and of the window. See anomaly/live/benchmark.py.

    s3r benchmark-live --no_causality --precision fp32 bf16 auto --crops 1 5
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.config import load_dataset_config
from anomaly.engine.evaluator import DeviceTestSet
from anomaly.engine.detector_file import load_s3r
from anomaly.engine.runner import Datasets
from anomaly.errors import InputError, check_choice
from anomaly.hardware import resolve_device
from anomaly.layout import FRAME_READINGS, NUM_CROPS, check_feature_size
from anomaly.live.benchmark import LOOKAHEADS, WINDOWS, causality, throughput
from anomaly.precision import NETWORK_CHOICES


class Arguments(CommandArguments):
    dataset: str = "synthetic"  # a built-in dataset or one described under --root_path
    checkpoint: Optional[Path] = None  # S3R weights trained on --dataset (a .pth or a training state)
    root_path: Path = Path("data")  # folder of lists, ground truth and features
    dictionary_path: Path = Path("dictionary")  # folder of dictionaries
    feature_size: Optional[int] = None  # feature channels (default: the dataset config's)
    backbone: str = "i3d"  # feature network: of the features on disk (causality), and the one timed (throughput: i3d or clip)
    clip_frames: Optional[Literal[FRAME_READINGS]] = None  # clip: a row of the mean of 16 frames' embeddings (default) or the middle frame's
    windows: List[int] = list(WINDOWS)  # window lengths W, in snippets
    lookaheads: List[int] = list(LOOKAHEADS)  # lookaheads L, in snippets
    crops: List[int] = [1, 10]  # crop counts of the throughput
    precision: List[str] = ["fp32"]  # the network's precisions of the throughput (fp32, bf16, auto: one row each)
    repeats: int = 3  # timed runs of each part of a snippet (the median is kept)
    device: Optional[str] = None  # cpu, cuda or cuda:N (default: CUDA when present)
    no_causality: bool = False  # skip the causality table
    no_throughput: bool = False  # skip the throughput

    def configure(self) -> None:
        for name in ("windows", "lookaheads", "crops"):
            self.add_argument(f"--{name}", type=int, nargs="+")
        self.add_argument("--precision", nargs="+")

    def process_args(self) -> None:
        if self.feature_size is not None:
            check_feature_size(self.feature_size, "--feature_size")
        for count in self.crops:
            check_choice(count, NUM_CROPS, "--crops")
        for precision in self.precision:
            check_choice(precision, NETWORK_CHOICES, "--precision")
        if self.no_causality and self.no_throughput:
            raise InputError(None, "--no_causality and --no_throughput leave nothing to measure")
        if not self.no_causality and self.checkpoint is None:
            raise InputError(None, "the causality table needs --checkpoint, S3R weights trained on --dataset (or "
                             "--no_causality for the throughput alone)")


def run(args: Arguments) -> int:
    device = resolve_device(args.device, "the live benchmark")
    if not args.no_causality:
        config = load_dataset_config(args.dataset, args.root_path, args.dictionary_path, args.feature_size)
        feature_size = args.feature_size or config.feature_size
        model = load_s3r(args.checkpoint, feature_size, device)
        data = Datasets(args, config, feature_size, with_training=False)
        test_set = DeviceTestSet(data.test, device, config.metric)
        result = causality(model, test_set, args.dataset, args.windows, args.lookaheads)
        print(result.table())
        print(f"checkpoint {args.checkpoint}; {result.seconds:.0f} s on {device}")
    if not args.no_throughput:
        print(throughput(device, args.crops, args.precision, args.repeats, backbone=args.backbone,
                         frames=args.clip_frames).table())
    return 0
