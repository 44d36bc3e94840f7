"""RTFM's multi-scale temporal block (``Aggregate``) and its 1-D non-local block."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomaly.errors import check_choice
from anomaly.models.kernel_choice import MEASURE_ROWS, KernelChoice, measurement_input


def conv1d_as_matmul(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: int, dilation: int) -> Tensor:
    """``F.conv1d`` (stride 1, no groups) as one matrix product: x B C T, weight out × C × k -> B out T'.

    The k shifted copies of x lie side by side in channels-last rows (B·T') × (k·C), times the weight as a
    (k·C) × out matrix: the BLAS's sgemm instead of a convolution library. The result is a transposed view.
    """
    batch, channels, _ = x.shape
    out_channels, _, taps = weight.shape
    rows = F.pad(x.transpose(1, 2), (0, 0, padding, padding))  # B T+2p C
    length = rows.shape[1] - dilation * (taps - 1)
    columns = torch.cat([rows[:, tap * dilation : tap * dilation + length] for tap in range(taps)], dim=2)
    matrix = weight.permute(0, 2, 1).reshape(out_channels, taps * channels)  # out × (k·C), tap-major like columns
    return F.linear(columns, matrix, bias).transpose(1, 2)


CONV_KERNELS = ("conv", "matmul", "auto")  # F.conv1d as published, conv1d_as_matmul, the faster here (measured)


def temporal_conv(
    conv: nn.Conv1d, x: Tensor, kernel: str = "conv", weight: Optional[Tensor] = None,
    choice: Optional[KernelChoice] = None,
) -> Tensor:  # fmt: skip
    """``conv`` (stride 1) on x (B C T) with ``kernel`` (``CONV_KERNELS``), optionally with another ``weight``.

    "auto" runs the faster of "conv" and "matmul", which ``choice`` measures, forward and (when gradients are on)
    backward, once per shape on inputs of ``kernel_choice.MEASURE_ROWS`` snippets.
    """
    check_choice(kernel, CONV_KERNELS, "kernel")
    weight = conv.weight if weight is None else weight
    padding, dilation = conv.padding[0], conv.dilation[0]
    if kernel == "auto":
        if choice is None:
            raise ValueError("the 'auto' kernel needs a KernelChoice to measure with")
        kernel = _faster_kernel(choice, conv, x, weight)
    if kernel == "conv":
        return F.conv1d(x, weight, conv.bias, 1, padding, dilation)
    return conv1d_as_matmul(x, weight, conv.bias, padding, dilation)


def _faster_kernel(choice: KernelChoice, conv: nn.Conv1d, x: Tensor, weight: Tensor) -> str:
    device = x.device
    autocast = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if autocast else x.dtype
    grad = torch.is_grad_enabled()
    key = f"module conv1d weight={tuple(weight.shape)} bias={conv.bias is not None} {dtype} autocast={autocast} grad={grad}"
    length = min(x.shape[2], MEASURE_ROWS)
    sample = measurement_input((max(1, MEASURE_ROWS // length), x.shape[1], length), x.dtype, device).requires_grad_(grad)
    parameters = weight.detach().requires_grad_(grad), None if conv.bias is None else conv.bias.detach().requires_grad_(grad)

    def run(kernel: str):
        def step():
            if kernel == "conv":
                out = F.conv1d(sample, parameters[0], parameters[1], 1, conv.padding[0], conv.dilation[0])
            else:
                out = conv1d_as_matmul(sample, parameters[0], parameters[1], conv.padding[0], conv.dilation[0])
            if grad:
                out.float().sum().backward()

        return step

    flops = 2.0 * sample.shape[0] * length * weight.numel() * (3 if grad else 1)  # backward: twice the forward
    return choice.fastest(key, {name: run(name) for name in ("conv", "matmul")}, device, "conv", flops)


def folded_weight(conv: nn.Conv1d, basis: Tensor) -> Tensor:
    """``conv``'s weight for inputs given as coefficients of ``basis`` (K × C): out × K × k instead of out × C × k,
    so that conv(x = basisᵀ·coefficients) = conv with this weight on the coefficients (B K T), without forming x."""
    return torch.einsum("ock,sc->osk", conv.weight, basis.to(conv.weight.dtype))


def conv_norm_relu(
    block: nn.Sequential, x: Tensor, basis: Optional[Tensor] = None, kernel: str = "conv",
    choice: Optional[KernelChoice] = None,
) -> Tensor:  # fmt: skip
    """Run a ``Conv1d [+ GroupNorm] + ReLU`` block on ``x`` (B C T).

    With ``basis`` (K × C), ``x`` holds coefficients (B K T) of the block's real input basisᵀ·x (``folded_weight``).
    ``kernel`` and ``choice`` run the convolution (see ``temporal_conv``).
    """
    if basis is None and kernel == "conv":
        return block(x)  # the published call (module hooks see it)
    out = temporal_conv(block[0], x, kernel, None if basis is None else folded_weight(block[0], basis), choice)
    for layer in block[1:]:
        out = layer(out)
    return out


class NonLocalBlock1D(nn.Module):
    """Embedded-dot-product non-local block without softmax (RTFM), on B C T tensors.

    output = alter((queryᵀ · key / T) · value) + input. Without a softmax the T × T attention need not exist:
    (queryᵀ · key) · value = queryᵀ · (key · value), computed as the latter (a D × D product), so memory grows
    linearly with T (a 27,600-snippet video would otherwise need a 27,600² matrix per crop).
    ``alter`` ends in a BatchNorm1d whose weight and bias start at zero, so the block starts as the identity.
    """

    def __init__(self, in_channels: int, inter_channels: Optional[int] = None):
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.value = nn.Conv1d(self.in_channels, self.inter_channels, kernel_size=1)
        self.alter = nn.Sequential(
            nn.Conv1d(self.inter_channels, self.in_channels, kernel_size=1),
            nn.BatchNorm1d(self.in_channels),
        )
        nn.init.zeros_(self.alter[1].weight)
        nn.init.zeros_(self.alter[1].bias)
        self.query = nn.Conv1d(self.in_channels, self.inter_channels, kernel_size=1)
        self.key = nn.Conv1d(self.in_channels, self.inter_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: B C T -> B C T."""
        length = x.shape[-1]
        value = self.value(x).transpose(1, 2)  # B T D
        query = self.query(x).transpose(1, 2)  # B T D
        key = self.key(x)  # B D T
        out = query @ ((key @ value) / length)  # B T D
        out = out.transpose(1, 2)  # B D T
        return self.alter(out) + x


class Aggregate(nn.Module):
    """Multi-scale temporal aggregation: three dilated convolutions and a non-local branch, fused, plus residual.

    Input and output are B T C (``dim`` channels); inside it works on B C T with ``dim // reduction`` channels
    per branch.
    """

    def __init__(self, dim: int = 2048, reduction: int = 4):
        super().__init__()
        inner = dim // reduction
        self.dim = dim
        self.conv_1 = self._dilated_branch(dim, inner, dilation=1)
        self.conv_2 = self._dilated_branch(dim, inner, dilation=2)
        self.conv_3 = self._dilated_branch(dim, inner, dilation=4)
        self.conv_4 = nn.Sequential(nn.Conv1d(dim, inner, kernel_size=1, bias=False), nn.ReLU())
        self.conv_5 = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(num_groups=8, num_channels=dim, eps=1e-05),
            nn.ReLU(),
        )
        self.non_local = NonLocalBlock1D(inner)

    @staticmethod
    def _dilated_branch(dim: int, inner: int, dilation: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv1d(dim, inner, kernel_size=3, dilation=dilation, padding=dilation),
            nn.GroupNorm(num_groups=8, num_channels=inner, eps=1e-05),
            nn.ReLU(),
        )

    def forward(
        self, x: Tensor, basis: Optional[Tensor] = None, kernel: str = "conv", choice: Optional[KernelChoice] = None
    ) -> Tensor:
        """x: B T C -> B T C.

        With ``basis`` (K × C, K < C), ``x`` is given as coefficients B T K of the input x·basis: the four first
        convolutions then take K input channels instead of C (the same function, less work), see ``folded_weight``.
        ``kernel`` runs the convolutions (``CONV_KERNELS``; "conv": ``F.conv1d``, as published; "auto": the faster,
        measured by ``choice``).
        """
        if basis is None:
            residual = first = x.transpose(1, 2)  # B C T
        else:
            first = x.transpose(1, 2)  # B K T
            residual = (x @ basis.to(x.dtype)).transpose(1, 2)
        branches = [conv_norm_relu(conv, first, basis, kernel, choice) for conv in (self.conv_1, self.conv_2, self.conv_3)]
        branches.append(self.non_local(conv_norm_relu(self.conv_4, first, basis, kernel, choice)))
        fused = conv_norm_relu(self.conv_5, torch.cat(branches, dim=1), kernel=kernel, choice=choice)
        return (fused + residual).transpose(1, 2)
