"""Frame-level evaluation of a model on the test split.

Two equivalent paths:
- ``one_at_a_time``: each video alone (batch of 1, the dictionary as a batch of 1), as published;
- batched (default): videos sorted by length, padded into chunks of at most ``max_snippets`` padded snippets and
  scored together with a mask, so that every video gets the numbers it would get alone (see
  ``anomaly.models.aggregate``). Test features are copied to the device once and kept there.

Snippet scores (crop average) are compared with frame labels, each snippet standing for 16 frames: ROC AUC,
or average precision for XD-Violence.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from anomaly.data import FRAMES_PER_SNIPPET, TestVideos
from anomaly.engine.metrics import snippet_label_weights, weighted_average_precision, weighted_roc_auc
from anomaly.engine.precision import autocast

DEFAULT_MAX_SNIPPETS = 4096


@dataclass
class Evaluation:
    """The result of one evaluation: the metric (AUC or AP, in [0, 1]) and each video's snippet scores [T, 1]."""

    metric_name: str
    value: float
    snippet_scores: Dict[str, np.ndarray]


class DeviceTestSet:
    """Test videos and labels moved to ``device`` once, ready for repeated evaluation.

    Videos are held as ``N T C`` tensors (the published loader's permute done once), sorted by length for batching.
    """

    def __init__(self, test_videos: TestVideos, device: torch.device, metric_name: str = "AUC"):
        self.video_ids = list(test_videos.video_ids)
        self.metric_name = metric_name
        self.device = device
        self.videos = [torch.from_numpy(video).permute(1, 0, 2).contiguous().to(device) for video in test_videos.videos]
        self.lengths = torch.tensor([video.shape[1] for video in self.videos])
        self.dictionary = torch.from_numpy(test_videos.dictionary).to(device).unsqueeze(0)
        labels = torch.from_numpy(np.ascontiguousarray(test_videos.frame_labels)).to(device)
        self.positives, self.negatives = snippet_label_weights(labels, self.lengths, FRAMES_PER_SNIPPET)
        self.by_length = sorted(range(len(self.videos)), key=lambda index: self.lengths[index].item())

    def chunks(self, max_snippets: int) -> List[List[int]]:
        """Groups of video indices (ascending length) whose padded size stays within ``max_snippets`` snippets."""
        groups: List[List[int]] = []
        current: List[int] = []
        for index in self.by_length:
            length = int(self.lengths[index])
            if current and (len(current) + 1) * length > max_snippets:
                groups.append(current)
                current = []
            current.append(index)
        if current:
            groups.append(current)
        return groups


def _score_one_at_a_time(model: nn.Module, test_set: DeviceTestSet) -> List[Tensor]:
    return [model.snippet_scores(video.unsqueeze(0), test_set.dictionary)[0] for video in test_set.videos]


def _score_batched(model: nn.Module, test_set: DeviceTestSet, max_snippets: int) -> List[Tensor]:
    scores: List[Optional[Tensor]] = [None] * len(test_set.videos)
    for group in test_set.chunks(max_snippets):
        lengths = test_set.lengths[group].to(test_set.device)
        longest = int(lengths.max())
        first = test_set.videos[group[0]]
        batch = first.new_zeros((len(group), first.shape[0], longest, first.shape[2]))
        for row, index in enumerate(group):
            batch[row, :, : int(test_set.lengths[index])] = test_set.videos[index]
        mask = torch.arange(longest, device=test_set.device).unsqueeze(0) < lengths.unsqueeze(1)
        group_scores = model.snippet_scores(batch, test_set.dictionary.expand(len(group), -1, -1), mask)
        for row, index in enumerate(group):
            scores[index] = group_scores[row, : int(test_set.lengths[index])]
    return scores


@torch.no_grad()
def evaluate(
    model: nn.Module,
    test_set: DeviceTestSet,
    one_at_a_time: bool = False,
    max_snippets: int = DEFAULT_MAX_SNIPPETS,
    precision: str = "fp32",
) -> Evaluation:
    """Score every test video with ``model`` in eval mode and compute the frame-level metric."""
    was_training = model.training
    model.eval()
    try:
        with autocast(precision, test_set.device):
            if one_at_a_time:
                scores = _score_one_at_a_time(model, test_set)
            else:
                scores = _score_batched(model, test_set, max_snippets)
    finally:
        model.train(was_training)
    scores = [score.float() for score in scores]
    flat = torch.cat(scores).flatten()
    metric = weighted_average_precision if test_set.metric_name == "AP" else weighted_roc_auc
    value = metric(flat, test_set.positives, test_set.negatives)
    snippet_scores = {video_id: score.cpu().numpy() for video_id, score in zip(test_set.video_ids, scores)}
    return Evaluation(test_set.metric_name, value, snippet_scores)
