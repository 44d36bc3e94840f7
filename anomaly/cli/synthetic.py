"""Write a synthetic dataset in the real on-disk layout (lists, ground truth, crop features) from a seed.

    python tools/make_synthetic_dataset.py                       # data/synthetic/, 128 channels, seed 0
    python tools/make_synthetic_dataset.py --feature_size 2048   # a full-size one
    python tools/make_synthetic_dataset.py --shape xd-violence   # data/xd-violence-synthetic/, 5 crops, AP
    s3r synthetic --backbone clip                                # data/synthetic/clip/: CLIP-shaped, 512 channels

ShanghaiTech-like proportions and lengths, or XD-Violence-like ones with --shape xd-violence (each shape has its
dataset name, config and size defaults); see anomaly/data/synthetic.py for how the features are made. When the
same dataset (same sizes and seed) is already there nothing is done; a different one is replaced only with
--overwrite (and only if it is a synthetic dataset). The number of anomalous training videos (the first rows of
the training list) is printed and recorded in ``<root>/<name>/<name>.spec.json``, where the synthetic config
(``num_anomalous_train = None``) and the dictionary script read it. Impossible sizes (max_length below
min_length, feature_size not a multiple of 32, ...) or a --root that is a file are refused in one line.
"""

from dataclasses import fields
from pathlib import Path
from typing import Literal, Optional

from anomaly.cli.command import CommandArguments
from anomaly.layout import BACKBONE_FEATURE_SIZES, BACKBONE_NAMES, check_feature_size
from anomaly.data.catalog import SYNTHETIC_NAMES
from anomaly.data.synthetic import (
    SHAPE_SPECS,
    SHAPES,
    SyntheticSpec,
    existing_spec,
    make_synthetic_dataset,
    remove_synthetic_dataset,
)
from anomaly.errors import InputError

HELP = {
    "seed": "random seed: the same seed and sizes give the same files",
    "feature_size": "channels C, a positive multiple of 32 (the model needs it; 2048 is I3D's)",
    "num_crops": "crops N per snippet",
    "num_train_anomalous": "anomalous training videos, at least 1 (training needs --batch_size of them: 32 by "
                           "default; fewer is fine for tests with a smaller batch)",
    "num_train_normal": "normal training videos, at least 1 (training needs --batch_size of them, as above)",
    "num_test_anomalous": "anomalous test videos",
    "num_test_normal": "normal test videos",
    "num_scenes": "scenes (cameras) the videos are drawn from",
    "median_length": "median video length in snippets of 16 frames",
    "min_length": "shortest video, in snippets",
    "max_length": "longest video, in snippets",
}


SIZE_FIELDS = tuple(field.name for field in fields(SyntheticSpec) if field.name not in ("shape", "backbone"))


class Arguments(CommandArguments):
    root: Path = Path("data")  # datasets folder
    shape: Literal[SHAPES] = "shanghaitech"  # the real dataset imitated: names, crops, class balance, lengths
    name: Optional[str] = None  # dataset name and folder (default: the shape's, synthetic / xd-violence-synthetic)
    backbone: Literal[BACKBONE_NAMES] = "i3d"  # whose features' place it takes: <name>/<backbone>/; clip: 512 channels unless --feature_size
    overwrite: bool = False  # replace an existing synthetic dataset
    # ... and one option per size field of SyntheticSpec (its single source of truth), added in configure

    def configure(self) -> None:
        for name in SIZE_FIELDS:
            defaults = " / ".join(str(getattr(SHAPE_SPECS[shape], name)) for shape in SHAPES)
            self.add_argument(f"--{name}", type=type(getattr(SHAPE_SPECS[SHAPES[0]], name)), default=None,
                              help=f"{HELP[name]} (default: {defaults} for --shape {' / '.join(SHAPES)})")

    def process_args(self) -> None:
        """Fill the size options not given, and the name, from the shape's defaults."""
        if self.feature_size is None and self.backbone != "i3d":  # i3d's default stays small: the demo's
            self.feature_size = BACKBONE_FEATURE_SIZES[self.backbone]
        for name in SIZE_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(SHAPE_SPECS[self.shape], name))
        if self.name is None:
            self.name = SYNTHETIC_NAMES[self.shape]
        if self.feature_size is not None:
            check_feature_size(self.feature_size, "--feature_size")


def run(args: Arguments) -> int:
    base = args.root / args.name
    spec = SyntheticSpec(**{field.name: getattr(args, field.name) for field in fields(SyntheticSpec)})
    if existing_spec(args.root, args.name) == spec and not args.overwrite:
        print(f"{base}: already there (same sizes and seed); the first {spec.num_train_anomalous} training "
              "videos are anomalous")
        return 0
    if base.exists():
        if not args.overwrite:
            raise InputError(base, "already exists with other sizes or seed; pass --overwrite to replace it")
        remove_synthetic_dataset(args.root, args.name)
    info = make_synthetic_dataset(args.root, args.name, spec, progress=True)
    print(f"{info['base']}: {len(info['training_ids'])} training videos (the first {info['num_anomalous_train']} "
          f"anomalous), {len(info['testing_ids'])} test videos, {spec.num_crops} crops of {spec.feature_size} channels")
    return 0
