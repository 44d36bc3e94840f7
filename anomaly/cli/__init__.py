"""The command line: one ``s3r`` command whose subcommands are the project's tools (see ``anomaly.cli.command``).

Each tool is a module here with an ``Arguments`` option parser (a ``CommandArguments``) and ``run(args) -> int``.
``COMMANDS`` names them with the one line ``s3r --help`` shows; modules are imported only when their command runs,
so ``s3r --help`` starts at once. The published scripts (``tools/<script>.py``,
``data/<dataset>/<dataset>_dictionary_learning.py``) run the same commands.
"""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Command:
    module: str  # under anomaly.cli
    summary: str  # the line of ``s3r --help``


COMMANDS: Dict[str, Command] = {
    "train": Command("train", "train S3R on a dataset, or evaluate a checkpoint (--inference)"),
    "learn-dictionary": Command("learn_dictionary", "regular features and the task-aware dictionary of a dataset"),
    "ground-truth": Command("ground_truth", "frame-level ground truth from a dataset's official annotations"),
    "video-lists": Command("video_lists", "a dataset's video-id list, anomalous videos first"),
    "synthetic": Command("synthetic", "write the synthetic dataset (ShanghaiTech- or XD-Violence-shaped)"),
    "extract": Command("extract_features", "ten-crop I3D features of your own videos"),
    "detect": Command("detect_anomalies", "the anomaly curve of your own videos (CSV, PNG, report page, segments)"),
    "watch": Command("watch", "live anomaly scores of a camera, stream or video as it plays, alerts and a report"),
    "export": Command("export", "a detector and its feature network as ONNX and OpenVINO models, with a manifest"),
    "make-dataset": Command("make_dataset", "a trainable dataset from folders of your videos and their annotations"),
    "import-features": Command("import_features", "a trainable dataset from released features (VadCLIP's CLIP ones)"),
    "summarize": Command("summarize_runs", "best value per run and mean ± std over seeds, beside the paper's"),
    "benchmark": Command("benchmark", "how fast training and evaluation run here, against the published way"),
    "benchmark-extraction": Command("benchmark_extraction", "how fast feature extraction runs here"),
    "benchmark-bf16": Command("benchmark_bf16", "what bf16 I3D changes: features against fp32, a detector's scores"),
    "benchmark-live": Command("benchmark_live", "the AUC that live (causal) scores give up, and a snippet's speed here"),
}
