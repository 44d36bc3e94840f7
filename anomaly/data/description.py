"""A dataset defined by data: ``<root>/<name>/<name>.dataset.json`` declares what the catalog and a config declare
for a built-in dataset, so that every tool taking ``--dataset`` treats it as one of them.

The file is JSON, written by ``s3r make-dataset`` and readable and editable by hand::

    {
      "format": "s3r-dataset/1",
      "name": "my-cameras",
      "backbone": "i3d",
      "feature_size": 2048,
      "num_crops": 1,
      "preset": "rtfm",
      "frames": null,
      "weights_sha256": "5b2d…",
      "frame_rate": "native",
      "metric": "AUC",
      "num_anomalous_train": 4,
      "dictionary_ratio": 90,
      "batch_size": 4,
      "random_state": 823
    }

- ``name``: a plain name without '_' (run files are ``<dataset>_<model>_<backbone>``), the folder's;
- ``backbone``: the features' network: ``<root>/<name>/<backbone>/{train,test}/<id>_<backbone>.npy``;
- ``feature_size``, ``num_crops``: channels C and crops N (10, 5 or 1) of the features;
- ``preset``: the extraction recipe of the features (rtfm, gowtham, vadclip), or null for features made elsewhere;
- ``frames``: how a per-frame network (CLIP) made a row of 16 frames (``--clip_frames``: mean, middle), null for
  I3D or where not known; ``weights_sha256``: the SHA-256 of the network's weights file, null where not known
  (both may be left out);
- ``frame_rate``: "native", every decoded frame, 16 to a snippet, at each video's own rate;
- ``metric``: frame-level AUC, or AP;
- ``num_anomalous_train``: the training list's first rows are the anomalous videos;
- ``dictionary_ratio``: dictionary atoms in % of the normal training videos (an integer: it names the file);
- ``batch_size``: videos per class in a training step (the trainer's default);
- ``random_state``: the trainer's seed by default.

Every field is checked when read (one line naming the file and the field); the config loader
(``anomaly.config``) also compares crops and channels with the first training video's feature header.
"""

import json
import re
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Optional, Union

from anomaly.data.catalog import DATASETS
from anomaly.data.ground_truth import read_text_file
from anomaly.errors import InputError, check_choice, check_range
from anomaly.files import ensure_folder, save_text
from anomaly.layout import FRAME_RATES, FRAME_READINGS, MAX_SEED, NUM_CROPS, PRESET_NAMES, description_file_name

PathLike = Union[str, Path]
DESCRIPTION_FORMAT = "s3r-dataset/1"
METRICS = ("AUC", "AP")
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def check_dataset_name(name: str, source: Optional[PathLike] = None, what: str = "a dataset name") -> str:
    """``name`` unchanged when it can name a dataset (or, as ``what`` says, another part of a run file's name):
    letters, digits, '.' and '-' (no '_', no path), not starting with '.' or '-'; a one-line InputError otherwise."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise InputError(source, f"{name!r} is not {what}: use letters, digits, '-' and '.', starting with a "
                         "letter or digit (no '_', which separates the parts of run file names, and no '/')")
    return name


@dataclass(frozen=True)
class DatasetDescription:
    name: str
    num_crops: int
    feature_size: int
    metric: str
    num_anomalous_train: int
    dictionary_ratio: int
    batch_size: int
    backbone: str = "i3d"
    preset: Optional[str] = None
    frames: Optional[str] = None
    weights_sha256: Optional[str] = None
    frame_rate: str = "native"
    random_state: int = 823

    def check(self, source: Optional[PathLike] = None) -> "DatasetDescription":
        """Every field within its range (one line naming ``source`` otherwise); returns itself."""
        check_dataset_name(self.name, source)
        if self.name in DATASETS:
            raise InputError(source, f"'{self.name}' is a built-in dataset; a described dataset needs another name")
        check_choice(self.num_crops, NUM_CROPS, "num_crops", source=source)
        check_range(self.feature_size, "feature_size", minimum=1, integer=True, source=source)
        check_choice(self.metric, METRICS, "metric", source=source)
        check_range(self.num_anomalous_train, "num_anomalous_train", minimum=1, integer=True, source=source)
        check_range(self.dictionary_ratio, "dictionary_ratio", minimum=1, maximum=100, integer=True, source=source)
        check_range(self.batch_size, "batch_size", minimum=1, integer=True, source=source)
        check_dataset_name(self.backbone, source, what="a backbone name")
        if self.preset is not None:
            check_choice(self.preset, PRESET_NAMES, "preset", fix="or null for features not made by s3r extract",
                         source=source)
        if self.frames is not None:
            check_choice(self.frames, FRAME_READINGS, "frames", fix="or null", source=source)
        if self.weights_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", str(self.weights_sha256)):
            raise InputError(source, f"weights_sha256 must be 64 lowercase hexadecimal digits or null, not "
                             f"{self.weights_sha256!r}")
        check_choice(self.frame_rate, FRAME_RATES, "frame_rate", source=source)
        check_range(self.random_state, "random_state", minimum=0, maximum=MAX_SEED, integer=True, source=source)
        return self

    def as_json(self) -> str:
        return json.dumps({"format": DESCRIPTION_FORMAT, **asdict(self)}, indent=2) + "\n"


def description_path(root: PathLike, name: str) -> Path:
    return Path(root) / name / description_file_name(name)


def write_description(description: DatasetDescription, root: PathLike) -> Path:
    path = description_path(root, description.name)
    text = description.check(path).as_json()
    ensure_folder(path.parent)
    save_text(text, path)
    return path


def read_description(root: PathLike, name: str) -> DatasetDescription:
    """The description of the dataset ``name`` under ``root``, every field checked."""
    path = description_path(root, check_dataset_name(name))
    if not path.is_file():
        raise InputError(None, f"unknown dataset '{name}': neither built in ({', '.join(DATASETS)}) nor described by "
                         f"{path} (s3r make-dataset writes one)")
    text = read_text_file(path, "dataset description")  # a byte-order mark (an editor's) is dropped
    try:
        content = json.loads(text)
    except ValueError as error:
        raise InputError(path, f"not a readable dataset description ({' '.join(str(error).split())})") from None
    return _description_from(content, path, name)


def _description_from(content: Any, path: Path, name: str) -> DatasetDescription:
    if not isinstance(content, dict) or content.get("format") != DESCRIPTION_FORMAT:
        raise InputError(path, f"not a dataset description: expected a JSON object with \"format\": "
                         f"\"{DESCRIPTION_FORMAT}\"")
    known = {field.name: field for field in fields(DatasetDescription)}
    unknown = sorted(set(content) - set(known) - {"format"})
    if unknown:
        raise InputError(path, f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(known)}")
    required = [field.name for field in known.values() if field.default is MISSING]
    missing = [field for field in required if field not in content]
    if missing:
        raise InputError(path, f"missing field(s) {', '.join(missing)}")
    values: Dict[str, Any] = {key: value for key, value in content.items() if key != "format"}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise InputError(path, f"{key} must be a single value, not {type(value).__name__}")
    description = DatasetDescription(**values).check(path)
    if description.name != name:
        raise InputError(path, f"describes the dataset '{description.name}', not '{name}' (its folder's name)")
    return description
