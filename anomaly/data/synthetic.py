"""A synthetic dataset in the real on-disk layout, for the demo and the tests.

``<root>/<name>/``: ``<name>.training.csv`` (anomalous videos first), ``<name>.testing.csv``,
``<name>_ground_truth.testing.json`` (the published json format) and ``<backbone>/{train,test}/<id>_<backbone>.npy``
float32 ``[T, N, C]`` (``i3d`` by default; ``clip`` for features shaped as CLIP's, 512 channels from the command
line), and ``<name>.spec.json`` (the sizes, seed, shape and backbone, written last).

Two shapes (``SyntheticSpec.shape``, presets in :data:`SHAPE_SPECS`, dataset names in ``anomaly.data.catalog.SYNTHETIC_NAMES``):

- ``shanghaitech`` (dataset ``synthetic``): 10 crops; ids look like ShanghaiTech's, ``<scene>_<number>``, and tell
  neither split nor label; the test list puts the anomalous videos first, as ShanghaiTech's.
- ``xd-violence`` (dataset ``xd-violence-synthetic``, evaluated by AP): 5 crops, as RTFM's XD-Violence release;
  names as in the official lists, ``<Movie.Name.Year>__#HH-MM-SS_HH-MM-SS_label_A`` for normal videos and
  ``..._label_B1-0-0`` style for violent ones (1-3 of the classes B1 B2 B4 B5 B6 G, padded with 0); the class
  balance of the official split (1,905 violent of 3,954 training videos, 500 of 800 test videos) scaled down 50
  times, longer videos (median 90 snippets), and a test list sorted by name, as the official one.

How the features are made (everything from one seed):

- Proportions and lengths follow ShanghaiTech: about a quarter of the videos are anomalous; lengths are
  log-normal (median ~40 snippets: many short videos, a few long ones); every anomalous video (training ones
  too) holds 1-3 anomalous events of frame-level extent covering roughly 10-60 % of it.
- A snippet is ``softplus(h)`` (non-negative, sparse-ish like pooled ReLU activations of I3D) times a gain,
  where the pre-activation ``h`` = the scene's mean pattern (per-scene structure) + normal activity (8 shared
  and 4 scene-specific directions driven by AR(1) processes: temporal smoothness) + smooth noise + a per-crop
  offset (each of the 10 crops sees other content). The gain varies per video and slowly over time
  (lighting, crowd density), so feature norms vary a lot among normal snippets.
- An anomalous event adds one of a few anomaly patterns (a fixed direction in ``h``, partly positive, partly
  negative) with a random strength, weighted by how much of each snippet's 16 frames the event covers and by
  how visible it is in each crop. Each anomalous snippet is then rescaled to the norm it would have had
  without the anomaly (±3 %), so a per-snippet norm threshold carries almost no information, while the
  pattern is consistent across videos and can be learned from video-level labels.
"""

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from anomaly.data.catalog import SYNTHETIC_NAMES
from anomaly.data.features import feature_file, feature_folder
from anomaly.data.ground_truth import write_ground_truth
from anomaly.layout import BACKBONE_NAMES, FRAMES_PER_SNIPPET, check_feature_size
from anomaly.data.video_lists import write_video_list
from anomaly.errors import InputError, check_choice, check_range
from anomaly.files import ensure_folder, save_npy, save_text

PathLike = Union[str, Path]
DEFAULT_NAME = SYNTHETIC_NAMES["shanghaitech"]  # the dataset of the default shape


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of a synthetic dataset; impossible sizes raise a one-line InputError.

    The defaults keep ``make demo`` quick on 2 CPU cores and fill one training batch (32) of each class. Smaller
    counts are allowed (tests use a few videos): the trainer itself refuses a class with fewer videos than
    ``--batch_size``, with a clear message.
    """

    seed: int = 0
    feature_size: int = 128
    num_crops: int = 10
    num_train_anomalous: int = 36
    num_train_normal: int = 84
    num_test_anomalous: int = 12
    num_test_normal: int = 38
    num_scenes: int = 8
    median_length: float = 40.0  # snippets
    min_length: int = 8
    max_length: int = 160
    shape: str = "shanghaitech"  # which real dataset's names, crops, balance and lengths it imitates
    backbone: str = "i3d"  # the network whose features' place (folder, file names) it takes

    def __post_init__(self) -> None:
        check_choice(self.shape, SHAPES, "shape")
        check_choice(self.backbone, BACKBONE_NAMES, "backbone")
        for name in ("num_train_anomalous", "num_train_normal", "num_test_anomalous", "num_test_normal"):
            check_range(getattr(self, name), name, minimum=1, integer=True,
                        fix="a synthetic dataset needs at least one video of each class in each split")
        check_feature_size(self.feature_size)
        for name in ("num_crops", "num_scenes", "min_length"):
            check_range(getattr(self, name), name, minimum=1, integer=True)
        check_range(self.seed, "seed", minimum=0, integer=True)
        check_range(self.max_length, "max_length", minimum=self.min_length, integer=True, fix="it is below min_length")
        check_range(self.median_length, "median_length", minimum=1, fix="it is a length in snippets")


SHAPES = ("shanghaitech", "xd-violence")
DEFAULT_SPEC = SyntheticSpec()
XD_VIOLENCE_SPEC = SyntheticSpec(
    shape="xd-violence", num_crops=5, num_train_anomalous=38, num_train_normal=41, num_test_anomalous=10,
    num_test_normal=6, median_length=90.0, max_length=480,
)
SHAPE_SPECS = {"shanghaitech": DEFAULT_SPEC, "xd-violence": XD_VIOLENCE_SPEC}
XD_VIOLENCE_CLASSES = ("B1", "B2", "B4", "B5", "B6", "G")  # fighting, shooting, riot, abuse, car accident, explosion
XD_VIOLENCE_MOVIES = ("Bad.Boys.1995", "Brave.Heart.1995", "Deadpool.2016", "Ip.Man.2008", "John.Wick.2014",
                      "Mission.Impossible.1996", "The.Matrix.1999", "Heat.1995")

NUM_ACTIVITIES = 8  # normal activity directions shared by all scenes
NUM_SCENE_ACTIVITIES = 4  # normal activity directions of each scene
NUM_ANOMALY_TYPES = 4


@dataclass
class _World:
    """Everything shared by the videos of one dataset."""

    scene_mean: np.ndarray  # scenes × C
    activities: np.ndarray  # A × C
    scene_activities: np.ndarray  # scenes × A_s × C
    crop_offsets: np.ndarray  # crops × C
    anomaly_patterns: np.ndarray  # types × C


def _make_world(spec: SyntheticSpec, rng: np.random.Generator) -> _World:
    channels = spec.feature_size
    shared_mean = rng.normal(-0.8, 0.6, channels)
    scene_mean = shared_mean + rng.normal(0.0, 0.45, (spec.num_scenes, channels))
    activities = rng.normal(0.0, 0.35, (NUM_ACTIVITIES, channels))
    scene_activities = rng.normal(0.0, 0.3, (spec.num_scenes, NUM_SCENE_ACTIVITIES, channels))
    crop_offsets = rng.normal(0.0, 0.2, (spec.num_crops, channels))
    patterns = np.zeros((NUM_ANOMALY_TYPES, channels))
    for pattern in patterns:
        up = rng.choice(channels, size=max(2, channels // 8), replace=False)
        rest = np.setdiff1d(np.arange(channels), up)
        down = rng.choice(rest, size=max(2, channels // 8), replace=False)
        pattern[up] = rng.uniform(0.8, 1.6, len(up))
        pattern[down] = -rng.uniform(0.6, 1.2, len(down))
    return _World(scene_mean, activities, scene_activities, crop_offsets, patterns)


def _ar1(rng: np.random.Generator, length: int, dims: int, phi: float) -> np.ndarray:
    """A stationary AR(1) process with unit variance: length × dims."""
    noise = rng.normal(0.0, np.sqrt(1 - phi**2), (length, dims))
    out = np.empty((length, dims))
    out[0] = rng.normal(0.0, 1.0, dims)
    for t in range(1, length):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _video_length(spec: SyntheticSpec, rng: np.random.Generator) -> int:
    length = rng.lognormal(np.log(spec.median_length), 0.5)
    return int(np.clip(round(length), spec.min_length, spec.max_length))


def _events(rng: np.random.Generator, num_frames: int) -> List[Tuple[int, int]]:
    """1-3 non-overlapping [start, end) frame ranges, each 15-40 % of the video, not snippet-aligned."""
    count = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
    lengths = [max(FRAMES_PER_SNIPPET * 2, int(rng.uniform(0.15, 0.4) * num_frames)) for _ in range(count)]
    while sum(lengths) > 0.8 * num_frames and len(lengths) > 1:
        lengths.pop()
    lengths = [min(length, int(0.8 * num_frames)) for length in lengths]
    free = num_frames - sum(lengths)
    cuts = np.sort(rng.integers(0, free + 1, len(lengths)))  # gaps before each event
    events, position, previous = [], 0, 0
    for cut, length in zip(cuts, lengths):
        position += cut - previous
        previous = cut
        events.append((int(position), int(position + length)))
        position += length
    return events


def _make_video(
    spec: SyntheticSpec, world: _World, rng: np.random.Generator, scene: int, anomalous: bool
) -> Tuple[np.ndarray, np.ndarray]:
    """Features float32 [T, N, C] and frame labels [16 T] of one video."""
    length = _video_length(spec, rng)
    num_frames = FRAMES_PER_SNIPPET * length
    channels, crops = spec.feature_size, spec.num_crops

    pre = (
        world.scene_mean[scene]
        + _ar1(rng, length, NUM_ACTIVITIES, 0.92) @ world.activities
        + _ar1(rng, length, NUM_SCENE_ACTIVITIES, 0.9) @ world.scene_activities[scene]
        + 0.25 * _ar1(rng, length, channels, 0.6)
    )  # T × C
    crop_weights = rng.uniform(0.5, 1.5, crops)[:, None] * world.crop_offsets  # this video's view of each crop
    pre = pre[:, None, :] + crop_weights[None] + rng.normal(0.0, 0.08, (length, crops, channels))  # T × N × C
    gain = np.exp(rng.normal(0.0, 0.3) + 0.15 * _ar1(rng, length, 1, 0.95))[:, :, None]  # T × 1 × 1
    normal = _softplus(pre) * gain

    labels = np.zeros(num_frames)
    if not anomalous:
        return normal.astype(np.float32), labels
    intensity = np.zeros((length, crops, channels))
    for start, end in _events(rng, num_frames):
        labels[start:end] = 1.0
        frames = np.zeros(num_frames)
        frames[start:end] = 1.0
        coverage = frames.reshape(length, FRAMES_PER_SNIPPET).mean(axis=1)  # share of each snippet's frames
        strength = rng.uniform(1.6, 2.6)
        visibility = rng.uniform(0.6, 1.0, crops)
        pattern = world.anomaly_patterns[rng.integers(NUM_ANOMALY_TYPES)]
        intensity += strength * coverage[:, None, None] * visibility[None, :, None] * pattern[None, None, :]
    features = _softplus(pre + intensity) * gain
    # Keep each snippet's norm what it would be without the anomaly (±3 %): norms alone cannot find anomalies.
    touched = np.abs(intensity).sum(axis=2) > 0  # T × N
    target = np.linalg.norm(normal, axis=2) * rng.normal(1.0, 0.03, (length, crops))
    scale = target / np.maximum(np.linalg.norm(features, axis=2), 1e-12)
    features = np.where(touched[:, :, None], features * scale[:, :, None], features)
    return features.astype(np.float32), labels


def _video_id(spec: SyntheticSpec, rng: np.random.Generator, scene: int, number: int, anomalous: bool,
              length: int) -> str:
    """A unique id in the style of the imitated dataset's official lists (``number`` is unique)."""
    if spec.shape == "shanghaitech":
        return f"{scene + 1:02d}_{number:04d}"
    start = 53 * number  # seconds into the movie: unique per number
    end = start + max(1, round(length * FRAMES_PER_SNIPPET / 24))  # 24 frames per second

    def clock(seconds: int) -> str:
        return f"{seconds // 3600:02d}-{seconds // 60 % 60:02d}-{seconds % 60:02d}"

    if anomalous:
        classes = rng.choice(XD_VIOLENCE_CLASSES, size=int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])), replace=False)
        label = "-".join(list(classes) + ["0"] * (3 - len(classes)))
    else:
        label = "A"
    return f"{XD_VIOLENCE_MOVIES[scene % len(XD_VIOLENCE_MOVIES)]}__#{clock(start)}_{clock(end)}_label_{label}"


SPEC_FILE = "{name}.spec.json"  # written last: marks a complete synthetic dataset and the sizes it was made with


def existing_spec(root: PathLike, name: str = DEFAULT_NAME) -> Optional[SyntheticSpec]:
    """The spec of a complete synthetic dataset already at ``<root>/<name>``, or None."""
    path = Path(root) / name / SPEC_FILE.format(name=name)
    if not path.is_file():
        return None
    try:
        return SyntheticSpec(**json.loads(path.read_text()))
    except (ValueError, TypeError, RecursionError):
        return None


def num_anomalous_training_videos(root: PathLike, name: str = DEFAULT_NAME) -> int:
    """How many rows at the top of a synthetic dataset's training list are anomalous, from its spec file."""
    spec = existing_spec(root, name)
    if spec is None:
        raise InputError(
            Path(root) / name / SPEC_FILE.format(name=name),
            "not found or unreadable: it tells how many training videos are anomalous "
            "(make the dataset with tools/make_synthetic_dataset.py)",
        )
    return spec.num_train_anomalous


def remove_synthetic_dataset(root: PathLike, name: str = DEFAULT_NAME) -> None:
    """Delete ``<root>/<name>`` if (and only if) it is a synthetic dataset written by this module."""
    base = Path(root) / name
    if not base.exists():
        return
    if not (base / SPEC_FILE.format(name=name)).is_file():
        raise InputError(base, "exists and is not a synthetic dataset (no spec file); refusing to overwrite it")
    shutil.rmtree(base)


def make_synthetic_dataset(
    root: PathLike, name: str = DEFAULT_NAME, spec: SyntheticSpec = DEFAULT_SPEC, progress: bool = False
) -> Dict[str, object]:
    """Write the dataset under ``<root>/<name>/``; returns its paths, ids and the number of anomalous training
    videos (the rows at the top of the training list). Files of an earlier dataset at the same place are not
    removed: call :func:`remove_synthetic_dataset` first."""
    base = Path(root) / name
    folders = {subset: ensure_folder(feature_folder(root, name, spec.backbone, subset))  # before any work
               for subset in ("train", "test")}  # fmt: skip
    rng = np.random.default_rng(spec.seed)
    world = _make_world(spec, rng)
    total = spec.num_train_anomalous + spec.num_train_normal + spec.num_test_anomalous + spec.num_test_normal
    numbers = rng.permutation(np.arange(1, total + 1))  # ids do not reveal split or label
    plan = (
        [("train", True)] * spec.num_train_anomalous
        + [("train", False)] * spec.num_train_normal
        + [("test", True)] * spec.num_test_anomalous
        + [("test", False)] * spec.num_test_normal
    )
    lists: Dict[Tuple[str, bool], List[str]] = {key: [] for key in plan}
    ground_truth: Dict[str, np.ndarray] = {}
    for number, (subset, anomalous) in tqdm(
        zip(numbers, plan), total=total, desc=f"synthetic dataset ({name})", disable=not progress, ncols=100
    ):
        scene = int(rng.integers(spec.num_scenes))
        features, labels = _make_video(spec, world, rng, scene, anomalous)
        video_id = _video_id(spec, rng, scene, int(number), anomalous, len(features))
        save_npy(features, feature_file(folders[subset], video_id, spec.backbone))
        lists[(subset, anomalous)].append(video_id)
        if subset == "test":
            ground_truth[video_id] = labels

    training = sorted(lists[("train", True)]) + sorted(lists[("train", False)])
    testing = sorted(lists[("test", True)]) + sorted(lists[("test", False)])
    if spec.shape == "xd-violence":
        testing = sorted(testing)  # the official test list is in name order
    training_list = write_video_list(training, base / f"{name}.training.csv")
    testing_list = write_video_list(testing, base / f"{name}.testing.csv")
    ground_truth_file = write_ground_truth(
        {video_id: ground_truth[video_id] for video_id in testing}, base / f"{name}_ground_truth.testing.json"
    )
    save_text(json.dumps(asdict(spec), indent=1) + "\n", base / SPEC_FILE.format(name=name))
    return dict(
        base=base,
        training_list=training_list,
        testing_list=testing_list,
        ground_truth=ground_truth_file,
        training_ids=training,
        testing_ids=testing,
        num_anomalous_train=spec.num_train_anomalous,
    )
