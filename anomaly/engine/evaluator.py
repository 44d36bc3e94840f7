"""Frame-level evaluation of a model on the test split.

Two paths that give the same scores (to float rounding, about 1e-7):
- ``one_at_a_time``: each video alone (batch of 1, the dictionary as a batch of 1), as published;
- batched (default): videos sorted by length and grouped into chunks of similar lengths holding at most
  ``max_snippets`` padded snippet positions each, scored together by ``anomaly.models.s3r.PackedScorer``
  (padding never reaches a video's numbers: its GroupNorm statistics, convolution borders, non-local division
  by T and time means see only its own snippets; memory is linear in their lengths).
Test features are copied to the device once (``DeviceTestSet``) and kept there.

Snippet scores (crop average) are compared with frame labels, each snippet standing for 16 frames: ROC AUC,
or average precision for XD-Violence, computed on the device without repeating the scores (see ``metrics``).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from anomaly.data import TestVideos
from anomaly.layout import FRAMES_PER_SNIPPET
from anomaly.engine.metrics import NonFiniteScores, snippet_label_weights, weighted_ap_stepwise, weighted_roc_auc
from anomaly.precision import autocast, dtype_of
from anomaly.models.packing import GAP, PackedChunk
from anomaly.models.s3r import S3R, PackedScorer

DEFAULT_MAX_SNIPPETS = None  # chosen per device by auto_max_snippets
CPU_MAX_SNIPPETS = 2048  # on CPU larger chunks gain nothing and cost memory
CUDA_MAX_SNIPPETS = 16384
# The fixed cost of one chunk, in padded snippets of work: a chunk is worth splitting only when that removes
# more padding than this. Small on CPU (matrix products of a few hundred rows already run near full speed),
# larger on a GPU (kernel launches and small, inefficient matrix products).
CHUNK_OVERHEAD = {"cpu": 24, "cuda": 256}
ACTIVATION_MEMORY_SHARE = 0.5  # share of the free GPU memory the chunks' activations may use


@dataclass
class Evaluation:
    """The result of one evaluation: the metric (AUC or AP, in [0, 1]) and each video's snippet scores [T, 1]."""

    metric_name: str
    value: float
    snippet_scores: Dict[str, np.ndarray]


def activation_bytes_per_snippet(num_crops: int, channels: int, num_atoms: int, dtype: torch.dtype) -> int:
    """Peak memory of the packed scorer per padded snippet position (all crops), with 25 % allocator slack.

    While a block runs, its input (C), its four branches (C in all), their fusion (C) and, for the en-Normal
    branch, the atom coefficients (S) are alive, plus the non-local block's value/query/key (3C/8) and output (C/8) and
    one float32 temporary of C (a reduction's cast in bf16); in float32, where the fusion may run as Winograd's
    F(2, 3), four temporaries of half the rows (2C) more. The non-local block holds no T × T attention (see
    ``NonLocalBlock1D``), so nothing depends on the videos' lengths. Measured on a CPU at 2048 channels and 10
    crops: 250 KB in float32 without Winograd (estimate 460 KB; 670 KB with its temporaries).
    """
    element = torch.finfo(dtype).bits // 8
    alive = 5 * channels if dtype == torch.float32 else 3 * channels
    per_crop = (alive + num_atoms + 4 * channels // 8 + GAP) * element + channels * 4
    return int(1.25 * num_crops * per_crop)


def auto_max_snippets(test_set: "DeviceTestSet", dtype: torch.dtype = torch.float32) -> int:
    """The chunk size (padded snippet positions) for ``test_set``'s device.

    CPU: ``CPU_MAX_SNIPPETS``. CUDA: as many as fit in ``ACTIVATION_MEMORY_SHARE`` of the free memory by
    ``activation_bytes_per_snippet``, at most ``CUDA_MAX_SNIPPETS``, at least the longest video.
    """
    longest = int(test_set.lengths.max()) if len(test_set.videos) else 1
    if test_set.device.type != "cuda":
        return CPU_MAX_SNIPPETS
    free, _ = torch.cuda.mem_get_info(test_set.device)
    per_snippet = activation_bytes_per_snippet(
        test_set.num_crops, test_set.channels, test_set.dictionary.shape[1], dtype
    )
    return max(longest + GAP, min(CUDA_MAX_SNIPPETS, int(ACTIVATION_MEMORY_SHARE * free / per_snippet)))


def plan_chunks(lengths: Sequence[int], max_snippets: int, overhead: int) -> List[List[int]]:
    """Split the videos into chunks of consecutive lengths (ascending) at the least total cost.

    A chunk of n videos whose longest has T snippets costs n·(T + GAP) padded positions plus ``overhead``, and
    holds at most ``max_snippets`` positions (a longer video gets a chunk of its own). Exact dynamic programme
    over the sorted lengths. Returns lists of indices into ``lengths``.
    """
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    sizes = [int(lengths[index]) + GAP for index in order]
    count = len(order)
    best = [0.0] + [float("inf")] * count  # best[j]: cost of the first j videos
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(end - 1, -1, -1):
            padded = (end - start) * sizes[end - 1]
            if padded > max_snippets and start < end - 1:
                break
            cost = best[start] + padded + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    chunks: List[List[int]] = []
    end = count
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


class DeviceTestSet:
    """Test videos and labels moved to ``device`` once, ready for repeated evaluation.

    Videos are held as ``N T C`` tensors (the published loader's permute done once); chunk plans are cached.
    """

    def __init__(self, test_videos: TestVideos, device: torch.device, metric_name: str = "AUC"):
        device = torch.device(device)
        videos = [
            torch.from_numpy(np.ascontiguousarray(video)).permute(1, 0, 2).contiguous().to(device)
            for video in test_videos.videos
        ]
        dictionary = torch.from_numpy(np.ascontiguousarray(test_videos.dictionary)).to(device)
        self._setup(test_videos.video_ids, videos, dictionary, test_videos.frame_labels, device, metric_name)

    @classmethod
    def from_tensors(
        cls,
        video_ids: Sequence[str],
        videos: Sequence[Tensor],
        dictionary: Tensor,
        frame_labels: np.ndarray,
        device: torch.device,
        metric_name: str = "AUC",
    ) -> "DeviceTestSet":
        """A test set from videos already made as ``N T C`` tensors (the benchmark makes them on the device)."""
        test_set = cls.__new__(cls)
        device = torch.device(device)
        test_set._setup(video_ids, [video.to(device) for video in videos], dictionary.to(device), frame_labels, device, metric_name)
        return test_set

    def _setup(self, video_ids, videos: List[Tensor], dictionary: Tensor, frame_labels, device, metric_name) -> None:
        self.video_ids = list(video_ids)
        self.metric_name = metric_name
        self.device = device
        self.videos = videos
        self.lengths = torch.tensor([video.shape[1] for video in self.videos])
        self.dictionary = dictionary.unsqueeze(0)  # 1 S C
        labels = torch.from_numpy(np.ascontiguousarray(frame_labels)).to(self.device)
        self.positives, self.negatives = snippet_label_weights(labels, self.lengths, FRAMES_PER_SNIPPET)
        self._plans: Dict[Tuple[int, int], List[Tuple[List[int], PackedChunk]]] = {}

    @property
    def num_crops(self) -> int:
        return self.videos[0].shape[0]

    @property
    def channels(self) -> int:
        return self.videos[0].shape[2]

    def plan(self, max_snippets: int, overhead: Optional[int] = None) -> List[Tuple[List[int], PackedChunk]]:
        """The chunks (see ``plan_chunks``) with their packed layouts, computed once per setting."""
        overhead = CHUNK_OVERHEAD.get(self.device.type, 64) if overhead is None else overhead
        key = (int(max_snippets), int(overhead))
        if key not in self._plans:
            lengths = self.lengths.tolist()
            self._plans[key] = [
                (group, PackedChunk.plan([lengths[index] for index in group], self.num_crops, self.device))
                for group in plan_chunks(lengths, max_snippets, overhead)
            ]
        return self._plans[key]


def _score_one_at_a_time(model: S3R, test_set: DeviceTestSet) -> List[Tensor]:
    return [model.snippet_scores(video.unsqueeze(0), test_set.dictionary)[0] for video in test_set.videos]


def _score_packed(model: S3R, test_set: DeviceTestSet, max_snippets: int, dtype: torch.dtype) -> List[Tensor]:
    scorer = PackedScorer(model, test_set.dictionary[0], dtype)
    scores: List[Optional[Tensor]] = [None] * len(test_set.videos)
    for group, chunk in test_set.plan(max_snippets):
        chunk_scores = scorer([test_set.videos[index] for index in group], chunk)
        for row, (index, length) in enumerate(zip(group, chunk.lengths)):
            scores[index] = chunk_scores[row, :length].unsqueeze(1)
    return scores


def _score_packed_within_memory(model: S3R, test_set: DeviceTestSet, max_snippets: int, dtype: torch.dtype) -> List[Tensor]:
    """``_score_packed``, halving the chunks when the GPU runs out of memory (down to one video per chunk)."""
    smallest = int(test_set.lengths.max()) + GAP
    while True:
        try:
            return _score_packed(model, test_set, max_snippets, dtype)
        except torch.cuda.OutOfMemoryError:
            if max_snippets <= smallest:
                raise
            torch.cuda.empty_cache()
            max_snippets = max(smallest, max_snippets // 2)


@torch.no_grad()
def score_test_set(
    model: S3R,
    test_set: DeviceTestSet,
    one_at_a_time: bool = False,
    max_snippets: Optional[int] = DEFAULT_MAX_SNIPPETS,
    precision: str = "fp32",
) -> List[Tensor]:
    """Every test video's snippet scores (T × 1, float32, on the device) in csv order; the model's mode is kept.

    Batched: by ``model``'s packed form (``PackedScorer``: it folds the dictionary as the model does, with the
    kernels ``model.kernel_choice`` measures); ``one_at_a_time``: by ``model.snippet_scores``.
    """
    dtype = dtype_of(precision)
    was_training = model.training
    model.eval()
    try:
        with autocast(precision, test_set.device):
            if one_at_a_time:
                scores = _score_one_at_a_time(model, test_set)
            else:
                limit = auto_max_snippets(test_set, dtype) if max_snippets is None else max_snippets
                scores = _score_packed_within_memory(model, test_set, limit, dtype)
    finally:
        model.train(was_training)
    return [score.float() for score in scores]


def check_finite_scores(scores: Sequence[Tensor], video_ids: Sequence[str], metric_name: str) -> None:
    """:class:`NonFiniteScores` (one line, naming the first video) when a snippet score is NaN or inf: such scores are no ranking, and a metric of them
    would be a wrong number (NaN breaks the metric's tie handling). The model overflowed: its weights, or inputs
    so large (features or dictionary values around 1e30) that float32 arithmetic reaches inf."""
    if bool(torch.isfinite(torch.cat(scores)).all()):
        return
    bad = [int((~torch.isfinite(score)).sum()) for score in scores]
    first = next(index for index, count in enumerate(bad) if count)
    raise NonFiniteScores(
        f"the model's scores are NaN or inf for {sum(bad)} of {sum(score.numel() for score in scores)} snippets "
        f"(first in test video '{video_ids[first]}'): its weights or inputs overflow float32, so no "
        f"{metric_name} is computed",
    )


def evaluate(
    model: S3R,
    test_set: DeviceTestSet,
    one_at_a_time: bool = False,
    max_snippets: Optional[int] = DEFAULT_MAX_SNIPPETS,
    precision: str = "fp32",
) -> Evaluation:
    """Score every test video with ``model`` in eval mode and compute the frame-level metric.

    ``max_snippets`` bounds the padded snippet positions per chunk of the batched path (None: by device and free
    memory, see ``auto_max_snippets``); ``precision`` is fp32 (published numbers), tf32 or bf16.
    """
    scores = score_test_set(model, test_set, one_at_a_time, max_snippets, precision)
    check_finite_scores(scores, test_set.video_ids, test_set.metric_name)
    flat = torch.cat(scores).flatten()
    metric = weighted_ap_stepwise if test_set.metric_name == "AP" else weighted_roc_auc
    value = metric(flat, test_set.positives, test_set.negatives)
    on_host = flat.cpu().numpy()
    bounds = np.cumsum([0] + [score.shape[0] for score in scores])
    snippet_scores = {
        video_id: on_host[start:end].reshape(-1, 1) for video_id, start, end in zip(test_set.video_ids, bounds[:-1], bounds[1:])
    }
    return Evaluation(test_set.metric_name, value, snippet_scores)
