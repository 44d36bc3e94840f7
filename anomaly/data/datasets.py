"""Video lists, ground truth, dictionaries and the training / test datasets of RTFM-style feature folders.

On disk (see docs/file-formats.md):
``<root>/<dataset>/<dataset>.training.csv`` (header ``video-id``, anomalous videos first),
``<root>/<dataset>/<dataset>.testing.csv``, ``<root>/<dataset>/<dataset>_ground_truth.testing.json`` and
``<root>/<dataset>/<backbone>/{train,test}/<video_id>_<backbone>.npy`` (float32 ``T N C``).
Every video is read once and held in memory: training videos already resampled to ``quantize_size`` snippets.
"""

import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from anomaly.data.arrays import read_npy
from anomaly.data.ground_truth import read_text_file
from anomaly.data.features import feature_file, feature_folder, load_features, resample_snippets
from anomaly.layout import FRAMES_PER_SNIPPET, TRAINING_SNIPPETS
from anomaly.errors import InputError

PathLike = Union[str, Path]


DICTIONARY_AXES = (("S", "atoms"), ("C", "channels"))


def load_dictionary(path: PathLike, feature_size: Optional[int] = None) -> np.ndarray:
    """A dictionary of normal atoms: finite float32 ``S C``, ``C`` equal to the features' channel count."""
    dictionary = read_npy(path, "the dictionary", DICTIONARY_AXES,
                          missing="dictionary file not found (learn it with the dataset's dictionary-learning script)")
    if feature_size is not None and dictionary.shape[1] != feature_size:
        raise InputError(
            path, f"dictionary atoms have {dictionary.shape[1]} channels but the features have {feature_size}"
        )
    return dictionary


def load_ground_truth(path: PathLike, video_ids: Sequence[str]) -> Dict[str, np.ndarray]:
    """Frame labels (float32, one per frame) of each listed video from a ``{id: {num_frames, labels}}`` json.

    ``num_frames`` must be a non-negative integer (an integral JSON number) and ``labels`` a list of that many
    numbers, each 0 or 1; anything else (strings, booleans, NaN, nested lists, other JSON) is a one-line error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ground-truth file not found (build it with tools/make_ground_truth.py)")
    text = read_text_file(path, "ground-truth file")
    try:
        database = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        problem = "nested too deeply" if isinstance(error, RecursionError) else error
        raise InputError(path, f"not valid json ({problem})") from None
    if not isinstance(database, dict):
        raise InputError(path, f"expected a json object {{video_id: {{num_frames, labels}}}}, found a {type(database).__name__}")
    labels = {}
    for video_id in video_ids:
        if video_id not in database:
            raise InputError(path, f"no ground truth for test video '{video_id}'")
        labels[video_id] = _frame_labels(database[video_id], path, video_id)
    return labels


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _frame_labels(entry, path: Path, video_id: str) -> np.ndarray:
    """One ground-truth entry's labels, checked (see :func:`load_ground_truth`)."""
    if not isinstance(entry, dict) or "num_frames" not in entry or not isinstance(entry.get("labels"), list):
        raise InputError(path, f"entry '{video_id}' needs 'num_frames' and a list of numeric 'labels'")
    num_frames = entry["num_frames"]
    if not _is_number(num_frames) or not math.isfinite(num_frames) or num_frames != int(num_frames) or num_frames < 0:
        raise InputError(path, f"video '{video_id}': num_frames must be a non-negative integer, found {num_frames!r}")
    num_frames = int(num_frames)
    values = entry["labels"]
    if len(values) != num_frames:
        raise InputError(path, f"video '{video_id}' has {len(values)} labels but num_frames = {num_frames}")
    wrong = next((index for index, value in enumerate(values) if not _is_number(value) or value not in (0, 1)), None)
    if wrong is not None:
        raise InputError(path, f"video '{video_id}' has frame labels other than 0 and 1 (frame {wrong}: {values[wrong]!r})")
    return np.asarray(values, dtype=np.float32)


def load_split(
    root: PathLike,
    dataset: str,
    backbone: str,
    subset: str,
    video_ids: Sequence[str],
    num_crops: Optional[int],
    feature_size: int,
    prepare: Callable[[str, np.ndarray], np.ndarray],
    progress: bool,
    description: str,
) -> List[np.ndarray]:
    """``prepare(video_id, features)`` of each listed video of ``subset`` (train / test), in list order.

    Features are validated ``T N C`` arrays; without ``num_crops`` the first video's crop count becomes the one
    every other video must have. Only the prepared arrays are kept (a long video is resampled, then dropped).
    """
    prepared = []
    with tqdm(video_ids, desc=description, disable=not progress) as videos:
        for video_id in videos:
            features = load_features(feature_file(feature_folder(root, dataset, backbone, subset), video_id, backbone), num_crops, feature_size)
            num_crops = features.shape[1]
            prepared.append(prepare(video_id, features))
    return prepared


class TrainingVideos:
    """One class of training videos (normal or anomalous), resampled to ``quantize_size`` snippets, in memory.

    ``videos``: float32 ``V N quantize_size C``; ``label``: 0 normal, 1 anomalous.
    """

    def __init__(
        self,
        root: PathLike,
        dataset: str,
        video_ids: Sequence[str],
        label: int,
        dictionary: np.ndarray,
        backbone: str = "i3d",
        num_crops: Optional[int] = None,
        feature_size: Optional[int] = None,
        quantize_size: int = TRAINING_SNIPPETS,
        progress: bool = False,
    ):
        self.video_ids = list(video_ids)
        self.label = label
        self.dictionary = dictionary
        feature_size = dictionary.shape[1] if feature_size is None else feature_size
        videos = load_split(
            root, dataset, backbone, "train", self.video_ids, num_crops, feature_size,
            lambda _, features: resample_snippets(features, quantize_size),
            progress, f"loading {'anomalous' if label else 'normal'} training videos",
        )
        self.videos = np.stack(videos)

    def __len__(self) -> int:
        return len(self.video_ids)


class TestVideos:
    """The test split at full length, in csv order, with frame labels.

    ``videos``: list of float32 ``T N C``; ``frame_labels``: float32, all videos' frames concatenated.
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        root: PathLike,
        dataset: str,
        video_ids: Sequence[str],
        ground_truth: PathLike,
        dictionary: np.ndarray,
        backbone: str = "i3d",
        num_crops: Optional[int] = None,
        feature_size: Optional[int] = None,
        progress: bool = False,
    ):
        self.video_ids = list(video_ids)
        self.dictionary = dictionary
        feature_size = dictionary.shape[1] if feature_size is None else feature_size
        labels = load_ground_truth(ground_truth, self.video_ids)

        def check_length(video_id: str, features: np.ndarray) -> np.ndarray:
            expected = FRAMES_PER_SNIPPET * features.shape[0]
            if len(labels[video_id]) != expected:
                raise InputError(
                    ground_truth,
                    f"video '{video_id}' has num_frames = {len(labels[video_id])} but its features give "
                    f"16 x {features.shape[0]} = {expected}",
                )
            return features

        self.videos = load_split(
            root, dataset, backbone, "test", self.video_ids, num_crops, feature_size, check_length,
            progress, "loading test videos",
        )
        self.frame_labels = np.concatenate([labels[video_id] for video_id in self.video_ids])

    @property
    def lengths(self) -> List[int]:
        """Snippets T of each video, in list order."""
        return [len(video) for video in self.videos]

    def __len__(self) -> int:
        return len(self.video_ids)
