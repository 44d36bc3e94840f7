"""Extracting the features of many videos with a backbone's network (``anomaly.extraction.backbones``: ten-crop
I3D by default, float32 ``T N 2048`` per video; CLIP, ``T N 512``), written atomically.

Each video gives ``<output>/<stem>_<backbone>.npy`` and a settings file ``<stem>_<backbone>.json`` (backbone,
preset, crops, frame reading, precision, runtime, the weights' SHA-256; the video file's size and modification time; the
frames decoded, frame rate, upright size and the turn that made them upright; the features' shape). A video is skipped only when its features are done: both
files there, the settings the same, the video the same file (size and modification time: a content hash would read
every video again on every run), and the feature file whole (its header holds the recorded shape and the file
holds all the data that header announces). Otherwise it is extracted again, said in one line, so presets are never
mixed and a replaced video or a half-written file is never taken for done.

A run is planned, then extracted, then gathered (``run_extraction``): ``plan_extraction`` checks every argument and
decides each video's fate while writing nothing; ``run_plan`` removes what killed writes left, extracts, writes and
collects the results of every process.

A worker thread decodes, resizes and batches the clips of the next videos (a bounded queue of uint8
``B 16 h w 3`` batches of resized frames) while the network runs on the current batch, cutting the crops on its
device (the backbone's ``FeatureNetwork``). A video that cannot be read or written fails alone: one line naming it,
the others are still extracted.

Under torchrun the videos are split across ranks, balanced by frame count; each rank writes its own videos'
files, with exactly the batches one process would use, so the files do not depend on the number of processes.
"""

import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from anomaly.data.features import load_features, read_npy_shape
from anomaly.errors import InputError, check_choice, check_range
from anomaly.extraction.backbones import BACKBONES, Backbone, FeatureNetwork, NetworkSource, TorchNetwork, backbone_of
from anomaly.extraction.preprocess import PRESETS, ClipReader, Preset
from anomaly.extraction.video import VideoInfo, probe, variable_frame_times
from anomaly.files import check_writable_folder, ensure_folder, name_problem, remove_temporaries, save_npy, save_text
from anomaly.hardware import resolve_device
from anomaly.layout import NUM_CROPS, RUNTIME_NAMES, TORCH_RUNTIME, feature_file_name
from anomaly.precision import NETWORK_CHOICES, NETWORK_PRECISIONS
from anomaly.tables import ascii_table

PathLike = Union[str, Path]
VIDEO_SUFFIXES = {
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".ts", ".3gp", ".gif",
}  # fmt: skip
LIST_SUFFIXES = {".txt", ".lst", ".list"}


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that changes the numbers in a feature file (not the device or the batch size)."""

    preset: str = "rtfm"
    num_crops: int = 10
    precision: str = "fp32"  # as run: never auto
    weights_sha256: str = ""
    backbone: str = "i3d"
    frames: Optional[str] = None  # how 16 frames become a row (--clip_frames); None where the network reads a clip
    runtime: str = TORCH_RUNTIME  # what ran the network (--runtime): the same weights round differently in each

    def __post_init__(self):
        backbone_of(self.backbone).recipe(self.preset, self.frames)
        check_choice(self.num_crops, NUM_CROPS, "--num_crops")
        check_choice(self.precision, NETWORK_PRECISIONS, "--precision")
        check_choice(self.runtime, RUNTIME_NAMES, "--runtime")

    @classmethod
    def made_by(cls, network: NetworkSource, preset: str, num_crops: int, backbone: str, frames: Optional[str],
                precision: str, device: torch.device) -> Tuple["ExtractionSettings", str]:  # fmt: skip
        """The settings of the features ``network`` makes on ``device`` (``precision`` as it runs there, its
        weights and runtime), and the one-line note where that precision is not the one given (else '')."""
        precision, note = network.resolve_precision(precision, device)
        return cls(preset, num_crops, precision, network.weights_sha256, backbone, frames, network.runtime), note

    @property
    def recipe(self) -> str:
        """The options that give these features' numbers, as a command line writes them."""
        return recipe_options(self.preset, self.num_crops, self.frames)

    @property
    def network(self) -> Backbone:
        return BACKBONES[self.backbone]

    @staticmethod
    def recorded(record: dict) -> dict:
        """A settings file's settings with the fields that files written before the CLIP backbone (I3D's) and before
        the exported runtimes (PyTorch) lack."""
        return {"backbone": "i3d", "frames": None, "runtime": TORCH_RUNTIME, **record}


@dataclass(frozen=True)
class FeatureOptions:
    """How a command makes the features of videos, the one object that extract, detect, watch and make-dataset pass
    down (a new option is a field here): the network (``backbone``, its ``weights``); the recipe (``preset``: None
    for the backbone's default, ``num_crops``, ``clip_frames``: how a per-frame network's 16 frames become a row,
    None for the backbone's default; in detect and watch the detector's, see :meth:`with_recipe`); how it runs
    (``precision``: one of NETWORK_CHOICES, ``device``: None for CUDA when present, ``batch_size``: snippets per
    forward); and ``accept_partial``: extract what decodes of a partial video (said in one line) instead of failing
    it. What runs the network: ``runtime`` (``RUNTIME_NAMES``), PyTorch with the ``weights`` file, or the runtime
    of the ``exported`` folder (``s3r export``), on the CPU, whose manifest holds the weights' identity (``weights``
    may then be left out; given, it must be the file exported). ``ExtractionSettings`` is what of them the features
    record."""

    weights: Optional[PathLike]
    preset: Optional[str] = None
    num_crops: Optional[int] = 10
    precision: str = "fp32"
    device: Optional[str] = None
    batch_size: int = 4
    accept_partial: bool = False
    backbone: Optional[str] = "i3d"
    clip_frames: Optional[str] = None
    runtime: str = TORCH_RUNTIME
    exported: Optional[PathLike] = None

    def with_recipe(self, backbone: str, preset: str, num_crops: int, frames: Optional[str]) -> "FeatureOptions":
        return replace(self, backbone=backbone, preset=preset, num_crops=num_crops, clip_frames=frames)

    def check(self) -> None:
        """The choices and sizes, checked in one line each before any file is read."""
        check_range(self.batch_size, "--batch_size", minimum=1, integer=True)
        check_choice(self.precision, NETWORK_CHOICES, "--precision")
        check_choice(self.runtime, RUNTIME_NAMES, "--runtime")
        if self.runtime == TORCH_RUNTIME:
            if self.exported is not None:
                raise InputError(self.exported, "--exported is run by --runtime onnxruntime or openvino; PyTorch runs "
                                 "--weights: give one of those runtimes, or leave --exported out")
            if self.weights is None:
                raise InputError(None, "give --weights, the weights of the backbone's network (or --exported with "
                                 "--runtime onnxruntime or openvino)")
        else:
            if self.exported is None:
                raise InputError(None, f"--runtime {self.runtime} runs an exported folder: give --exported, the "
                                 "folder s3r export wrote")
            if self.device not in (None, "cpu"):
                raise InputError(None, f"--device {self.device}: --runtime {self.runtime} runs on the CPU (the "
                                 "exported models on a GPU: docs/deployment.md)")
        if self.backbone is not None:
            backbone_of(self.backbone).recipe(self.preset, self.clip_frames)
        elif self.preset is not None:
            check_choice(self.preset, PRESETS, "--preset")
        if self.num_crops is not None:
            check_choice(self.num_crops, NUM_CROPS, "--num_crops")

    @property
    def network_device(self) -> Optional[str]:
        """``device`` as the network runs on it: the runtimes of exported folders run on the CPU."""
        return self.device if self.runtime == TORCH_RUNTIME else "cpu"


def recipe_options(preset: str, num_crops: int, frames: Optional[str]) -> str:
    """'--preset rtfm --num_crops 10' (and '--clip_frames mean' where the backbone reads frames one by one)."""
    return f"--preset {preset} --num_crops {num_crops}" + (f" --clip_frames {frames}" if frames else "")


def features_of(output: PathLike, video: PathLike, backbone: str) -> Path:
    """``<output>/<video stem>_<backbone>.npy``: where a video's features go (``anomaly.layout.feature_file_name``)."""
    return Path(output) / feature_file_name(Path(video).stem, backbone)


def settings_path(features: PathLike) -> Path:
    return Path(features).with_suffix(".json")


def recorded_recipe(features: PathLike) -> Optional[Tuple[str, int, Optional[str]]]:
    """(preset, crops, frame reading) that the settings file beside ``features`` records, or None without a
    readable one."""
    try:
        settings = ExtractionSettings.recorded(json.loads(settings_path(features).read_text())["settings"])
        return settings["preset"], settings["num_crops"], settings["frames"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def video_identity(video: PathLike) -> Optional[dict]:
    """What tells a video file from another under the same name: its size and modification time (None when it
    cannot be read: it then fails as a video)."""
    try:
        status = os.stat(video)
    except (OSError, ValueError):
        return None
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _changed_settings(recorded: object, settings: ExtractionSettings) -> str:
    if not isinstance(recorded, dict):
        return "its settings file records no settings"
    recorded = ExtractionSettings.recorded(recorded)
    now = asdict(settings)
    changes = [
        "other weights" if key == "weights_sha256" else f"{key} {recorded.get(key)!r} (now {value!r})"
        for key, value in now.items() if recorded.get(key) != value
    ]  # fmt: skip
    return "its features were made with " + ", ".join(changes)


def _changed_video(recorded: object, identity: dict) -> str:
    if not isinstance(recorded, dict):
        return "its settings file does not identify the video (made by an earlier version)"
    if recorded.get("size") != identity["size"]:
        return (f"the video is not the one its features were made from ({identity['size']} bytes, "
                f"{recorded.get('size')} then)")  # fmt: skip
    return "the video was modified since its features were made"


def cached_features(
    features: Path, video: Path, settings: ExtractionSettings, read_values: bool = False
) -> Tuple[Optional[dict], str]:
    """(the settings file's record, '') when ``features`` are done: whole, of ``video`` as it is now, made with
    ``settings``; else (None, why they are extracted again), '' when there is nothing to redo (no file yet, or a
    video that cannot be read and fails on its own). ``read_values``: read every value (finite float32, the
    recorded crops and channels) instead of the header alone."""
    record_file = settings_path(features)
    identity = video_identity(video)
    if identity is None or not (features.exists() or record_file.exists()):
        return None, ""
    if not features.exists():
        return None, f"its settings file {record_file} has no feature file {features.name} beside it"
    try:
        record = json.loads(record_file.read_text())
    except FileNotFoundError:
        return None, f"its feature file {features} has no settings file {record_file.name} beside it"
    except (OSError, ValueError) as error:
        return None, f"its settings file {record_file} is unreadable ({' '.join(str(error).split())})"
    if not isinstance(record, dict):
        return None, f"{record_file} is not a settings file of this tool"
    recorded = record.get("settings")
    if not isinstance(recorded, dict) or ExtractionSettings.recorded(recorded) != asdict(settings):
        return None, _changed_settings(record.get("settings"), settings)
    if record.get("video_file") != identity:
        return None, _changed_video(record.get("video_file"), identity)
    try:
        if read_values:
            shape = load_features(features, settings.num_crops, settings.network.feature_size).shape
        else:
            shape = read_npy_shape(features)
    except InputError as error:
        return None, f"its feature file is unreadable: {error}"
    if list(shape) != record.get("shape"):
        return None, (f"its feature file {features} has shape {list(shape)}, not the {record.get('shape')} its "
                      "settings file records")  # fmt: skip
    if not isinstance(record.get("frames"), int) or record["frames"] < 1:
        return None, f"its settings file {record_file} records no frame count"
    if not _frame_times_fit(record.get("frame_times"), record["frames"]):
        return None, (f"its settings file {record_file} records frame times that do not fit its {record['frames']} "
                      "frames")
    return record, ""


def _frame_times_fit(times: Any, frames: int) -> bool:
    """Whether a record's ``frame_times`` (absent: frame / fps) give each of its ``frames`` a time, never going back."""
    if times is None:
        return True
    if not isinstance(times, list) or len(times) != frames:
        return False
    values = np.asarray([time if isinstance(time, (int, float)) else np.nan for time in times], dtype=np.float64)
    return bool(np.isfinite(values).all() and (np.diff(values) >= 0).all())


def videos_below(folder: Path) -> List[Path]:
    """The video files below ``folder``, sorted, following linked folders (each real folder once); hidden files and
    folders (a leading '.': macOS's ``._`` copies, editors' and atomic writes' temporaries) are not videos."""
    found, visited = [], set()
    for top, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:  # a link back up the tree, or a second link to one folder
            folders.clear()
            continue
        visited.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))  # the first link (by name) wins
        found += [Path(top) / name for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(video for video in found if video.is_file())


def _listed_videos(listing: Path) -> List[Path]:
    try:
        lines = listing.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(listing, f"the video list cannot be read ({error})") from None
    return [listing.parent / line if not Path(line).is_absolute() else Path(line)
            for line in (line.strip() for line in lines) if line and not line.startswith("#")]


def list_videos(paths: Sequence[PathLike], backbone: str = "i3d") -> List[Path]:
    """Videos named by files, folders (searched recursively for video suffixes: :func:`videos_below`) or text files
    (one path a line, relative to the text file's folder; blank lines and ``#`` comments ignored; a UTF-8 byte-order
    mark dropped).
    A file is kept as a video even when missing or not one: it fails as a video, in one line. A folder or a list that
    names no video is a one-line InputError naming it, whatever the other paths name: a mistyped folder is never
    silently left out of a batch. Two videos of one name are refused: both would be written to one ``backbone``
    feature file."""
    videos: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = videos_below(path)
            if not found:
                raise InputError(path, "no videos found: folders are searched for "
                                       f"{' '.join(sorted(VIDEO_SUFFIXES))} files (in their subfolders too)")
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            found = _listed_videos(path)
            if not found:
                raise InputError(path, "no videos found: a list file names one video a line (blank lines and "
                                       "# comments aside)")
        else:
            found = [path]
        videos += found
    if not videos:
        raise InputError(None, "no videos given")
    unique = list(dict.fromkeys(videos))
    stems: Dict[str, Path] = {}
    for video in unique:
        other = stems.setdefault(video.stem, video)
        if other != video:
            raise InputError(video, f"has the same name as {other}: both would be written to "
                                    f"{features_of('.', video, backbone).name}")  # fmt: skip
    return unique


@dataclass
class VideoResult:
    video: Path
    status: str  # "extracted", "skipped" or "failed"
    snippets: int = 0
    error: str = ""  # failed: the one line that says why
    note: str = ""  # extracted: the one line said about it (a partial video extracted with accept_partial)
    record: Optional[dict] = None  # the settings file written or found (extracted, skipped)


@dataclass
class RunSummary:
    results: List[VideoResult] = field(default_factory=list)
    seconds: float = 0.0
    rank: int = 0  # the process that made it (under torchrun every rank holds the same summary)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def snippets(self) -> int:
        return sum(result.snippets for result in self.results if result.status == "extracted")

    def table(self) -> str:
        rate = self.snippets / self.seconds if self.seconds > 0 else 0.0
        rows = [
            ["videos extracted", "skipped", "failed", "snippets", "time", "snippets/s"],
            [self.count("extracted"), self.count("skipped"), self.count("failed"), self.snippets,
             f"{self.seconds:.1f} s", f"{rate:.2f}"],
        ]  # fmt: skip
        return ascii_table(rows, " feature extraction ")


def balanced_split(frame_counts: Sequence[int], parts: int) -> List[List[int]]:
    """Indices of the videos of each part: the longest first, each to the part with the fewest frames so far."""
    loads = [0] * parts
    split: List[List[int]] = [[] for _ in range(parts)]
    for index in sorted(range(len(frame_counts)), key=lambda i: (-frame_counts[i], i)):
        part = min(range(parts), key=lambda p: (loads[p], p))
        split[part].append(index)
        loads[part] += frame_counts[index]
    return [sorted(indices) for indices in split]


_END = object()


def _produce(videos: Sequence[Path], preset: Preset, batch_size: int, pin: bool, accept_partial: bool,
             out: "queue.Queue", stop: threading.Event) -> None:
    """Worker thread: ("batch", i, clips) ... then ("done", i, its ClipReader) or ("failed", i, message) per video."""
    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for index, video in enumerate(videos):
            reader = ClipReader(video, preset, accept_partial)
            batch: List[np.ndarray] = []
            try:
                for clip in reader:
                    batch.append(clip)
                    if len(batch) == batch_size:
                        if not put(("batch", index, _stack(batch, pin))):
                            return
                        batch = []
                if batch and not put(("batch", index, _stack(batch, pin))):
                    return
                if not put(("done", index, reader)):
                    return
            except InputError as error:
                if not put(("failed", index, str(error))):
                    return
    except BaseException as error:  # a bug, not bad input: handed to the main thread to raise there
        put(("crash", -1, error))
        return
    put(_END)


def _stack(clips: List[np.ndarray], pin: bool) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(clips))
    return batch.pin_memory() if pin else batch


def extract_features(
    videos: Sequence[Path],
    extractor: FeatureNetwork,
    preset: Preset,
    num_crops: int,
    batch_size: int,
    on_video: Callable[[int, Optional[np.ndarray], Optional[ClipReader], str], None],
    on_snippets: Callable[[int], None] = lambda count: None,
    prefetch: int = 2,
    accept_partial: bool = False,
) -> None:
    """Run the pipeline over ``videos``; ``on_video(index, features T N C or None, its ClipReader or None,
    error)`` is called once per video, in order, ``on_snippets(count)`` after each batch."""
    batches: "queue.Queue" = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce,
        args=(videos, preset, batch_size, extractor.device.type == "cuda", accept_partial, batches, stop),
        name="clip-reader",
        daemon=True,
    )
    worker.start()
    parts: List[np.ndarray] = []
    try:
        while True:
            item = batches.get()
            if item is _END:
                break
            kind, index, payload = item
            if kind == "batch":
                parts.append(extractor(payload, preset, num_crops))
                on_snippets(len(payload))
            elif kind == "done":
                on_video(index, np.concatenate(parts).astype(np.float32, copy=False), payload, "")
                parts = []
            elif kind == "failed":
                parts = []
                on_video(index, None, None, payload)
            else:
                raise payload
    finally:
        stop.set()
        worker.join()


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def torchrun_ranks() -> Ranks:
    """This process's place under torchrun (its environment variables); one rank otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start_distributed(ranks: Ranks, device: torch.device) -> None:
    """Join the process group when there are several ranks: NCCL between GPUs, gloo on CPU."""
    if ranks.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


class OtherRecipe(NamedTuple):
    """Features of ``video`` made with another recipe, as its ``settings`` file records."""

    video: Path
    settings: Path
    preset: str
    num_crops: int
    frames: Optional[str]

    @property
    def recipe(self) -> str:
        return recipe_options(self.preset, self.num_crops, self.frames)


@dataclass
class ExtractionPlan:
    """What a run will do, decided with every argument checked and nothing written (:func:`plan_extraction`)."""

    videos: List[Path]
    output: Path
    settings: ExtractionSettings
    network: NetworkSource  # the backbone's (settings.network), loaded, or an exported folder's
    device: torch.device
    ranks: Ranks
    batch_size: int
    accept_partial: bool
    decided: Dict[int, VideoResult]  # videos not to extract: skipped (done), or failed already (a refused name)
    todo: Dict[int, Optional[VideoInfo]]  # videos to extract: what their containers declare (None: unreadable)
    identities: Dict[int, Optional[dict]]  # video_identity of every video, taken before decoding
    lines: List[str]  # said when the run starts: the precision --precision became, one per video extracted again (why) or failed already

    @property
    def preset(self) -> Preset:
        return PRESETS[self.settings.preset]

    def share(self) -> List[int]:
        """The videos this process extracts: under torchrun a share balanced by declared frame counts."""
        todo = sorted(self.todo)
        frames = [self.todo[index].frames if self.todo[index] else 0 for index in todo]
        return [todo[i] for i in balanced_split(frames, self.ranks.world_size)[self.ranks.rank]]

    def other_recipe(self) -> Optional[OtherRecipe]:
        """The first video whose features in the output folder were made with another preset, crop count or frame
        reading than this plan's, or None: callers refuse to mix them."""
        wanted = (self.settings.preset, self.settings.num_crops, self.settings.frames)
        for video in self.videos:
            recipe = recorded_recipe(self.target(video))
            if recipe is not None and recipe != wanted:
                return OtherRecipe(video, settings_path(self.target(video)), *recipe)
        return None

    def target(self, video: Path) -> Path:
        """Where ``video``'s features go: ``features_of`` the output folder, for this plan's backbone."""
        return features_of(self.output, video, self.settings.backbone)

    def known_frames(self, index: int) -> Optional[Tuple[int, str]]:
        """The frame count of video ``index`` known before extracting it, and where it comes from: a skipped video's
        settings file, or a count its container declares (which a whole video decodes exactly); else None."""
        decided = self.decided.get(index)
        if decided is not None and decided.record is not None:
            return decided.record["frames"], "decoded frames"
        info = self.todo.get(index)
        return (info.frames, "frames, as its container declares") if info is not None and info.counted else None


def plan_extraction(
    video_paths: Sequence[PathLike], output: PathLike, options: FeatureOptions, read_values: bool = False,
    network: Optional[NetworkSource] = None,
) -> ExtractionPlan:
    """Check every argument (one-line ``InputError``) and decide what each video needs, writing nothing: skipped
    when its features are done (:func:`cached_features`; ``read_values`` reads them whole), failed when the file
    system would refuse its files' names, else to be extracted (again, with the reason as a line to say).
    ``network``: what runs the network, opened by the caller (an exported folder's runtime, as ``options.runtime``
    says: ``anomaly.deploy``); None: PyTorch with ``options.weights``, loaded here."""
    options.check()
    if network is None and options.runtime != TORCH_RUNTIME:
        raise InputError(options.exported, f"--runtime {options.runtime}: exported folders are run by s3r detect and "
                         "s3r watch; extraction runs PyTorch")
    ranks = torchrun_ranks()
    torch_device = resolve_device(options.network_device, "extraction", ranks.local_rank)
    backbone = backbone_of(options.backbone)
    preset, frames = backbone.recipe(options.preset, options.clip_frames)
    videos = list_videos(video_paths, backbone.name)
    check_writable_folder(output)
    network = network or TorchNetwork.load(backbone, options.weights)
    settings, precision_note = ExtractionSettings.made_by(network, preset, options.num_crops, backbone.name, frames,
                                                          options.precision, torch_device)  # fmt: skip
    lines = [precision_note] if precision_note else []
    plan = ExtractionPlan(videos, Path(output), settings, network, torch_device, ranks, options.batch_size,
                          options.accept_partial, decided={}, todo={}, identities={}, lines=lines)  # fmt: skip
    for index, video in enumerate(videos):
        target = plan.target(video)
        plan.identities[index] = video_identity(video)
        refused = next(filter(None, map(name_problem, (target, settings_path(target)))), "")
        if refused:  # before looking for the files: the system refuses even to look for names too long
            plan.decided[index] = VideoResult(video, "failed", error=f"{video}: not extracted: {refused}")
            plan.lines.append(plan.decided[index].error)
            continue
        record, again = cached_features(target, video, settings, read_values)
        if record is not None:
            plan.decided[index] = VideoResult(video, "skipped", record["shape"][0], record=record)
        else:
            plan.todo[index] = _probe_or_none(video)
            if again:
                plan.lines.append(f"{video}: extracting again: {again}")
    return plan


def _probe_or_none(video: Path) -> Optional[VideoInfo]:
    try:
        return probe(video)
    except InputError:
        return None  # fails again, with its message, on the rank that gets it


def run_plan(
    plan: ExtractionPlan,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> RunSummary:
    """Extract what ``plan`` says into its output folder (under torchrun, this process's share) and gather the
    results of every process: every rank returns the summary of all. A video that fails is one line."""
    started = time.perf_counter()
    ensure_folder(plan.output)  # created only now that the arguments are known to be good
    if plan.device.type == "cuda":
        torch.cuda.set_device(plan.device)
    start_distributed(plan.ranks, plan.device)
    if plan.ranks.rank == 0:
        for line in plan.lines:
            log(line)
        for video in plan.videos:  # what writes killed half-way left; no process writes before the barrier
            remove_temporaries(plan.target(video))
            remove_temporaries(settings_path(plan.target(video)))
    if plan.ranks.world_size > 1:
        dist.barrier()  # every rank has decided what to skip before any rank writes a file
    mine = plan.share()
    results = _extract(plan, mine, progress and plan.ranks.rank == 0, log)
    return _gather(plan, mine, results, time.perf_counter() - started)


def _extract(plan: ExtractionPlan, mine: List[int], show: bool, log: Callable[[str], None]) -> Dict[int, VideoResult]:
    """Extract the videos ``mine`` (indices into ``plan.videos``) with progress bars; their results."""
    expected = sum(plan.preset.snippet_count(plan.todo[index].frames if plan.todo[index] else 0) for index in mine)
    video_bar = tqdm(total=len(mine), desc="videos", unit="video", position=0, disable=not show, file=sys.stderr)
    snippet_bar = tqdm(total=expected, desc="snippets", unit="snippet", position=1, disable=not show,
                       file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    say = (lambda line: tqdm.write(line, file=sys.stderr)) if show else log
    results: Dict[int, VideoResult] = {}

    def on_video(position: int, features: Optional[np.ndarray], reader: Optional[ClipReader], error: str) -> None:
        index = mine[position]
        if features is None:
            results[index] = VideoResult(plan.videos[index], "failed", error=error)
        else:
            results[index] = _write(plan, index, features, reader)
        if results[index].error or results[index].note:
            say(results[index].error or results[index].note)
        video_bar.update(1)

    clips = expected * plan.settings.num_crops
    settings = plan.settings
    extractor = plan.network.runner(plan.device, settings.precision, settings.frames, clips, "auto", say)
    try:
        extract_features([plan.videos[index] for index in mine], extractor, plan.preset, plan.settings.num_crops,
                         plan.batch_size, on_video, snippet_bar.update, accept_partial=plan.accept_partial)  # fmt: skip
    finally:
        snippet_bar.close()
        video_bar.close()
    return results


def _write(plan: ExtractionPlan, index: int, features: np.ndarray, reader: ClipReader) -> VideoResult:
    """Write a video's features and, last, its settings file; a write that fails fails this video alone."""
    video = plan.videos[index]
    target = plan.target(video)
    info = plan.todo[index]
    width, height = reader.size
    record = {
        "settings": asdict(plan.settings),
        "video": str(video),
        "video_file": plan.identities[index],
        "frames": reader.frames,
        "fps": info.fps if info is not None else None,
        "frame_times": variable_frame_times(reader.times, info.fps if info is not None else None),  # else frame / fps
        "width": width,
        "height": height,
        "rotation": reader.orientation.rotation,
        "mirrored": reader.orientation.mirrored,
        "partial": reader.partial or None,
        "snippets": int(features.shape[0]),
        "shape": list(features.shape),
    }
    try:
        # The old settings go first: features newer than their settings file are never taken as matching.
        settings_path(target).unlink(missing_ok=True)
        save_npy(features, target)
        save_text(json.dumps(record, indent=1) + "\n", settings_path(target))
    except (InputError, OSError) as error:
        reason = error if isinstance(error, InputError) else error.strerror or error
        return VideoResult(video, "failed", error=f"{video}: not extracted: {reason}")
    note = f"{video}: {reader.partial}; extracted the {reader.frames} frames that decode (--accept_partial)"
    return VideoResult(video, "extracted", int(features.shape[0]), note=note if reader.partial else "", record=record)


def _gather(plan: ExtractionPlan, mine: List[int], results: Dict[int, VideoResult], seconds: float) -> RunSummary:
    """Every video's result, in order, from every process (under torchrun each rank has only its own)."""
    results = {**plan.decided, **results}
    summary = RunSummary(seconds=seconds, rank=plan.ranks.rank)
    if plan.ranks.world_size > 1:
        gathered: List[Optional[Tuple[Dict[int, VideoResult], float]]] = [None] * plan.ranks.world_size
        dist.all_gather_object(gathered, ({index: results[index] for index in mine}, seconds))
        for part, part_seconds in gathered:
            results.update(part)
            summary.seconds = max(summary.seconds, part_seconds)
        dist.destroy_process_group()
    summary.results = [results[index] for index in sorted(results)]
    return summary


def run_extraction(
    video_paths: Sequence[PathLike],
    output: PathLike,
    options: FeatureOptions,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> RunSummary:
    """Extract the features of every video not yet done with these options into ``output``: plan, extract, gather.

    Bad arguments (weights, output folder, device, no videos) raise ``InputError`` before anything is written; a
    video that fails is logged in one line and counted in the summary. Under torchrun every rank returns the summary
    of all ranks.
    """
    return run_plan(plan_extraction(video_paths, output, options), progress, log)
