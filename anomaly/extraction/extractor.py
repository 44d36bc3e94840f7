"""Extracting ten-crop I3D features of many videos: float32 ``T N 2048`` per video, written atomically.

Each video gives ``<output>/<stem>_i3d.npy`` and a settings file ``<stem>_i3d.json`` (preset, crops, precision,
the weights' SHA-256; the video's frame count, frame rate and size). A video whose settings file matches is
skipped; one extracted with other settings is extracted again, so presets are never mixed silently.

A worker thread decodes, resizes and batches the clips of the next videos (a bounded queue of uint8
``B 16 h w 3`` batches of resized frames) while the network runs on the current batch, cutting the crops on its
device (``I3DResNet50.crop_features``). A video that cannot be read fails alone: one line naming it, the others
are still extracted.

Under torchrun the videos are split across ranks, balanced by frame count; each rank writes its own videos'
files, with exactly the batches one process would use, so the files do not depend on the number of processes.
"""

import hashlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from terminaltables import AsciiTable
from tqdm import tqdm

from anomaly.precision import autocast
from anomaly.errors import InputError
from anomaly.extraction.network import I3DResNet50, load_i3d
from anomaly.extraction.preprocess import NUM_CROPS, PRESETS, ClipReader, Preset
from anomaly.extraction.video import probe
from anomaly.files import check_writable_folder, ensure_folder, save_npy, save_text
from anomaly.hardware import resolve_device
from anomaly.layout import feature_file_name

PathLike = Union[str, Path]
PRECISIONS = ("fp32", "bf16")
VIDEO_SUFFIXES = {
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".ts", ".3gp", ".gif",
}  # fmt: skip
LIST_SUFFIXES = {".txt", ".lst", ".list"}
BACKBONE = "i3d"  # the backbone part of the feature files' names (anomaly.layout.feature_file_name)


def file_sha256(path: PathLike) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise InputError(path, "weights file not found (i3d_r50_kinetics.pth from pytorch-resnet3d's release)") from None
    except OSError as error:
        raise InputError(path, f"the weights file cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that changes the numbers in a feature file (not the device or the batch size)."""

    preset: str = "rtfm"
    num_crops: int = 10
    precision: str = "fp32"
    weights_sha256: str = ""

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.num_crops not in NUM_CROPS:
            raise ValueError(f"num_crops must be one of {NUM_CROPS}, not {self.num_crops}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")


def feature_path(output: PathLike, video: PathLike) -> Path:
    return Path(output) / feature_file_name(Path(video).stem, BACKBONE)


def settings_path(features: PathLike) -> Path:
    return Path(features).with_suffix(".json")


def read_record(features: PathLike) -> Optional[dict]:
    """The settings file beside a feature file, or None when either is missing or unreadable."""
    features = Path(features)
    try:
        record = json.loads(settings_path(features).read_text())
    except (OSError, ValueError):
        return None
    return record if features.is_file() and isinstance(record, dict) else None


def extracted_record(features: PathLike, settings: ExtractionSettings) -> Optional[dict]:
    """The settings file of features already extracted with ``settings`` (to be skipped), else None."""
    record = read_record(features)
    return record if record is not None and record.get("settings") == asdict(settings) else None


def list_videos(paths: Sequence[PathLike]) -> List[Path]:
    """Videos named by files, folders (searched recursively for video suffixes) or text files (one path a line,
    relative to the text file's folder; blank lines and ``#`` comments ignored; a UTF-8 byte-order mark dropped).
    Missing paths are kept: they fail as videos, in one line each. No video at all is a one-line InputError."""
    videos: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            videos += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            try:
                lines = path.read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(path, f"the video list cannot be read ({error})") from None
            for line in (line.strip() for line in lines):
                if line and not line.startswith("#"):
                    videos.append(path.parent / line if not Path(line).is_absolute() else Path(line))
        else:
            videos.append(path)
    if not videos:
        raise InputError(", ".join(map(str, paths)), "no videos found: folders are searched for "
                         f"{' '.join(sorted(VIDEO_SUFFIXES))} files, list files ({' '.join(sorted(LIST_SUFFIXES))}) "
                         "name one video a line")  # fmt: skip
    unique = list(dict.fromkeys(videos))
    stems: Dict[str, Path] = {}
    for video in unique:
        other = stems.setdefault(video.stem, video)
        if other != video:
            raise InputError(video, f"has the same name as {other}: both would be written to {feature_path('.', video).name}")
    return unique


class FeatureExtractor:
    """The network on a device: uint8 clip batches B 16 h w 3 (resized frames) -> float32 features B N 2048.

    ``network`` is left as it is: the extractor runs its ``inference_copy`` (BatchNorm folded, channels-last 3-D).
    """

    def __init__(self, network: I3DResNet50, device: torch.device, precision: str = "fp32"):
        self.network = network.inference_copy().to(device)
        self.device = device
        self.precision = precision

    @torch.no_grad()
    def __call__(self, clips: Union[np.ndarray, torch.Tensor], preset: Preset, num_crops: int) -> np.ndarray:
        clips = torch.as_tensor(clips).to(self.device, non_blocking=True)
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        with autocast(self.precision, self.device):
            features = self.network.crop_features(preset.normalise(clips), boxes)
        return features.float().cpu().numpy()


@dataclass
class VideoResult:
    video: Path
    status: str  # "extracted", "skipped" or "failed"
    snippets: int = 0
    error: str = ""


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
        return AsciiTable(rows, " feature extraction ").table


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


def _produce(videos: Sequence[Path], preset: Preset, batch_size: int, pin: bool,
             out: "queue.Queue", stop: threading.Event) -> None:
    """Worker thread: ("batch", i, clips) ... then ("done", i, frames) or ("failed", i, message) per video."""
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
            reader = ClipReader(video, preset)
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
                if not put(("done", index, reader.frames)):
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
    extractor: FeatureExtractor,
    preset: Preset,
    num_crops: int,
    batch_size: int,
    on_video: Callable[[int, Optional[np.ndarray], int, str], None],
    on_snippets: Callable[[int], None] = lambda count: None,
    prefetch: int = 2,
) -> None:
    """Run the pipeline over ``videos``; ``on_video(index, features T N 2048 or None, frames, error)`` is called
    once per video, in order, ``on_snippets(count)`` after each batch."""
    batches: "queue.Queue" = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce,
        args=(videos, preset, batch_size, extractor.device.type == "cuda", batches, stop),
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
                on_video(index, None, 0, payload)
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


def run_extraction(
    video_paths: Sequence[PathLike],
    output: PathLike,
    weights: PathLike,
    preset: str = "rtfm",
    num_crops: int = 10,
    precision: str = "fp32",
    device: Optional[str] = None,
    batch_size: int = 4,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> RunSummary:
    """Extract the features of every video not yet extracted with these settings into ``output``.

    Bad arguments (weights, output folder, device) raise ``InputError`` before any work; a video that fails is
    logged in one line and counted in the summary. Under torchrun every rank returns the summary of all ranks.
    """
    if batch_size < 1:
        raise InputError(None, f"--batch_size must be at least 1, not {batch_size}")
    ranks = torchrun_ranks()
    torch_device = resolve_device(device, "extraction", ranks.local_rank)
    videos = list_videos(video_paths)
    check_writable_folder(output)
    settings = ExtractionSettings(preset, num_crops, precision, file_sha256(weights))
    network = load_i3d(weights)
    output = ensure_folder(output)  # created only once the arguments are known to be good
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    start_distributed(ranks, torch_device)
    extractor = FeatureExtractor(network, torch_device, precision)
    started = time.perf_counter()

    results: Dict[int, VideoResult] = {}
    todo = []
    for index, video in enumerate(videos):
        record = extracted_record(feature_path(output, video), settings)
        if record is not None:
            results[index] = VideoResult(video, "skipped", record["snippets"])
        else:
            todo.append(index)
    infos = {}
    for index in todo:
        try:
            infos[index] = probe(videos[index])
        except InputError:
            infos[index] = None  # fails again, with its message, on the rank that gets it
    frame_counts = [infos[index].frames if infos[index] else 0 for index in todo]
    mine = [todo[i] for i in balanced_split(frame_counts, ranks.world_size)[ranks.rank]]
    if ranks.world_size > 1:
        dist.barrier()  # every rank has decided what to skip before any rank writes a file
    my_videos = [videos[index] for index in mine]
    expected = {index: PRESETS[preset].snippet_count(count) for index, count in zip(todo, frame_counts)}

    show = progress and ranks.rank == 0
    video_bar = tqdm(total=len(mine), desc="videos", unit="video", position=0, disable=not show, file=sys.stderr)
    snippet_bar = tqdm(total=sum(expected[i] for i in mine), desc="snippets", unit="snippet", position=1,
                       disable=not show, file=sys.stderr, dynamic_ncols=True)

    def on_video(position: int, features: Optional[np.ndarray], frames: int, error: str) -> None:
        index = mine[position]
        video = videos[index]
        if features is None:
            results[index] = VideoResult(video, "failed", error=error)
            tqdm.write(error, file=sys.stderr) if show else log(error)
        else:
            target = feature_path(output, video)
            info = infos[index]
            record = {
                "settings": asdict(settings),
                "video": str(video),
                "frames": frames,
                "fps": info.fps,
                "width": info.width,
                "height": info.height,
                "snippets": int(features.shape[0]),
                "shape": list(features.shape),
            }
            # The old settings go first: features newer than their settings file are never taken as matching.
            settings_path(target).unlink(missing_ok=True)
            save_npy(features, target)
            save_text(json.dumps(record, indent=1) + "\n", settings_path(target))
            results[index] = VideoResult(video, "extracted", int(features.shape[0]))
        video_bar.update(1)

    try:
        extract_features(my_videos, extractor, PRESETS[preset], num_crops, batch_size, on_video, snippet_bar.update)
    finally:
        snippet_bar.close()
        video_bar.close()

    summary = RunSummary(seconds=time.perf_counter() - started, rank=ranks.rank)
    if ranks.world_size > 1:
        gathered: List[Optional[Tuple[Dict[int, VideoResult], float]]] = [None] * ranks.world_size
        dist.all_gather_object(gathered, ({index: results[index] for index in mine}, summary.seconds))
        for part, seconds in gathered:
            results.update(part)
            summary.seconds = max(summary.seconds, seconds)
        dist.destroy_process_group()
    summary.results = [results[index] for index in sorted(results)]
    return summary
