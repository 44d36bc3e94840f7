"""S3R: Self-Supervised Sparse Representation for video anomaly detection (Wu et al., ECCV 2022).

Shapes: B videos, N crops, T snippets, C channels, S dictionary atoms, k selected snippets per video.
Parameter names are those of the released checkpoints (they are the file format), so a published
``*_best.pth`` loads with ``strict=True``.

Each module's ``forward`` is followed by its packed form, the same eval-mode function for many videos at once on
the packed layout of ``anomaly.models.packing`` (R = B·N sequences of body rows): ``PackedEnNormal``,
``PackedDeNormal``, ``PackedClassifier``, and after ``S3R`` the ``PackedScorer`` that lays the videos out and runs
them with the Aggregate blocks' packed forms (``anomaly.models.aggregate``). A change to a module's ``forward``
needs the same change in its packed form (``tests/test_packed_forms.py`` compares the two for every module).
"""

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import Tensor, nn

from anomaly.errors import check_choice
from anomaly.layout import TRAINING_SNIPPETS, check_feature_size
from anomaly.measuring import Timer, no_timer
from anomaly.models.aggregate import CONV_KERNELS, Aggregate, PackedAggregate
from anomaly.models.kernel_choice import MEASURE_ROWS, KernelChoice
from anomaly.models.packing import PackedChunk, body, padded

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


def packed_time_mean(y: Tensor, chunk: PackedChunk) -> Tensor:
    """The time mean (``mean(dim=-1)`` of B C T) of packed rows: y (body rows × C, tails zero) -> R × C, float32,
    over each sequence's real rows."""
    return y.view(chunk.sequences, chunk.pitch, -1).sum(dim=1, dtype=torch.float32) / chunk.counts.unsqueeze(1)


class PackedEnNormal:
    """``enNormalModule`` in eval mode on packed rows, with one dictionary (S × C): the attention of every row over
    the atoms, the reconstruction (attention · values) and its time mean.

    ``query_embedding`` and ``cache_embedding`` fold into one C × S matrix, logits = x·(Wqᵀ·Kᵀ) + bq·Kᵀ with K the
    atoms' keys; formed in float64, rounded once to ``dtype``. The softmax runs in float32.
    """

    def __init__(self, module: enNormalModule, dictionary: Tensor, dtype: torch.dtype):
        atoms = dictionary.double()
        keys = atoms @ module.cache_embedding.weight.double().t() + module.cache_embedding.bias.double()
        self.values = atoms @ module.value_embedding.weight.double().t() + module.value_embedding.bias.double()  # S C
        self.values_float32 = self.values.float()
        self.query = (module.query_embedding.weight.double().t() @ keys.t()).to(dtype).contiguous()  # C × S
        self.query_bias = (module.query_embedding.bias.double() @ keys.t()).to(dtype)
        self.dtype = dtype

    def attention(self, x: Tensor, chunk: PackedChunk) -> Tensor:
        """x: body rows × C (tails zero) -> attention over the atoms, rows × S, float32, tails zero."""
        logits = torch.addmm(self.query_bias, x, self.query)
        attention = torch.softmax(logits.float(), dim=1)
        del logits
        chunk.zero_tails_(attention)
        return attention

    def reconstruction_(self, attention: Tensor, out: Tensor) -> None:
        """attention (rows × S) -> the module's output attention · values into ``out`` (rows × C, ``dtype``)."""
        torch.mm(attention.to(self.dtype), self._values_in_dtype, out=out)

    @functools.cached_property
    def _values_in_dtype(self) -> Tensor:
        return self.values.to(self.dtype)

    def reconstruction_mean(self, attention: Tensor, chunk: PackedChunk) -> Tensor:
        """The time mean of every sequence's reconstruction, R × C float32: mean(A·V) = mean(A)·V."""
        return packed_time_mean(attention, chunk) @ self.values_float32


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


class PackedDeNormal:
    """``deNormal`` in eval mode on packed rows, its video side: snippet scores need only the gated video
    embedding, and the en-Normal embedding enters it only through its time mean (the channel gate's input)."""

    def __init__(self, module: deNormal):
        mlp = module.channel_attention.channel_gate.mlp
        self.layers = [(layer.weight.float().t().contiguous(), layer.bias.float()) for layer in (mlp[1], mlp[3])]

    def __call__(self, video: Tensor, macro_mean: Tensor, chunk: PackedChunk) -> Tensor:
        """video: body rows × C (tails zero), macro_mean: R × C float32 (the en-Normal embedding's time mean) ->
        video · gate, in place (the gate in float32)."""
        difference = packed_time_mean(video, chunk) - macro_mean
        (first, first_bias), (second, second_bias) = self.layers
        gate = torch.sigmoid(torch.addmm(second_bias, torch.relu(torch.addmm(first_bias, difference, first)), second))
        rows, channels = video.shape
        return video.view(chunk.sequences, chunk.pitch, channels).mul_(gate.to(video.dtype).unsqueeze(1)).view(rows, channels)


class GlobalStatistics(nn.Module):
    """Video-level score from time-averaged features: (B·N) C T -> (B·N) 1, through ``mlp`` and a sigmoid."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.mlp = mlp

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.mlp(x.mean(dim=-1)))


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


class PackedClassifier:
    """The video classifier (``_classifier_layers`` and a Sigmoid) in eval mode on packed rows, layer by layer:
    Linear as one product (weights cast once to ``dtype``), ReLU in place, Dropout the identity, the Sigmoid in
    float32; then the mean over crops."""

    def __init__(self, classifier: nn.Sequential, dtype: torch.dtype):
        self.steps = [self._step(layer, dtype) for layer in classifier]

    @staticmethod
    def _step(layer: nn.Module, dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        if isinstance(layer, nn.Linear):
            weight, bias = layer.weight.t().to(dtype).contiguous(), layer.bias.to(dtype)
            return lambda x: torch.addmm(bias, x, weight)
        if isinstance(layer, nn.ReLU):
            return torch.relu_
        if isinstance(layer, nn.Dropout):
            return lambda x: x
        if isinstance(layer, nn.Sigmoid):
            return lambda x: torch.sigmoid(x.float())
        raise ValueError(f"the packed classifier has no form of {type(layer).__name__}")

    def __call__(self, x: Tensor, chunk: PackedChunk) -> Tensor:
        """x: body rows × C -> crop-averaged scores, videos × P (float32; garbage past each video's length)."""
        for step in self.steps:
            x = step(x)
        return x.view(len(chunk.lengths), chunk.num_crops, chunk.pitch).mean(dim=1)


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
    crop; the magnitude-based top-k selection of RTFM picks ``k = min(max(quantize_size // 10, 1), T)`` snippets per
    video.
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
        check_feature_size(dim, "dim")
        self.dim = dim
        self.batch_size = batch_size
        self.quantize_size = quantize_size
        self.dropout_rate = dropout
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
            published = S3R(self.dim, self.batch_size, self.quantize_size, self.dropout_rate, self.modality,
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


class PackedScorer:
    """``S3R.snippet_scores`` in eval mode for chunks of videos of different lengths at once, with one dictionary:
    the fast path of evaluation.

    ``PackedScorer(model, dictionary)(videos, chunk)`` gives every video the scores of ``model.snippet_scores`` on
    that video alone. It lays the videos out (``anomaly.models.packing``) and runs each module's packed form; the
    same function in exact arithmetic, in float32 different by rounding only (about 1e-7 of a score), because some
    products are taken in another order:
    1. en-Normal's query and key projections fold into one C × S matrix (``PackedEnNormal``).
    2. With ``model.fold_dictionary`` and fewer atoms than channels, the macro Aggregate's first convolutions act on
       the attention A, their weights folded with the values V (as ``S3R.embed``); its residual A·V enters the
       scores only through its time mean, mean(A)·V, as does the whole macro embedding (the channel gate's input).
    3. Eval-mode BatchNorm folds into the non-local blocks' output convolutions (``PackedNonLocal``).
    4. Every sequence's convolutions run as one kernel call per layer, by the kernels ``kernel`` names (one of
       ``packing.KERNELS``) or ``model.kernel_choice`` measures fastest on chunks of ``rows`` body rows
       (``PackedAggregate``; evaluation's chunks are hundreds of rows, a live window's ``PackedChunk.body_rows``).
    The macro classifier (``GlobalStatistics``) does not reach snippet scores. Weights are folded once per scorer, in
    float64: build a new scorer whenever the model's weights change. ``dtype`` (float32 or bfloat16) is that of the
    products; GroupNorm statistics, time means, the softmax, the channel gate and the final sigmoid run in float32.
    On CUDA the products that replace convolutions follow cuDNN's TF32 setting (``torch.backends.cudnn.allow_tf32``,
    which ``--precision`` sets) and the others the matmul setting, as the modules would.
    """

    def __init__(self, model: S3R, dictionary: Tensor, dtype: torch.dtype = torch.float32, kernel: Optional[str] = None,
                 rows: int = MEASURE_ROWS):  # fmt: skip
        if model.training:
            raise ValueError("PackedScorer needs the model in eval mode")
        if dictionary.dim() == 3:
            dictionary = dictionary[0]
        self.dtype = dtype
        with torch.no_grad(), torch.autocast(dictionary.device.type, enabled=False):
            self.en_normal = PackedEnNormal(model.en_normal.en_normal_module, dictionary, dtype)
            self.fold = model.fold_dictionary and dictionary.shape[0] < dictionary.shape[1]
            basis = self.en_normal.values if self.fold else None
            choice = model.kernel_choice
            self.video_block = PackedAggregate(model.video_embedding[0], dtype, choice, None, kernel, rows)
            self.macro_block = PackedAggregate(model.macro_embedding[0], dtype, choice, basis, kernel, rows)
            self.de_normal = PackedDeNormal(model.de_normal)
            self.classifier = PackedClassifier(model.video_classifier, dtype)

    def video_scores(self, video: Tensor) -> Tensor:
        """One video, N T C -> its T snippet scores (float32): a chunk of its own."""
        length = video.shape[1]
        return self([video], PackedChunk.plan([length], video.shape[0], video.device))[0, :length]

    @torch.no_grad()
    def __call__(self, videos: Sequence[Tensor], chunk: PackedChunk, timer: Timer = no_timer) -> Tensor:
        """videos: N × T_i × C each (``chunk.lengths`` gives the T_i) -> scores B × T_max (float32, garbage past T_i).

        ``timer(section)``, when given, times the parts (labels as in the benchmark's breakdown).
        """
        with torch.autocast(videos[0].device.type, enabled=False):
            return self._scores(videos, chunk, timer)

    def _scores(self, videos: Sequence[Tensor], chunk: PackedChunk, timer: Timer) -> Tensor:
        """``S3R.embed`` and ``snippet_scores`` in packed form, freeing each buffer as soon as it is done."""
        with timer("packing"):
            source = chunk.pack(videos, self.dtype)
            x = body(source, chunk.body_rows)
        with timer("en-Normal"):
            attention = self.en_normal.attention(x, chunk)
            macro_mean = self.en_normal.reconstruction_mean(attention, chunk)  # the macro residual's time mean
            macro_input = self._macro_input(attention, chunk)
            del attention
        fused = self.macro_block(macro_input, chunk, timer, "macro Aggregate")
        with timer("de-Normal gate"):
            macro_mean += packed_time_mean(fused, chunk)
            del macro_input, fused
        x_video = self.video_block(source, chunk, timer, "video Aggregate")
        with timer("de-Normal gate"):
            x_video += x  # the residual
            del source, x
            gated = self.de_normal(x_video, macro_mean, chunk)
            del x_video
        with timer("classifier"):
            return self.classifier(gated, chunk)

    def _macro_input(self, attention: Tensor, chunk: PackedChunk) -> Tensor:
        """The macro Aggregate's input, a padded buffer (tails zero): the attention, coefficients of the values,
        when folding; else the reconstruction itself."""
        rows = chunk.body_rows
        if self.fold:
            coefficients = padded(rows, attention.shape[1], self.en_normal.query)
            body(coefficients, rows).copy_(attention)
            return coefficients
        reconstruction = padded(rows, self.en_normal.values.shape[1], self.en_normal.query)
        self.en_normal.reconstruction_(attention, body(reconstruction, rows))
        return reconstruction
