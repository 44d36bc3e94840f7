"""Command-line options of ``tools/trainval_anomaly_detector.py``: the published ones, same names and defaults,
plus ``--precision``, ``--save_freq`` and ``--device``."""

from pathlib import Path
from typing import List, Literal, Optional

from tap import Tap

class S3RArgumentParser(Tap):
    # network
    backbone: Literal["i3d", "c3d"] = "i3d"  # feature extractor of the features on disk
    feature_size: Optional[int] = None  # feature channels (default: the dataset config's, 2048 for I3D)
    gpus: int = 1  # number of GPUs (one is used)
    lr: float = 0.001  # constant learning rate (0 takes the config's init_lr)
    batch_size: int = 32  # normal videos per batch, and as many anomalous ones
    workers: int = 0  # kept for compatibility: videos are read once into memory
    model_name: str = "s3r"  # name used in checkpoint and log file names
    dataset: Literal["shanghaitech", "ucf-crime", "xd-violence", "synthetic"] = "shanghaitech"  # dataset to train
    plot_freq: int = 10  # progress-bar refresh interval, in steps
    max_epoch: int = 15000  # number of training steps
    dropout: float = 0.7  # dropout ratio
    quantize_size: int = 32  # snippets per training video after resampling

    # paths
    root_path: Path = Path("data")  # folder of lists, ground truth and features
    log_path: Path = Path("logs")  # folder of logs (one sub-folder per version)
    checkpoint_path: Path = Path("checkpoint")  # folder of checkpoints (one sub-folder per version)
    dictionary_path: Path = Path("dictionary")  # folder of dictionaries
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
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"  # arithmetic of training and evaluation (fp32: published); bf16 runs where native (CUDA, or a CPU with AVX512-BF16/AMX), elsewhere fp32 with a one-line note
    save_freq: int = 100  # save the full training state every this many steps (0: only at the end)
    device: Optional[str] = None  # torch device (default: cuda when available, else cpu)

    def process_args(self) -> None:
        """Refuse impossible values here, with argparse's usage line and exit status 2."""
        for name in ("batch_size", "max_epoch", "quantize_size", "evaluate_freq", "report_k", "plot_freq"):
            if getattr(self, name) < 1:
                self.error(f"--{name} must be at least 1, not {getattr(self, name)}")
        for name in ("save_freq", "evaluate_min_step", "lr"):
            if getattr(self, name) < 0:
                self.error(f"--{name} cannot be negative, not {getattr(self, name)}")
        if self.feature_size is not None and (self.feature_size < 32 or self.feature_size % 32):
            self.error(f"--feature_size must be a positive multiple of 32, not {self.feature_size}")
        if not 0.0 <= self.dropout < 1.0:
            self.error(f"--dropout must be in [0, 1), not {self.dropout}")
        if self.inference and not self.resume:
            self.error("--inference needs --resume PATH, the checkpoint to evaluate")
