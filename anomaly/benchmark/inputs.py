"""The benchmark's synthetic inputs, in the published protocol's shapes.

The ShanghaiTech-shaped test set has the real split's 199 lengths (13 to 112 snippets, 8,932 in all); the
UCF-Crime-shaped one 290 log-normal lengths summing to about 69,600 (the real lengths are not available here).
Features are uniform in [0, 1); weights are the Xavier initialisation, with the non-local blocks' BatchNorm
given non-zero values so that every branch contributes to the scores. Training batches of the published path are
made on the host every step, as the published loader does (``HostBatches``).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from anomaly.data.features import resample_snippets
from anomaly.engine.evaluator import DeviceTestSet
from anomaly.engine.trainer import ShuffledBatches
from anomaly.layout import FRAMES_PER_SNIPPET, TRAINING_SNIPPETS
from anomaly.models.s3r import S3R

QUANTIZE_SIZE = TRAINING_SNIPPETS  # snippets of every training video (the published quantize_size, 32)

# Snippets per test video of ShanghaiTech in csv order (num_frames / 16 of the published ground truth).
SHANGHAITECH_TEST_LENGTHS = (
    28, 38, 26, 29, 22, 22, 29, 20, 34, 19, 26, 34, 14, 20, 13, 20, 22, 34, 26, 20, 28, 55, 20, 23, 34, 28, 41, 49,
    16, 14, 25, 29, 16, 22, 29, 19, 20, 22, 16, 28, 38, 19, 14, 22, 48, 49, 32, 64, 47, 53, 64, 46, 59, 60, 61, 75,
    56, 31, 61, 73, 55, 38, 67, 51, 61, 70, 46, 64, 46, 46, 46, 56, 41, 39, 66, 66, 66, 36, 35, 44, 65, 45, 50, 50,
    51, 57, 46, 19, 19, 37, 14, 13, 25, 26, 58, 61, 26, 103, 34, 38, 20, 31, 40, 38, 40, 55, 79, 52, 35, 51, 67, 46,
    46, 32, 55, 35, 74, 61, 31, 49, 49, 49, 49, 49, 47, 47, 47, 47, 47, 47, 65, 67, 67, 31, 65, 64, 46, 25, 16, 53,
    46, 46, 46, 46, 46, 84, 48, 48, 48, 47, 44, 19, 52, 82, 49, 50, 50, 50, 46, 46, 59, 83, 52, 47, 47, 68, 57, 57,
    51, 51, 70, 74, 50, 50, 50, 50, 52, 33, 31, 95, 110, 112, 74, 38, 47, 41, 16, 67, 34, 26, 65, 52, 44, 100, 38,
    64, 38, 25, 29,
)  # fmt: skip


def ucf_crime_test_lengths(count: int = 290, total: int = 69_600, seed: int = 0) -> Tuple[int, ...]:
    """Log-normal lengths (a few very long videos, as in UCF-Crime) of 8 to 6,000 snippets summing to ≈ ``total``."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=count)
    lengths = np.clip(np.round(raw / raw.sum() * total), 8, 6000).astype(int)
    return tuple(int(length) for length in lengths)


@dataclass(frozen=True)
class DatasetShape:
    name: str
    test_lengths: Tuple[int, ...]
    num_atoms: int  # dictionary atoms (R % of the normal training videos)
    num_train_anomalous: int
    num_train_normal: int


SHAPES = {
    "shanghaitech": DatasetShape("shanghaitech", SHANGHAITECH_TEST_LENGTHS, 158, 63, 175),
    "ucf-crime": DatasetShape("ucf-crime", ucf_crime_test_lengths(), 400, 810, 800),
}


def subsample(lengths: Sequence[int], count: Optional[int]) -> List[int]:
    """``count`` of ``lengths`` spread evenly over their sorted order (same length distribution), in csv order."""
    if count is None or count >= len(lengths):
        return list(lengths)
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    picked = sorted(order[int(round(position))] for position in np.linspace(0, len(lengths) - 1, count))
    return [lengths[index] for index in picked]


def synthetic_test_set(
    lengths: Sequence[int], num_crops: int, channels: int, num_atoms: int, device: torch.device, seed: int
) -> DeviceTestSet:
    """Uniform features made on the device; about a fifth of the videos anomalous in their middle third."""
    generator = torch.Generator(device=device).manual_seed(seed)
    videos = [torch.rand((num_crops, length, channels), generator=generator, device=device) for length in lengths]
    dictionary = torch.rand((num_atoms, channels), generator=generator, device=device)
    labels = []
    for index, length in enumerate(lengths):
        frames = np.zeros(FRAMES_PER_SNIPPET * length, dtype=np.float32)
        if index % 5 == 2:
            frames[len(frames) // 3 : 2 * len(frames) // 3 + 1] = 1
        labels.append(frames)
    if not any(label.any() for label in labels):
        labels[0][:] = 1
    video_ids = [f"video_{index:04d}" for index in range(len(lengths))]
    return DeviceTestSet.from_tensors(video_ids, videos, dictionary, np.concatenate(labels), device)


def benchmark_model(feature_size: int, batch_size: int, seed: int, device: torch.device) -> S3R:
    """S3R with the seeded Xavier initialisation, its non-local blocks' BatchNorm made non-zero (as after training:
    every branch reaches the scores), on ``device``."""
    torch.manual_seed(seed)
    model = S3R(feature_size, batch_size=batch_size, quantize_size=QUANTIZE_SIZE)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "alter.1" in name and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model.to(device)


class HostBatches:
    """The published loader's work per step, from memory: pick, resample to 32 snippets, stack, copy over."""

    def __init__(self, normal: List[np.ndarray], anomalous: List[np.ndarray], batch_size: int, device: torch.device, seed: int):
        self.normal, self.anomalous, self.device = normal, anomalous, device
        self.normal_batches = ShuffledBatches(len(normal), batch_size, seed)
        self.anomalous_batches = ShuffledBatches(len(anomalous), batch_size, seed + 1)

    def _batch(self, videos: List[np.ndarray], indices: Tensor) -> Tensor:
        batch = np.stack([resample_snippets(videos[index], QUANTIZE_SIZE) for index in indices.tolist()])
        return torch.from_numpy(batch).to(self.device)

    def next_batch(self) -> Tuple[Tensor, Tensor]:
        return self._batch(self.normal, next(self.normal_batches)), self._batch(self.anomalous, next(self.anomalous_batches))


def raw_training_videos(count: int, lengths: Sequence[int], num_crops: int, channels: int, rng: np.random.Generator) -> List[np.ndarray]:
    """``count`` videos ``T N C`` of lengths drawn from ``lengths``."""
    return [rng.random((int(rng.choice(lengths)), num_crops, channels), dtype=np.float32) for _ in range(count)]
