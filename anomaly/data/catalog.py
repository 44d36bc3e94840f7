"""The datasets this project knows: one list, read by the options, the tools and the configs.

Each entry gives what differs between datasets before any config is read: how many crops a snippet has in the
released features and which frame-level metric the published tables report. ``annotated`` datasets have
official annotations that ``tools/make_ground_truth.py`` and ``tools/make_video_lists.py`` read; the synthetic one
and the XD-Violence-shaped one are generated with their lists and ground truth (``tools/make_synthetic_dataset.py``,
``--shape xd-violence`` for the second). ``published`` is the S3R
paper's figure (frame AUC, %), which ``tools/summarize_runs.py`` puts beside re-trained runs; ``per_class_auc``:
the ids start with the class name (UCF-Crime's ``Abuse028_x264``), so ``--inference`` reports an AUC per class.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Dataset:
    name: str
    num_crops: int  # crops per snippet in the released I3D features
    metric: str  # "AUC": frame-level ROC AUC; "AP": frame-level average precision
    annotated: bool  # official annotations exist (ground truth and lists are built from them)
    published: Optional[float] = None  # the S3R paper's figure of this dataset, in %
    per_class_auc: bool = False  # ids begin with their class: report an AUC per class


DATASETS: Dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        Dataset("shanghaitech", num_crops=10, metric="AUC", annotated=True, published=97.40),
        Dataset("ucf-crime", num_crops=10, metric="AUC", annotated=True, published=85.99, per_class_auc=True),
        Dataset("xd-violence", num_crops=5, metric="AP", annotated=True),  # RTFM's XD-Violence release: 5 crops
        Dataset("synthetic", num_crops=10, metric="AUC", annotated=False),
        Dataset("xd-violence-synthetic", num_crops=5, metric="AP", annotated=False),  # --shape xd-violence
    )
}
DATASET_NAMES: Tuple[str, ...] = tuple(DATASETS)
ANNOTATED_DATASETS: Tuple[str, ...] = tuple(name for name, dataset in DATASETS.items() if dataset.annotated)
