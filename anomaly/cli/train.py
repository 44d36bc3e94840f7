"""Train S3R on a dataset, or evaluate a checkpoint (--inference --resume PATH).

    python tools/trainval_anomaly_detector.py --dataset shanghaitech --version s3r-vad-0.1
    python tools/trainval_anomaly_detector.py --dataset shanghaitech --inference --resume checkpoint/shanghaitech_s3r_i3d_best.pth

Exit status: 0 done, 1 the model scored NaN or infinity, 2 bad input (one line on stderr says what and where),
130/143 interrupted by
SIGINT/SIGTERM after saving the training state (continue with --resume <state file>).
"""

import sys
from pathlib import Path
from typing import List, Literal, Optional

from tap import Tap

from anomaly.cli import check_feature_size_option
from anomaly.config import load_dataset_config
from anomaly.data.catalog import DATASET_NAMES
from anomaly.precision import PRECISIONS
from anomaly.engine.metrics import NonFiniteScores
from anomaly.engine.report import PLOT_VIDEOS
from anomaly.engine.runner import Run, TrainingInterrupted
from anomaly.engine.training_state import seed_everything
from anomaly.errors import InputError
from anomaly.files import check_name
from anomaly.layout import TRAINING_SNIPPETS


class S3RArgumentParser(Tap):
    """The published options, same names and defaults, plus ``--precision``, ``--save_freq``, ``--device``,
    ``--dictionary_max_iter``, ``--overwrite`` and ``--plot_videos``."""

    # network
    backbone: Literal["i3d", "c3d"] = "i3d"  # feature extractor of the features on disk
    feature_size: Optional[int] = None  # feature channels (default: the dataset config's, 2048 for I3D)
    gpus: int = 1  # number of GPUs (one is used)
    lr: float = 0.001  # constant learning rate (0 takes the config's init_lr)
    batch_size: int = 32  # normal videos per batch, and as many anomalous ones
    workers: int = 0  # kept for compatibility: videos are read once into memory
    model_name: str = "s3r"  # name used in checkpoint and log file names
    dataset: Literal[DATASET_NAMES] = "shanghaitech"  # dataset to train
    plot_freq: int = 10  # progress-bar refresh interval, in steps
    max_epoch: int = 15000  # number of training steps
    dropout: float = 0.7  # dropout ratio
    quantize_size: int = TRAINING_SNIPPETS  # snippets per training video after resampling

    # paths
    root_path: Path = Path("data")  # folder of lists, ground truth and features
    log_path: Path = Path("logs")  # folder of logs (one sub-folder per version)
    checkpoint_path: Path = Path("checkpoint")  # folder of checkpoints (one sub-folder per version)
    dictionary_path: Path = Path("dictionary")  # folder of dictionaries
    dictionary_max_iter: Optional[int] = None  # iterations in the dictionary's file name (default: config's, 100)
    resume: Optional[str] = None  # a published-layout .pth (weights) or a training state (.state) to continue

    # evaluation
    evaluate_freq: int = 1  # evaluate every this many steps ...
    evaluate_min_step: int = 5000  # ... once past this step

    # misc
    seed: int = -1  # random seed (-1: the dataset config's random_state)
    version: str = "vad-1.0"  # experiment name: sub-folder of logs and checkpoints
    debug: bool = False  # run 3 steps, evaluating after each
    inference: bool = False  # with --resume: evaluate only, print the table and write per-video scores
    report_k: int = 10  # number of best evaluations in the final table
    descr: List[str] = ["S3R", "video", "anomaly", "detection"]  # description of the run

    # additions to the published options
    precision: Literal[PRECISIONS] = "fp32"  # arithmetic (fp32: published); bf16 where native (CUDA, or a CPU with AVX512-BF16/AMX), else fp32 with a one-line note
    save_freq: int = 100  # save the full training state every this many steps (0: only at the end)
    device: Optional[str] = None  # torch device (default: cuda when available, else cpu)
    overwrite: bool = False  # replace an earlier run's files in the --version folders (else they are refused)
    plot_videos: Literal[PLOT_VIDEOS] = "anomalous"  # --inference: which videos get a score-curve PNG

    def process_args(self) -> None:
        """Refuse impossible values here, with argparse's usage line and exit status 2."""
        for name in ("version", "model_name"):  # both become file and folder names
            try:
                check_name(getattr(self, name), f"--{name}")
            except InputError as error:
                self.error(str(error))
        if self.dictionary_max_iter is not None and self.dictionary_max_iter < 1:
            self.error(f"--dictionary_max_iter must be at least 1, not {self.dictionary_max_iter}")
        for name in ("batch_size", "max_epoch", "quantize_size", "evaluate_freq", "report_k", "plot_freq"):
            if getattr(self, name) < 1:
                self.error(f"--{name} must be at least 1, not {getattr(self, name)}")
        for name in ("save_freq", "evaluate_min_step", "lr"):
            if getattr(self, name) < 0:
                self.error(f"--{name} cannot be negative, not {getattr(self, name)}")
        check_feature_size_option(self, self.feature_size)
        if not 0.0 <= self.dropout < 1.0:
            self.error(f"--dropout must be in [0, 1), not {self.dropout}")
        if self.inference and not self.resume:
            self.error("--inference needs --resume PATH, the checkpoint to evaluate")


def main(argv=None) -> int:
    args = S3RArgumentParser().parse_args(argv)
    try:
        config = load_dataset_config(args.dataset, args.root_path, args.dictionary_path, args.feature_size,
                                     dictionary_max_iter=args.dictionary_max_iter)
        seed_everything(args.seed if args.seed > 0 else config.random_state)
        run = Run(args, config)
        if args.inference:
            run.infer()
        else:
            run.train()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteScores as error:  # a checkpoint whose scores overflow: an unusable input
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interruption:
        print(str(interruption), file=sys.stderr)
        return 128 + interruption.signal_number
    except KeyboardInterrupt:
        print("interrupted outside the training steps (during them, SIGINT saves the state first)", file=sys.stderr)
        return 130
    return 0
