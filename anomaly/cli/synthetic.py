"""Write a synthetic dataset in the real on-disk layout (lists, ground truth, ten-crop features) from a seed.

    python tools/make_synthetic_dataset.py                       # data/synthetic/, 128 channels, seed 0
    python tools/make_synthetic_dataset.py --feature_size 2048   # a full-size one

ShanghaiTech-like proportions and lengths; see anomaly/data/synthetic.py for how the features are made. When the
same dataset (same sizes and seed) is already there nothing is done; a different one is replaced only with
--overwrite (and only if it is a synthetic dataset). The number of anomalous training videos (the first rows of
the training list) is printed and recorded in ``<root>/<name>/<name>.spec.json``, where the synthetic config
(``num_anomalous_train = None``) and the dictionary script read it. Impossible sizes (max_length below
min_length, feature_size not a multiple of 32, ...) or a --root that is a file: one line on stderr, exit status 2.
"""

import sys
from dataclasses import fields
from pathlib import Path

from tap import Tap

from anomaly.data.synthetic import (
    DEFAULT_NAME,
    DEFAULT_SPEC,
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


class SyntheticArgs(Tap):
    root: Path = Path("data")  # datasets folder
    name: str = DEFAULT_NAME  # dataset name and folder
    overwrite: bool = False  # replace an existing synthetic dataset
    # ... and one option per field of SyntheticSpec (its single source of truth), added in configure

    def configure(self) -> None:
        for field in fields(SyntheticSpec):
            default = getattr(DEFAULT_SPEC, field.name)
            self.add_argument(f"--{field.name}", type=type(default), default=default,
                              help=f"{HELP[field.name]} (default: {default})")


def parse_args(argv=None) -> SyntheticArgs:
    return SyntheticArgs(description=__doc__.split("\n\n")[0]).parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    base = args.root / args.name
    try:
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
    except (InputError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{info['base']}: {len(info['training_ids'])} training videos (the first {info['num_anomalous_train']} "
          f"anomalous), {len(info['testing_ids'])} test videos, {spec.feature_size} channels")
    return 0
