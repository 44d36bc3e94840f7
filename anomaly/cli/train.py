"""Train S3R on a dataset, or evaluate a checkpoint (--inference --resume PATH).

    s3r train --dataset shanghaitech --version s3r-vad-0.1
    s3r train --dataset shanghaitech --inference --resume checkpoint/shanghaitech_s3r_i3d_best.pth

(or ``python tools/trainval_anomaly_detector.py`` with the same options). Exit status as every command's
(``anomaly.cli.command``): 0 done; 2 bad input, including a model whose scores are NaN or infinite ("training
diverged at step N" during training); 130/143 on SIGINT/SIGTERM, after saving the training state (continue with
--resume <state file>).
"""

from pathlib import Path
from typing import List, Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.config import load_dataset_config
from anomaly.data.description import check_dataset_name
from anomaly.precision import PRECISIONS
from anomaly.engine.report import PLOT_VIDEOS
from anomaly.engine.runner import Run
from anomaly.engine.training_state import seed_everything
from anomaly.errors import InputError, check_range
from anomaly.files import check_name
from anomaly.layout import MAX_SEED, TRAINING_SNIPPETS, check_feature_size


class Arguments(CommandArguments):
    """The published options, same names and defaults, plus ``--precision``, ``--save_freq``, ``--device``,
    ``--dictionary_max_iter``, ``--overwrite`` and ``--plot_videos``."""

    # network
    backbone: Optional[str] = None  # feature extractor of the features on disk (folder, file suffix; default: the dataset's, i3d)
    feature_size: Optional[int] = None  # feature channels (default: the dataset config's, 2048 for I3D)
    gpus: int = 1  # number of GPUs (one is used)
    lr: float = 0.001  # constant learning rate (0 takes the config's init_lr)
    batch_size: Optional[int] = None  # normal videos per batch, and as many anomalous ones (default: the dataset's, 32 for the published ones)
    workers: int = 0  # kept for compatibility: videos are read once into memory
    model_name: str = "s3r"  # name used in checkpoint and log file names
    dataset: str = "shanghaitech"  # a built-in dataset or one described under --root_path (s3r make-dataset)
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
    seed: int = -1  # random seed, 0 or more (-1: the dataset config's random_state)
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
        """Refuse impossible values before any work (exit status 2, one line)."""
        for name in ("version", "model_name"):  # both become file and folder names
            check_name(getattr(self, name), f"--{name}")
        for name in ("max_epoch", "quantize_size", "evaluate_freq", "report_k", "plot_freq"):
            check_range(getattr(self, name), f"--{name}", minimum=1, integer=True)
        if self.batch_size is not None:
            check_range(self.batch_size, "--batch_size", minimum=1, integer=True)
        for name in ("save_freq", "evaluate_min_step"):
            check_range(getattr(self, name), f"--{name}", minimum=0, integer=True)
        if self.dictionary_max_iter is not None:
            check_range(self.dictionary_max_iter, "--dictionary_max_iter", minimum=1, integer=True)
        check_range(self.seed, "--seed", minimum=-1, maximum=MAX_SEED, integer=True,
                    fix="-1 takes the dataset config's seed")
        check_range(self.lr, "--lr", minimum=0, fix="0 takes the config's init_lr")
        check_range(self.dropout, "--dropout", minimum=0, below=1)
        if self.feature_size is not None:
            check_feature_size(self.feature_size, "--feature_size")
        if self.backbone is not None:
            check_dataset_name(self.backbone, what="a backbone name")
        if self.inference and not self.resume:
            raise InputError(None, "--inference needs --resume PATH, the checkpoint to evaluate")


def run(args: Arguments) -> int:
    config = load_dataset_config(args.dataset, args.root_path, args.dictionary_path, args.feature_size,
                                 dictionary_max_iter=args.dictionary_max_iter, backbone=args.backbone)
    seed_everything(config.random_state if args.seed == -1 else args.seed)
    if args.batch_size is None:
        args.batch_size = config.batch_size
    args.backbone = config.backbone
    run = Run(args, config)
    if args.inference:
        run.infer()
    else:
        run.train()
    return 0
