"""The packed layout of many videos, and the kernel-3 temporal convolutions that run on it.

Evaluation scores many videos of different lengths at once: each module has, beside its ``forward``, a packed form
(``PackedAggregate`` and ``PackedNonLocal`` in ``aggregate.py``; en-Normal, de-Normal and the classifier in
``s3r.py``; ``PackedScorer`` there puts them together). This module holds what they share.

Layout. A chunk of B videos with N crops gives R = B·N sequences. They lie back to back in one 2-D tensor of
shape (GAP + R·P + GAP, C): GAP zero rows, then for every sequence P = T_max + GAP rows (its own snippets, then
zero rows), then GAP zero rows. Every sequence is thus surrounded by at least GAP zero rows, GAP being the largest
dilation of Aggregate's convolutions, so a kernel-3 temporal convolution with dilation d over the whole buffer
computes every sequence's own convolution at once: each sequence sees the zeros of its own padding at its borders.
A chunk of one sequence (a live window of one crop) has P = T: the buffer's border rows are all the zeros it needs.
Rows past a sequence's end ("tail rows") hold garbage after a layer; they are zeroed before anything reads them,
and every statistic (GroupNorm, time means, the non-local division by T) counts real snippets only.

Three kernels compute such a convolution (``KERNELS``), with the same result to float rounding:
- "matmul": a sum of three matrix products of the buffer shifted by -d, 0 and +d rows (contiguous slices, no
  transpose, no im2col copy; the BLAS, MKL on x86), :func:`matmul_rows`;
- "conv": one real convolution, the buffer being, as it lies in memory, a channels-last 1 × C × 1 × L image
  (oneDNN on a CPU, cuDNN on CUDA), :func:`conv_rows`;
- "winograd": Winograd's minimal filtering F(2, 3) along time (float32 only): every pair of output rows t, t + d
  from four matrix products of half the rows, two thirds of the multiplications, :func:`winograd_rows`.
Which is fastest depends on the machine (sgemm against oneDNN's convolutions, see ``anomaly.models.kernel_choice``).
Each takes the taps as in × out matrices, in its own form (:func:`conv_weight`, :func:`winograd_weights`).
"""

import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("matmul", "conv", "winograd")  # how the packed temporal convolutions run (see the module docstring)
GAP = 4  # the largest dilation of Aggregate's convolutions: zero rows kept around every sequence


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

    def pack(self, videos: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
        """videos N × T_i × C each (``lengths`` gives the T_i) -> their padded buffer (GAP + R·P + GAP) × C in
        ``dtype``, zero outside the snippets."""
        rows, channels = self.body_rows, videos[0].shape[-1]
        buffer = padded(rows, channels, videos[0].new_empty(0, dtype=dtype))
        layout = body(buffer, rows).view(len(self.lengths), self.num_crops, self.pitch, channels)
        for row, (video, length) in enumerate(zip(videos, self.lengths)):
            layout[row, :, :length] = video
        self.zero_tails_(body(buffer, rows))
        return buffer

    @staticmethod
    def plan(lengths: Sequence[int], num_crops: int, device: torch.device) -> "PackedChunk":
        lengths = tuple(int(length) for length in lengths)
        # GAP zero rows between sequences; the buffer's borders give the first and the last theirs.
        pitch = max(lengths) + (GAP if len(lengths) * num_crops > 1 else 0)
        sequence_lengths = torch.tensor(lengths).repeat_interleave(num_crops)
        tail = torch.arange(pitch).unsqueeze(0) >= sequence_lengths.unsqueeze(1)
        return PackedChunk(
            lengths=lengths,
            num_crops=num_crops,
            pitch=pitch,
            counts=sequence_lengths.to(device=device, dtype=torch.float32),
            tail_rows=tail.flatten().nonzero().squeeze(1).to(device),
        )


def padded(rows: int, channels: int, like: Tensor) -> Tensor:
    """An uninitialised (GAP + rows + GAP) × channels buffer (``like``'s dtype and device), border rows zero."""
    buffer = like.new_empty((rows + 2 * GAP, channels))
    buffer[:GAP].zero_()
    buffer[GAP + rows :].zero_()
    return buffer


def body(buffer: Tensor, rows: int) -> Tensor:
    """The ``rows`` body rows of a padded buffer (a view)."""
    return buffer[GAP : GAP + rows]


def shifted(buffer: Tensor, offset: int, rows: int) -> Tensor:
    """The body rows of ``buffer`` moved by ``offset`` (row j of the result is body row j + offset)."""
    return buffer[GAP + offset : GAP + offset + rows]


@contextlib.contextmanager
def matmuls_like_convolutions(device: torch.device) -> Iterator[None]:
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


def matmul_rows(buffer: Tensor, rows: int, taps: Sequence[Tensor], dilation: int) -> Tensor:
    """A kernel-3 temporal convolution (no bias) of a padded buffer's body rows as three shifted matrix products
    of the taps g0, g1, g2 (in × out) -> rows × out."""
    out = shifted(buffer, -dilation, rows) @ taps[0]
    out.addmm_(shifted(buffer, 0, rows), taps[1])
    out.addmm_(shifted(buffer, dilation, rows), taps[2])
    return out


def conv_weight(taps: Sequence[Tensor]) -> Tensor:
    """Kernel-3 taps (in × out matrices) as :func:`conv_rows`' weight: out × in × 1 × 3, channels-last."""
    return torch.stack([tap.t() for tap in taps], dim=-1).unsqueeze(2).contiguous(memory_format=torch.channels_last)


def conv_rows(buffer: Tensor, rows: int, weight: Tensor, dilation: int, bias: Optional[Tensor] = None) -> Tensor:
    """A kernel-3 temporal convolution of a padded buffer's body rows as one real convolution -> rows × out.

    The buffer (GAP + rows + GAP) × in is, as it lies in memory, a channels-last image of 1 × in × 1 × L: the
    rows from GAP - d to GAP + rows + d, convolved without padding, give exactly the rows of the body.
    """
    window = buffer[GAP - dilation : GAP + rows + dilation]
    image = window.view(1, 1, window.shape[0], window.shape[1]).permute(0, 3, 1, 2)
    out = F.conv2d(image, weight, bias, dilation=(1, dilation))  # 1 × out × 1 × rows
    return out.permute(0, 2, 3, 1).reshape(rows, weight.shape[0])


def winograd_weights(taps: Sequence[Tensor], dtype: torch.dtype) -> List[Tensor]:
    """Kernel-3 taps g0, g1, g2 (in × out) -> the four F(2, 3) weights g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2,
    g2, formed in float64 so that each is rounded to ``dtype`` once."""
    first, middle, last = (tap.double() for tap in taps)
    transformed = (first, (first + middle + last) / 2, (first - middle + last) / 2, last)
    return [weight.to(dtype).contiguous() for weight in transformed]


def _winograd_tiles(windows: Tensor, weights: Sequence[Tensor], out: Tensor, bias: Optional[Tensor]) -> None:
    """F(2, 3) on K tiles of d phases: windows K × 4 × d × in holds the input rows t - d, t, t + d, t + 2d of
    every output pair; out K × 2 × d × out_channels receives rows t and t + d.

    With inputs x0..x3 and transformed weights w0..w3 (``winograd_weights``), m1 = (x1 + x2)·w1 and
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


def winograd_rows(
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
