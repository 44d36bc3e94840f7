"""The datasets this project knows: one list, read by the options, the tools and the configs.

Each entry gives what differs between datasets before any config is read: how many crops a snippet has in the
released features and which frame-level metric the published tables report. ``annotated`` datasets have
official annotations that ``tools/make_ground_truth.py`` and ``tools/make_video_lists.py`` read; the synthetic one
is generated with its lists and ground truth (``tools/make_synthetic_dataset.py``).
"""

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class Dataset:
    name: str
    num_crops: int  # crops per snippet in the released I3D features
    metric: str  # "AUC": frame-level ROC AUC; "AP": frame-level average precision
    annotated: bool  # official annotations exist (ground truth and lists are built from them)


DATASETS: Dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        Dataset("shanghaitech", num_crops=10, metric="AUC", annotated=True),
        Dataset("ucf-crime", num_crops=10, metric="AUC", annotated=True),
        Dataset("xd-violence", num_crops=5, metric="AP", annotated=True),  # RTFM's XD-Violence release: 5 crops
        Dataset("synthetic", num_crops=10, metric="AUC", annotated=False),
    )
}
DATASET_NAMES: Tuple[str, ...] = tuple(DATASETS)
ANNOTATED_DATASETS: Tuple[str, ...] = tuple(name for name, dataset in DATASETS.items() if dataset.annotated)
