"""Eval-mode S3R snippet scores for many videos of different lengths at once: the fast path of evaluation.

``PackedScorer(model, dictionary)(videos)`` gives every video the scores of ``model.snippet_scores`` on that video
alone. It is the same function in exact arithmetic; in float32 the two differ by rounding only (about 1e-7 of a
score), because some products are taken in another order. It needs the model in eval mode (dropout off,
BatchNorm on its running statistics).

Layout. A chunk of B videos with N crops gives R = B·N sequences. They lie back to back in one 2-D tensor
of shape (GAP + R·P + GAP, C): GAP zero rows, then for every sequence P = T_max + GAP rows (its own snippets,
then zero rows), then GAP zero rows. Every sequence is thus surrounded by at least GAP zero rows, GAP being the
largest dilation, so a kernel-3 temporal convolution with dilation d over the whole buffer computes every
sequence's own convolution at once: each sequence sees the zeros of its own padding at its borders. Three kernels
do it (``KERNELS``), with the same result to float rounding:
- "matmul": a sum of three matrix products of the buffer shifted by -d, 0 and +d rows (contiguous slices, no
  transpose, no im2col copy; the BLAS, MKL on x86);
- "conv": one real convolution, the buffer being, as it lies in memory, a channels-last 1 × C × 1 × L image
  (oneDNN on a CPU, cuDNN on CUDA);
- "winograd": Winograd's minimal filtering F(2, 3) along time (float32 only): every pair of output rows t, t + d
  from four matrix products of half the rows, two thirds of the multiplications (see ``_winograd_rows``).
Which is fastest depends on the machine (sgemm against oneDNN's convolutions, see ``anomaly.models.kernel_choice``):
each stage (the first convolutions, ``conv_5``) takes the one measured fastest once per process, unless
``kernel`` is given.

Rows past a sequence's end ("tail rows") hold garbage after a layer;
they are zeroed before anything reads them, and every statistic (GroupNorm, time means, the non-local
division by T) counts real snippets only.

Work saved over running the modules (all of it exact in exact arithmetic):
1. Every sequence's convolutions in one kernel call per layer, in channels-last layout; with "matmul" the middle
   taps of the three dilated branches and ``conv_4`` share one product.
2. en-Normal: ``query_embedding`` and ``cache_embedding`` fold into one C×S matrix, logits = x·(Wqᵀ·Kᵀ) + bq·Kᵀ.
3. The macro (en-Normal) branch's input is A·V (softmax attention over the S atoms times the atoms' values). The
   first convolutions of its Aggregate act on A, with weights folded with V: S input channels instead of C
   (158 instead of 2048). Its residual enters the output only through its time mean, mean(A)·V, and nothing
   but that mean of the macro embedding is needed for the snippet scores.
4. Eval-mode BatchNorm folded into the non-local block's output convolution.
Folded weights are computed once per scorer in float64. With ``dtype=torch.bfloat16`` the matrix products run
in bfloat16 while GroupNorm statistics, time means, the softmax, the channel gate and the final sigmoid run in
float32. On CUDA the products that replace the Aggregate blocks' convolutions follow cuDNN's TF32 setting
(``torch.backends.cudnn.allow_tf32``, which ``--precision`` sets: off for fp32, on for tf32 and bf16) and the
others the matmul setting, as the modules would.
"""

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomaly.measuring import Timer, no_timer
from anomaly.models.kernel_choice import MEASURE_ROWS, KernelChoice, measurement_input
from anomaly.models.aggregate import Aggregate

KERNELS = ("matmul", "conv", "winograd")  # how the temporal convolutions run (see the module docstring)
GAP = 4  # the largest dilation of Aggregate's convolutions: zero rows kept around every sequence

@contextlib.contextmanager
def _matmuls_like_convolutions(device: torch.device):
    """On CUDA, let the matrix products that replace convolutions use TF32 exactly when cuDNN's convolutions
    would (``torch.backends.cudnn.allow_tf32``, see ``anomaly.precision``); elsewhere nothing."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@dataclass
class PackedChunk:
    """Where the snippets of a chunk of videos lie in the packed layout (see the module docstring)."""

    lengths: Tuple[int, ...]  # per video
    num_crops: int
    pitch: int  # P: rows per sequence
    counts: Tensor  # R float32: real snippets per sequence
    tail_rows: Tensor  # long: indices (into the R·P body rows) of the rows past each sequence's end

    @property
    def sequences(self) -> int:
        return len(self.lengths) * self.num_crops

    @property
    def body_rows(self) -> int:
        return self.sequences * self.pitch

    @property
    def padded_snippets(self) -> int:
        """Snippet positions computed per crop, real or not (the cost of the chunk)."""
        return len(self.lengths) * self.pitch

    def zero_tails_(self, y: Tensor) -> Tensor:
        """Zero the tail rows of ``y`` (body rows × channels, possibly a column slice) in place: one kernel."""
        return y.index_fill_(0, self.tail_rows, 0)

    @staticmethod
    def plan(lengths: Sequence[int], num_crops: int, device: torch.device) -> "PackedChunk":
        lengths = tuple(int(length) for length in lengths)
        pitch = max(lengths) + GAP
        sequence_lengths = torch.tensor(lengths).repeat_interleave(num_crops)
        tail = torch.arange(pitch).unsqueeze(0) >= sequence_lengths.unsqueeze(1)
        return PackedChunk(
            lengths=lengths,
            num_crops=num_crops,
            pitch=pitch,
            counts=sequence_lengths.to(device=device, dtype=torch.float32),
            tail_rows=tail.flatten().nonzero().squeeze(1).to(device),
        )


def _padded(rows: int, channels: int, like: Tensor) -> Tensor:
    """An uninitialised (GAP + rows + GAP) × channels buffer (``like``'s dtype and device), border rows zero."""
    buffer = like.new_empty((rows + 2 * GAP, channels))
    buffer[:GAP].zero_()
    buffer[GAP + rows :].zero_()
    return buffer


def _shifted(buffer: Tensor, offset: int, rows: int) -> Tensor:
    """The body rows of ``buffer`` moved by ``offset`` (row j of the result is body row j + offset)."""
    return buffer[GAP + offset : GAP + offset + rows]


def _conv_kernel(taps: Sequence[Tensor]) -> Tensor:
    """Kernel-3 taps (in × out matrices) as a convolution weight: out × in × 1 × 3, channels-last."""
    return torch.stack([tap.t() for tap in taps], dim=-1).unsqueeze(2).contiguous(memory_format=torch.channels_last)


def _conv_rows(buffer: Tensor, rows: int, weight: Tensor, dilation: int, bias: Optional[Tensor] = None) -> Tensor:
    """A kernel-3 temporal convolution of a padded buffer's body rows as one real convolution -> rows × out.

    The buffer (GAP + rows + GAP) × in is, as it lies in memory, a channels-last image of 1 × in × 1 × L: the
    rows from GAP - d to GAP + rows + d, convolved without padding, give exactly the rows of the body.
    """
    window = buffer[GAP - dilation : GAP + rows + dilation]
    image = window.view(1, 1, window.shape[0], window.shape[1]).permute(0, 3, 1, 2)
    out = F.conv2d(image, weight, bias, dilation=(1, dilation))  # 1 × out × 1 × rows
    return out.permute(0, 2, 3, 1).reshape(rows, weight.shape[0])


def _winograd_weights(taps: Sequence[Tensor], dtype: torch.dtype) -> List[Tensor]:
    """Kernel-3 taps g0, g1, g2 (in × out) -> the four F(2, 3) weights g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2,
    g2, formed in float64 so that each is rounded to ``dtype`` once."""
    first, middle, last = (tap.double() for tap in taps)
    transformed = (first, (first + middle + last) / 2, (first - middle + last) / 2, last)
    return [weight.to(dtype).contiguous() for weight in transformed]


def _winograd_tiles(windows: Tensor, weights: Sequence[Tensor], out: Tensor, bias: Optional[Tensor]) -> None:
    """F(2, 3) on K tiles of d phases: windows K × 4 × d × in holds the input rows t - d, t, t + d, t + 2d of
    every output pair; out K × 2 × d × out_channels receives rows t and t + d.

    With inputs x0..x3 and transformed weights w0..w3 (``_winograd_weights``), m1 = (x1 + x2)·w1 and
    m2 = (x2 - x1)·w2 serve both outputs: y(t) = (x0 - x2)·w0 + m1 + m2 and y(t + d) = m1 - m2 - (x1 - x3)·w3,
    exactly x0·g0 + x1·g1 + x2·g2 and x1·g0 + x2·g1 + x3·g2. Formed in place in the products' own buffers.
    """
    x0, x1, x2, x3 = (window.reshape(-1, window.shape[-1]) for window in windows.unbind(1))
    both = (x1 + x2) @ weights[1] if bias is None else torch.addmm(bias, x1 + x2, weights[1])
    difference = (x2 - x1) @ weights[2]
    first = torch.add(both, difference).addmm_(x0 - x2, weights[0])
    second = both.sub_(difference).addmm_(x1 - x3, weights[3], alpha=-1)
    out[:, 0] = first.view(out[:, 0].shape)
    out[:, 1] = second.view(out[:, 1].shape)


def _winograd_rows(
    buffer: Tensor, rows: int, weights: Sequence[Tensor], dilation: int, out: Tensor, bias: Optional[Tensor] = None
) -> None:  # fmt: skip
    """A kernel-3 temporal convolution of a padded buffer's body rows by Winograd's F(2, 3) -> ``out`` (rows × out
    channels, possibly a column slice).

    Output rows go in tiles of 2·d: rows t and t + d (t = 2dk + phase) need input rows t - d ... t + 2d, which
    ``unfold`` reads from the buffer in place. Four products of half the rows replace three of all the rows (two
    thirds of the multiplications); the extra additions touch each input and output element a few times, little
    beside the products' C·(out channels) multiply-adds per row. Rows past the last whole tile go through one
    tile of a zero-extended copy: its zeros reach only outputs past ``rows``.
    """
    tile = 2 * dilation
    whole = rows // tile * tile
    if whole:
        windows = buffer[GAP - dilation : GAP + whole + dilation].unfold(0, 2 * tile, tile)  # K × in × 4d
        tiles_out = out[:whole].unflatten(0, (-1, 2, dilation))
        _winograd_tiles(windows.transpose(1, 2).unflatten(1, (4, dilation)), weights, tiles_out, bias)
    if whole < rows:
        source = buffer[GAP + whole - dilation : GAP + rows + dilation]  # inside the buffer: dilation ≤ GAP
        last = buffer.new_zeros(2 * tile, buffer.shape[1])
        last[: source.shape[0]] = source
        last_out = out.new_empty(1, 2, dilation, out.shape[1])
        _winograd_tiles(last.view(1, 4, dilation, -1), weights, last_out, bias)
        out[whole:] = last_out.view(tile, -1)[: rows - whole]


def _masked_group_norm_relu_(y: Tensor, chunk: PackedChunk, groups: int, weight: Tensor, bias: Tensor, eps: float) -> None:
    """In place on ``y`` (body rows × C, possibly a column slice): GroupNorm over real rows, affine, ReLU, tails 0.

    Statistics accumulate in float32 whatever ``y``'s dtype, with the two-pass (centred) variance.
    """
    sequences, pitch = chunk.sequences, chunk.pitch
    channels = y.shape[1]
    group_size = channels // groups
    chunk.zero_tails_(y)
    grouped = y.view(sequences, pitch, groups, group_size)
    count = chunk.counts.view(sequences, 1) * group_size
    mean = grouped.sum(dim=(1, 3), dtype=torch.float32) / count  # R G
    grouped.sub_(mean.view(sequences, 1, groups, 1))
    chunk.zero_tails_(y)
    variance = torch.linalg.vector_norm(grouped, dim=(1, 3), dtype=torch.float32).square_() / count
    scale = torch.rsqrt(variance + eps).unsqueeze(-1) * weight.view(groups, group_size)  # R G g
    torch.addcmul(bias.view(1, 1, groups, group_size), grouped, scale.unsqueeze(1), out=grouped)
    y.relu_()
    chunk.zero_tails_(y)


def _time_mean(y: Tensor, chunk: PackedChunk) -> Tensor:
    """Float32 mean over real rows of each sequence of ``y`` (body rows × C, tails already zero) -> R × C."""
    return y.view(chunk.sequences, chunk.pitch, -1).sum(dim=1, dtype=torch.float32) / chunk.counts.unsqueeze(1)


class _AggregateWeights:
    """One Aggregate's weights in matrix form (input channels × output channels), optionally folded with a basis.

    With ``basis`` (K × C), the block's input is given as coefficients a (rows × K) of x = a·basis, and the first
    convolutions take a directly: W ← basisᵀ-folded weights (K × out).
    """

    def __init__(
        self, block: Aggregate, dtype: torch.dtype, choice: KernelChoice, basis: Optional[Tensor] = None,
        kernel: Optional[str] = None,
    ):  # fmt: skip
        def cast(tensor: Tensor) -> Tensor:
            return tensor.to(dtype).contiguous()

        def taps(conv: nn.Conv1d, basis: Optional[Tensor] = None) -> List[Tensor]:
            """Each tap of a convolution as an (in or basis rows) × out float64 matrix.

            Unfolded taps are transposed views of out × in tensors, and stay so when cast (``Tensor.to`` keeps the
            strides): a matrix product takes them without a copy.
            """
            per_tap = conv.weight.detach().double().permute(2, 0, 1)  # k × out × in
            if basis is None:
                return [tap.t() for tap in per_tap]
            return [basis.double() @ tap.t() for tap in per_tap]

        branches = (block.conv_1, block.conv_2, block.conv_3)
        inner = block.conv_1[0].out_channels
        self.inner = inner
        self.dilations = [branch[0].dilation[0] for branch in branches]
        if max(self.dilations) > GAP or block.conv_5[0].padding[0] != 1:
            raise ValueError("the packed layout assumes dilations up to 4 and conv_5 of padding 1")
        branch_taps = [taps(branch[0], basis) for branch in branches]
        local = taps(block.conv_4[0], basis)[0]  # conv_4: in × inner
        branch_biases = [cast(branch[0].bias) for branch in branches]
        norms = [branch[1] for branch in branches]
        self.branch_groups = sum(norm.num_groups for norm in norms)
        self.branch_eps = norms[0].eps
        self.branch_norm_weight = torch.cat([norm.weight.float() for norm in norms])
        self.branch_norm_bias = torch.cat([norm.bias.float() for norm in norms])

        non_local = block.non_local
        self.half = non_local.inter_channels
        vqk = (non_local.value, non_local.query, non_local.key)
        self.vqk = cast(torch.cat([conv.weight[:, :, 0] for conv in vqk])).t()
        self.vqk_bias = cast(torch.cat([conv.bias for conv in vqk]))
        alter_conv, alter_norm = non_local.alter
        norm_scale = alter_norm.weight.double() / torch.sqrt(alter_norm.running_var.double() + alter_norm.eps)
        self.alter = cast(alter_conv.weight[:, :, 0].double().t() * norm_scale)
        self.alter_bias = cast(
            alter_conv.bias.double() * norm_scale + alter_norm.bias.double() - alter_norm.running_mean.double() * norm_scale
        )

        conv_5, norm_5 = block.conv_5[0], block.conv_5[1]
        fuse_taps = taps(conv_5)
        self.fuse_groups, self.fuse_eps = norm_5.num_groups, norm_5.eps
        self.fuse_norm_weight, self.fuse_norm_bias = norm_5.weight.float(), norm_5.bias.float()

        # Every kernel's form of the weights of the two stages, formed when first asked for (``functools.cache``):
        # a scorer is built for every evaluation, and once the kernels are chosen only their forms are needed.
        middle = [tap[1] for tap in branch_taps] + [local]  # the taps that read the unshifted rows
        zero_bias = branch_biases[0].new_zeros(inner)
        branch_forms = {
            # "matmul": one product for the middle taps and conv_4 side by side, then the side taps (before, after)
            "matmul": lambda: (torch.cat([tap.t() for tap in middle]).t().to(dtype),
                               torch.cat(branch_biases + [zero_bias]),
                               [(tap[0].to(dtype), tap[2].to(dtype)) for tap in branch_taps]),
            "conv": lambda: ([_conv_kernel([tap.to(dtype) for tap in tap_set]) for tap_set in branch_taps],
                             branch_biases, local.to(dtype)),
            "winograd": lambda: ([_winograd_weights(tap_set, dtype) for tap_set in branch_taps], branch_biases,
                                 local.to(dtype)),
        }  # fmt: skip
        fuse_forms = {
            "matmul": lambda: [tap.to(dtype) for tap in fuse_taps],
            "conv": lambda: _conv_kernel([tap.to(dtype) for tap in fuse_taps]),
            "winograd": lambda: _winograd_weights(fuse_taps, dtype),
        }
        forms = {
            "branches": {name: functools.cache(form) for name, form in branch_forms.items()},
            "conv_5": {name: functools.cache(form) for name, form in fuse_forms.items()},
        }
        in_channels = basis.shape[0] if basis is not None else block.dim
        self.kernels = self._choose_kernels(kernel, choice, dtype, in_channels, block.dim, forms, conv_5.weight.device)
        self.branch_weights = forms["branches"][self.kernels["branches"]]()
        self.fuse_weights = forms["conv_5"][self.kernels["conv_5"]]()

    def _choose_kernels(
        self, kernel: Optional[str], choice: KernelChoice, dtype: torch.dtype, in_channels: int, channels: int,
        forms: Dict[str, Dict[str, Callable[[], object]]], device: torch.device,
    ) -> Dict[str, str]:  # fmt: skip
        """The kernel of each stage: ``kernel`` when given, else the fastest here, measured once per process on a
        buffer of ``kernel_choice.MEASURE_ROWS`` random rows (``anomaly.models.kernel_choice``; ``forms[stage][name]()``
        gives a candidate's weights). Winograd's F(2, 3) adds a rounding to every input (its sums and differences):
        at float32's 2^-24 that is float rounding, at bfloat16's 2^-8 it would not be, so it runs in float32 only."""
        if kernel is not None and kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        if kernel == "winograd" and dtype != torch.float32:
            raise ValueError(f"the winograd kernel runs in float32 only, not {dtype}")
        if kernel is not None:
            return {"branches": kernel, "conv_5": kernel}
        names = KERNELS if dtype == torch.float32 else tuple(name for name in KERNELS if name != "winograd")
        chosen = {}
        for stage, width, run in (("branches", in_channels, self._branches), ("conv_5", channels, self._fuse)):
            sample = measurement_input((MEASURE_ROWS + 2 * GAP, width), dtype, device)
            key = f"packed {stage} {dtype} in={in_channels} channels={channels} dilations={self.dilations}"
            # Timed within this iteration (fastest runs them at once), so the loop's variables are the right ones.
            candidates = {
                name: lambda name=name: run(sample, MEASURE_ROWS, name, forms[stage][name]())
                for name in names
            }
            out_channels = 4 * self.inner if stage == "branches" else channels
            flops = 2.0 * MEASURE_ROWS * width * out_channels * 3
            chosen[stage] = choice.fastest(key, candidates, device, "matmul", flops)
        return chosen

    def __call__(self, source: Tensor, chunk: PackedChunk, timer: Timer = no_timer, name: str = "") -> Tensor:
        """source: padded buffer (tails zero) -> conv_5 branch after GroupNorm and ReLU (body rows × C, tails zero).

        The Aggregate's output is this plus its input (the residual), left to the caller.
        """
        with _matmuls_like_convolutions(source.device):
            return self._forward(source, chunk, timer, name)

    def _forward(self, source: Tensor, chunk: PackedChunk, timer: Timer, name: str) -> Tensor:
        rows, inner = chunk.body_rows, self.inner
        with timer(f"{name}: conv_1-3 + conv_4"):
            branches = self._branches(source, rows, self.kernels["branches"], self.branch_weights)
            body = branches[GAP : GAP + rows]
            _masked_group_norm_relu_(
                body[:, : 3 * inner], chunk, self.branch_groups, self.branch_norm_weight, self.branch_norm_bias, self.branch_eps
            )
            local = body[:, 3 * inner :]
            local.relu_()
            chunk.zero_tails_(local)
        with timer(f"{name}: non-local"):
            local.add_(self._non_local(local, chunk))
            chunk.zero_tails_(body)
        with timer(f"{name}: conv_5"):
            fused = self._fuse(branches, rows, self.kernels["conv_5"], self.fuse_weights)
            del branches, body, local
            _masked_group_norm_relu_(fused, chunk, self.fuse_groups, self.fuse_norm_weight, self.fuse_norm_bias, self.fuse_eps)
        return fused

    def _branches(self, source: Tensor, rows: int, kernel: str, weights: tuple) -> Tensor:
        """conv_1, conv_2, conv_3 (with bias) and conv_4 of ``source`` (padded, tails zero) side by side, before
        their norms: a padded buffer (GAP + rows + GAP) × 4·inner whose border rows are zero. ``weights``: the
        ``kernel``'s form of them (see ``__init__``)."""
        inner = self.inner
        branches = _padded(rows, 4 * inner, source)
        body = branches[GAP : GAP + rows]
        if kernel == "matmul":
            middle, middle_bias, sides = weights
            torch.addmm(middle_bias, _shifted(source, 0, rows), middle, out=body)
            for index, (dilation, (before, after)) in enumerate(zip(self.dilations, sides)):
                columns = body[:, index * inner : (index + 1) * inner]
                columns.addmm_(_shifted(source, -dilation, rows), before)
                columns.addmm_(_shifted(source, dilation, rows), after)
            return branches
        per_branch, biases, local = weights
        for index, (dilation, weight, bias) in enumerate(zip(self.dilations, per_branch, biases)):
            columns = body[:, index * inner : (index + 1) * inner]
            if kernel == "conv":
                columns.copy_(_conv_rows(source, rows, weight, dilation, bias))
            else:
                _winograd_rows(source, rows, weight, dilation, columns, bias)
        torch.mm(_shifted(source, 0, rows), local, out=body[:, 3 * inner :])
        return branches

    def _fuse(self, branches: Tensor, rows: int, kernel: str, weights) -> Tensor:
        """conv_5 of the padded branch buffer -> body rows × C (no bias; tails hold garbage)."""
        if kernel == "conv":
            return _conv_rows(branches, rows, weights, 1)
        if kernel == "winograd":
            fused = branches.new_empty(rows, weights[0].shape[1])
            _winograd_rows(branches, rows, weights, 1, fused)
            return fused
        fused = _shifted(branches, -1, rows) @ weights[0]
        fused.addmm_(_shifted(branches, 0, rows), weights[1])
        fused.addmm_(_shifted(branches, 1, rows), weights[2])
        return fused

    def _non_local(self, x: Tensor, chunk: PackedChunk) -> Tensor:
        """alter(attention · value) for x (body rows × inner, tails zero); attention = query·keyᵀ / T, real keys,
        computed as query · (keyᵀ·value / T): memory linear in T (see ``NonLocalBlock1D``)."""
        sequences, pitch, half = chunk.sequences, chunk.pitch, self.half
        vqk = torch.addmm(self.vqk_bias, x, self.vqk)  # rows × 3·half
        chunk.zero_tails_(vqk[:, 2 * half :])
        vqk = vqk.view(sequences, pitch, 3 * half)
        value, query, key = vqk[..., :half], vqk[..., half : 2 * half], vqk[..., 2 * half :]
        summary = torch.bmm(key.transpose(1, 2), value)  # sequences × half × half
        summary /= chunk.counts.view(sequences, 1, 1).to(summary.dtype)
        out = torch.bmm(query, summary).view(chunk.body_rows, half)
        return torch.addmm(self.alter_bias, out, self.alter)


class PackedScorer:
    """The eval-mode snippet scores of an S3R model with one dictionary, for chunks of videos (see module doc).

    model: an ``S3R`` in eval mode; dictionary: S × C (or 1 × S × C); dtype: float32 or bfloat16 for the products;
    kernel: how the temporal convolutions run, "matmul" or "conv" (None: the faster here, measured once per process).
    Build a new scorer whenever the model's weights change (it holds folded copies of them).
    """

    def __init__(self, model: nn.Module, dictionary: Tensor, dtype: torch.dtype = torch.float32, kernel: Optional[str] = None):
        if model.training:
            raise ValueError("PackedScorer needs the model in eval mode")
        if dictionary.dim() == 3:
            dictionary = dictionary[0]
        self.dtype = dtype
        with torch.no_grad(), torch.autocast(dictionary.device.type, enabled=False):
            attention = model.en_normal.en_normal_module
            atoms = dictionary.double()
            keys = atoms @ attention.cache_embedding.weight.double().t() + attention.cache_embedding.bias.double()
            values = atoms @ attention.value_embedding.weight.double().t() + attention.value_embedding.bias.double()
            self.query = (attention.query_embedding.weight.double().t() @ keys.t()).to(dtype).contiguous()  # C × S
            self.query_bias = (attention.query_embedding.bias.double() @ keys.t()).to(dtype)
            self.values = values.float()  # S × C, for mean(A)·V
            # Folding pays when there are fewer atoms than channels; otherwise the macro branch gets A·V itself.
            self.fold = dictionary.shape[0] < dictionary.shape[1]
            self.values_matrix = None if self.fold else values.to(dtype)
            self.video_block = _AggregateWeights(model.video_embedding[0], dtype, model.kernel_choice, kernel=kernel)
            self.macro_block = _AggregateWeights(
                model.macro_embedding[0], dtype, model.kernel_choice, basis=values if self.fold else None, kernel=kernel
            )
            gate = model.de_normal.channel_attention.channel_gate.mlp
            self.gate = [(layer.weight.float().t().contiguous(), layer.bias.float()) for layer in (gate[1], gate[3])]
            classifier = [model.video_classifier[index] for index in (0, 3, 6)]
            self.classifier = [(cast.weight.t().to(dtype).contiguous(), cast.bias.to(dtype)) for cast in classifier]

    @torch.no_grad()
    def __call__(self, videos: Sequence[Tensor], chunk: PackedChunk, timer: Timer = no_timer) -> Tensor:
        """videos: N × T_i × C each (``chunk.lengths`` gives the T_i) -> scores B × T_max (float32, garbage past T_i).

        ``timer(section)``, when given, times the parts (labels as in the benchmark's breakdown).
        """
        with torch.autocast(videos[0].device.type, enabled=False):
            return self._scores(videos, chunk, timer)

    def _scores(self, videos: Sequence[Tensor], chunk: PackedChunk, timer: Timer) -> Tensor:
        num_videos, num_crops, pitch, rows = len(videos), chunk.num_crops, chunk.pitch, chunk.body_rows
        channels = videos[0].shape[-1]
        with timer("packing"):
            source = _padded(rows, channels, self.query)
            layout = source[GAP : GAP + rows].view(num_videos, num_crops, pitch, channels)
            for row, (video, length) in enumerate(zip(videos, chunk.lengths)):
                layout[row, :, :length] = video
            x = source[GAP : GAP + rows]
            chunk.zero_tails_(x)

        with timer("en-Normal"):  # attention of every snippet over the atoms (float32 softmax): coefficients of V
            logits = torch.addmm(self.query_bias, x, self.query)
            attention = torch.softmax(logits.float(), dim=1)
            del logits
            chunk.zero_tails_(attention)
            macro_mean = _time_mean(attention, chunk) @ self.values  # the residual's time mean
            if self.fold:
                coefficients = _padded(rows, attention.shape[1], self.query)
                coefficients[GAP : GAP + rows] = attention
            else:  # the reconstruction itself (tails stay zero)
                coefficients = _padded(rows, channels, self.query)
                torch.mm(attention.to(self.dtype), self.values_matrix, out=coefficients[GAP : GAP + rows])
            del attention
        fused = self.macro_block(coefficients, chunk, timer, "macro Aggregate")
        with timer("de-Normal gate"):
            macro_mean += _time_mean(fused, chunk)
            del coefficients, fused

        x_video = self.video_block(source, chunk, timer, "video Aggregate")
        with timer("de-Normal gate"):
            x_video += x
            del source, x
            difference = _time_mean(x_video, chunk) - macro_mean
            (first, first_bias), (second, second_bias) = self.gate
            gate = torch.sigmoid(torch.addmm(second_bias, torch.relu(torch.addmm(first_bias, difference, first)), second))
            gated = x_video.view(chunk.sequences, pitch, channels).mul_(gate.to(self.dtype).unsqueeze(1)).view(rows, channels)
            del x_video

        with timer("classifier"):
            (first, first_bias), (second, second_bias), (last, last_bias) = self.classifier
            hidden = torch.addmm(first_bias, gated, first).relu_()
            del gated
            hidden = torch.addmm(second_bias, hidden, second).relu_()
            logits = torch.addmm(last_bias, hidden, last)
            scores = torch.sigmoid(logits.float()).view(num_videos, num_crops, pitch)
            return scores.mean(dim=1)
