"""S3R: Self-Supervised Sparse Representation for video anomaly detection (Wu et al., ECCV 2022).

Shapes: B videos, N crops, T snippets, C channels, S dictionary atoms, k selected snippets per video.
Parameter names are those of the released checkpoints (they are the file format), so a published
``*_best.pth`` loads with ``strict=True``.
"""

from typing import Dict, Optional, Tuple

import torch
from einops import rearrange
from torch import Tensor, nn

from anomaly.errors import check_choice
from anomaly.layout import TRAINING_SNIPPETS
from anomaly.models.aggregate import CONV_KERNELS, Aggregate
from anomaly.models.kernel_choice import KernelChoice

MODALITIES = ("taskaware", "universal", "univ-task")


class enNormalModule(nn.Module):  # noqa: N801 - the class name appears in published model descriptions
    """Attention of every snippet over the dictionary's atoms: reconstruct each snippet from normal atoms.

    query (B·N) T C, cache B S C -> reconstruction (B·N) T C, attention B (N·T) S (softmax over S, unscaled).
    """

    def __init__(self, dim: int = 2048):
        super().__init__()
        self.query_embedding = nn.Linear(dim, dim // 4)
        self.cache_embedding = nn.Linear(dim, dim // 4)
        self.value_embedding = nn.Linear(dim, dim)

    def attention(self, query: Tensor, cache: Tensor) -> Tensor:
        """query (B·N) T C, cache B S C -> softmax attention B (N·T) S (float32 under bf16 autocast)."""
        query = rearrange(query, "(b n) t c -> b (n t) c", b=cache.shape[0])
        affinity = self.query_embedding(query) @ self.cache_embedding(cache).transpose(1, 2)  # B (N T) S
        return affinity.to(torch.promote_types(affinity.dtype, torch.float32)).softmax(dim=-1)

    def forward(self, query: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
        length = query.shape[1]
        affinity = self.attention(query, cache)
        out = affinity @ self.value_embedding(cache)  # B (N T) C
        return rearrange(out, "b (n t) c -> (b n) t c", t=length), affinity


class enNormal(nn.Module):  # noqa: N801
    """en-Normal: the dictionary-guided reconstruction of a video; returns it and the attention B S (N·T)."""

    def __init__(self, dim: int = 2048):
        super().__init__()
        self.en_normal_module = enNormalModule(dim)

    def forward(self, video: Tensor, dictionary: Tensor) -> Tuple[Tensor, Tensor]:
        out, attention = self.en_normal_module(query=video, cache=dictionary)
        return out, attention.transpose(1, 2)


class ChannelGate(nn.Module):
    """Channel weights from the difference of the time-averaged video and en-Normal features: (B·N) C T -> (B·N) C 1."""

    def __init__(self, gate_channels: int, reduction_ratio: int = 16):
        super().__init__()
        self.gate_channels = gate_channels
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(gate_channels, gate_channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(gate_channels // reduction_ratio, gate_channels),
        )

    def forward(self, video: Tensor, macro: Tensor) -> Tensor:
        residual = video.mean(dim=-1) - macro.mean(dim=-1)  # (B N) C
        return torch.sigmoid(self.mlp(residual)).unsqueeze(2)


class ChannelAttention(nn.Module):
    """Excite the channels where a video differs from its normal reconstruction; the reconstruction keeps the rest."""

    def __init__(self, dim_input: int, reduction: int = 16):
        super().__init__()
        self.channel_gate = ChannelGate(dim_input, reduction)

    def forward(self, video: Tensor, macro: Tensor) -> Tuple[Tensor, Tensor]:
        scale = self.channel_gate(video, macro)
        return video * scale, macro * (1.0 - scale)


class deNormal(nn.Module):  # noqa: N801
    """de-Normal: channel attention between video and en-Normal embeddings, both (B·N) T C."""

    def __init__(self, dim_input: int = 2048, reduction: int = 16):
        super().__init__()
        self.channel_attention = ChannelAttention(dim_input, reduction)

    def forward(self, video: Tensor, macro: Tensor) -> Tuple[Tensor, Tensor]:
        video, macro = self.channel_attention(video.transpose(1, 2), macro.transpose(1, 2))
        return video.transpose(1, 2), macro.transpose(1, 2)


class GlobalStatistics(nn.Module):
    """Video-level score from time-averaged features: (B·N) C T -> (B·N) 1, through ``mlp`` and a sigmoid."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.mlp = mlp

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.mlp(x.mean(dim=-1)))


def check_feature_size(feature_size: int) -> None:
    """S3R needs ``C`` to be a positive multiple of 32: its temporal block (``Aggregate``) normalises ``C / 4``
    channels in 8 groups.

    The one place this rule is checked; raises ValueError with a message that option parsers show as it is.
    """
    if isinstance(feature_size, bool) or not isinstance(feature_size, int) or feature_size < 32 or feature_size % 32:
        raise ValueError(f"must be a positive multiple of 32 (the model's GroupNorm runs 8 groups on C / 4 "
                         f"channels), not {feature_size}")


def _classifier_layers(dim: int, dropout: float) -> list:
    return [
        nn.Linear(dim, dim // 4),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dim // 4, dim // 16),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dim // 16, 1),
    ]


def _projection(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1), nn.GroupNorm(8, dim, eps=1e-05), nn.ReLU())


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every convolution and linear layer (the published init)."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class S3R(nn.Module):
    """The S3R detector.

    ``forward(video B N T C, dictionary B S C)`` treats the first ``batch_size`` videos as normal and the rest as
    anomalous (a batch of normal videos only, as at inference, stands in for both halves). Snippet scores use every
    crop; the magnitude-based top-k selection of RTFM picks ``k = min(quantize_size // 10, T)`` snippets per video.
    ``modality`` (one of :data:`MODALITIES`) names the kind of dictionary the model is given; the architecture is
    the same for all, so it is only checked (the published constructor takes it).

    How it computes (not parameters: results differ by float rounding only):
    - ``fold_dictionary``: run the macro branch's first convolutions on the S attention weights instead of the
      C-channel reconstruction (the same function, about a fifth less work); False: the published order.
    - ``conv_kernel``: how the Aggregate blocks' temporal convolutions run (``CONV_KERNELS``): "auto" the faster of
      ``F.conv1d`` and one matrix product over shifted copies, measured by ``kernel_choice`` once per shape;
      "conv": ``F.conv1d``, as published; "matmul".
    - ``kernel_choice``: the measured choices (a new one when None), which the packed scorer consults too and a
      training state saves.
    :meth:`published_computation` gives the same model computing as published.
    """

    def __init__(
        self,
        dim: int = 2048,
        batch_size: int = 32,
        quantize_size: int = TRAINING_SNIPPETS,
        dropout: float = 0.7,
        modality: str = "taskaware",
        fold_dictionary: bool = True,
        conv_kernel: str = "auto",
        kernel_choice: Optional[KernelChoice] = None,
    ):
        super().__init__()
        check_choice(modality, MODALITIES, "modality")
        check_choice(conv_kernel, CONV_KERNELS, "conv_kernel")
        check_feature_size(dim)
        self.dim = dim
        self.batch_size = batch_size
        self.quantize_size = quantize_size
        self.dropout = dropout
        self.modality = modality
        # The published k = quantize_size // 10 (3), at least 1 so that a short quantize_size still selects; the
        # same k for the anomalous and the normal half.
        self.k = max(quantize_size // 10, 1)
        self.fold_dictionary = fold_dictionary
        self.conv_kernel = conv_kernel
        self.kernel_choice = KernelChoice() if kernel_choice is None else kernel_choice

        # Construction order follows the published model so that a seed gives the same initial weights.
        self.video_embedding = nn.Sequential(Aggregate(dim), nn.Dropout(dropout))
        self.macro_embedding = nn.Sequential(Aggregate(dim), nn.Dropout(dropout))
        self.en_normal = enNormal(dim)
        self.de_normal = deNormal(dim, reduction=16)
        # Unused in the forward pass, as in the published model, but part of the released checkpoints' layout
        # (strict loading needs them) and of the seeded initialisation order.
        self.video_projection = _projection(dim)
        self.macro_projection = _projection(dim)
        self.video_classifier = nn.Sequential(*_classifier_layers(dim, dropout), nn.Sigmoid())
        self.macro_classifier = GlobalStatistics(mlp=nn.Sequential(*_classifier_layers(dim, dropout)))
        self.drop_out = nn.Dropout(dropout)
        self.apply(xavier_init)

    def published_computation(self) -> "S3R":
        """This model computing as the published code does: no dictionary folding, ``F.conv1d`` (the benchmark's
        one-at-a-time path). It holds the same parameter and buffer tensors, shared, not copied: training or loading
        one changes both. Move or convert the model (``.to``) before taking it: a conversion replaces the buffers of
        the module it is applied to only."""
        with torch.device("meta"):  # no memory and no random draws for weights about to be replaced
            published = S3R(self.dim, self.batch_size, self.quantize_size, self.dropout, self.modality,
                            fold_dictionary=False, conv_kernel="conv", kernel_choice=self.kernel_choice)  # fmt: skip
        published.load_state_dict(self.state_dict(keep_vars=True), assign=True)
        return published.train(self.training)

    def embed(self, video: Tensor, dictionary: Tensor) -> Dict[str, Tensor]:
        """video B N T C, dictionary B S C (or S C) -> de-Normal embeddings (B·N) T C and attention."""
        batch, num_crops = video.shape[:2]
        if dictionary.dim() == 2:
            dictionary = dictionary.unsqueeze(0).expand(batch, -1, -1)
        video = rearrange(video, "b n t c -> (b n) t c")
        kernel, choice = self.conv_kernel, self.kernel_choice
        if self._folds(dictionary):
            # The en-Normal reconstruction is attention · values with one dictionary for the whole batch: the macro
            # branch takes the attention as coefficients of the values (see Aggregate.forward's ``basis``).
            module = self.en_normal.en_normal_module
            affinity = module.attention(video, dictionary)  # B (N T) S
            values = module.value_embedding(dictionary[0])  # S C
            coefficients = rearrange(affinity, "b (n t) s -> (b n) t s", n=num_crops)
            x_video = self.video_embedding[1](self.video_embedding[0](video, kernel=kernel, choice=choice))
            x_macro = self.macro_embedding[1](self.macro_embedding[0](coefficients, values, kernel, choice))
            memory_attn = affinity.transpose(1, 2)
        else:
            macro, memory_attn = self.en_normal(video, dictionary)
            x_video = self.video_embedding[1](self.video_embedding[0](video, kernel=kernel, choice=choice))
            x_macro = self.macro_embedding[1](self.macro_embedding[0](macro, kernel=kernel, choice=choice))
        x_video, x_macro = self.de_normal(x_video, x_macro)
        return {"x_video": x_video, "x_macro": x_macro, "memory_attn": memory_attn}

    def _folds(self, dictionary: Tensor) -> bool:
        """Fold the dictionary into the macro branch: allowed, worth it (S < C) and one dictionary for the batch."""
        if not self.fold_dictionary or dictionary.shape[1] >= dictionary.shape[2]:
            return False
        return dictionary.shape[0] == 1 or dictionary.stride(0) == 0  # a batch of 1, or one expanded

    def snippet_scores(self, video: Tensor, dictionary: Tensor) -> Tensor:
        """Crop-averaged anomaly score of every snippet: video B N T C -> B T 1."""
        x_video = self.embed(video, dictionary)["x_video"]
        return self._crop_mean(self.video_classifier(x_video), video.shape[1])

    @staticmethod
    def _crop_mean(x: Tensor, num_crops: int) -> Tensor:
        """(B·N) T 1 -> B T 1."""
        return rearrange(x, "(b n) t 1 -> b n t", n=num_crops).mean(dim=1).unsqueeze(2)

    def _select_top_k(self, embeddings: Tensor, magnitudes: Tensor, scores: Tensor, k: int) -> Tuple[Tensor, Tensor]:
        """Pick the k snippets of largest (randomly dropped) magnitude per video.

        embeddings V N T C, magnitudes V T, scores V T 1 -> features (N·V) k C (crop-major), mean score V 1.
        """
        keep = self.drop_out(torch.ones_like(magnitudes))
        index = torch.topk(magnitudes * keep, k, dim=1)[1]  # V k
        crops_first = embeddings.transpose(0, 1)  # N V T C
        feature_index = index.view(1, *index.shape, 1).expand(crops_first.shape[0], -1, -1, crops_first.shape[-1])
        features = torch.gather(crops_first, 2, feature_index).flatten(0, 1)
        score = torch.gather(scores, 1, index.unsqueeze(2)).mean(dim=1)
        return features, score

    def forward(self, video: Tensor, dictionary: Tensor) -> Dict[str, Tensor]:
        batch, num_crops, length, channels = video.shape
        embedded = self.embed(video, dictionary)
        x_video, x_macro = embedded["x_video"], embedded["x_macro"]

        video_scores = self._crop_mean(self.video_classifier(x_video), num_crops)  # B T 1
        macro_scores = self.macro_classifier(x_macro.transpose(1, 2)).view(batch, num_crops, 1).mean(dim=1)  # B 1
        magnitudes = torch.norm(x_video, p=2, dim=2).view(batch, num_crops, length).mean(dim=1)  # B T
        embeddings = x_video.view(batch, num_crops, length, channels)

        regular = slice(0, min(self.batch_size, batch))
        # Without anomalous videos (inference) the normal videos stand in for both halves, as published.
        anomaly = slice(self.batch_size, batch) if batch > self.batch_size else regular
        # The anomalous half draws its dropout mask first, as in the published code (same random stream).
        feature_select_anomaly, anomaly_score = self._select_top_k(
            embeddings[anomaly], magnitudes[anomaly], video_scores[anomaly], min(self.k, length)
        )
        feature_select_regular, regular_score = self._select_top_k(
            embeddings[regular], magnitudes[regular], video_scores[regular], min(self.k, length)
        )
        return {
            "anomaly_score": anomaly_score,
            "regular_score": regular_score,
            "feature_select_anomaly": feature_select_anomaly,
            "feature_select_regular": feature_select_regular,
            "video_scores": video_scores,
            "macro_scores": macro_scores,
            "feature_magnitudes": magnitudes,
            "memory_attn": embedded["memory_attn"],
        }
