"""RTFM's multi-scale temporal block (``Aggregate``) and its 1-D non-local block.

Both accept an optional boolean ``mask`` of shape ``B T`` marking real snippets. With it, a batch of videos
padded to a common length gives every video exactly the numbers it would get alone: padded positions are zeroed
before each convolution (so borders see the same zeros as a lone video's padding), GroupNorm statistics and the
non-local sums run over real snippets only, and the non-local block divides by each video's own length.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_group_norm(x: Tensor, norm: nn.GroupNorm, mask: Tensor) -> Tensor:
    """GroupNorm of ``x`` (B C T) whose statistics use only the positions where ``mask`` (B T) is true.

    Computed in float32 whatever ``x``'s dtype (bf16 under autocast), returned in ``x``'s dtype.
    """
    dtype = x.dtype
    x = x.to(torch.promote_types(dtype, torch.float32))
    batch, channels, length = x.shape
    groups = norm.num_groups
    weights = mask.to(x.dtype).view(batch, 1, 1, length)
    grouped = x.view(batch, groups, channels // groups, length)
    count = weights.sum(dim=-1, keepdim=True) * (channels // groups)
    mean = (grouped * weights).sum(dim=(-2, -1), keepdim=True) / count
    variance = (((grouped - mean) ** 2) * weights).sum(dim=(-2, -1), keepdim=True) / count
    normalised = ((grouped - mean) / torch.sqrt(variance + norm.eps)).view(batch, channels, length)
    return (normalised * norm.weight.to(x.dtype).view(1, -1, 1) + norm.bias.to(x.dtype).view(1, -1, 1)).to(dtype)


def folded_conv(conv: nn.Conv1d, coefficients: Tensor, basis: Tensor) -> Tensor:
    """``conv`` applied to x = basisᵀ·coefficients without forming x: coefficients B K T, basis K C.

    The weight (out, C, k) is folded with the basis into (out, K, k): K input channels instead of C.
    """
    weight = torch.einsum("ock,sc->osk", conv.weight, basis.to(conv.weight.dtype))
    return F.conv1d(coefficients, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def conv_norm_relu(block: nn.Sequential, x: Tensor, mask: Optional[Tensor], basis: Optional[Tensor] = None) -> Tensor:
    """Run a ``Conv1d [+ GroupNorm] + ReLU`` block on ``x`` (B C T), masking padded snippets when ``mask`` is given.

    With ``basis`` (K × C), ``x`` holds coefficients (B K T) of the block's real input basisᵀ·x (``folded_conv``).
    """
    if mask is None and basis is None:
        return block(x)
    if mask is not None:
        x = x * mask.unsqueeze(1).to(x.dtype)
    out = block[0](x) if basis is None else folded_conv(block[0], x, basis)
    for layer in block[1:]:
        out = masked_group_norm(out, layer, mask) if isinstance(layer, nn.GroupNorm) and mask is not None else layer(out)
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

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: B C T, mask: B T (optional) -> B C T."""
        length = x.shape[-1]
        value = self.value(x).transpose(1, 2)  # B T D
        query = self.query(x).transpose(1, 2)  # B T D
        key = self.key(x)  # B D T
        if mask is None:
            out = query @ ((key @ value) / length)  # B T D
        else:
            weights = mask.to(x.dtype)
            key = key * weights.unsqueeze(1)
            out = query @ ((key @ value) / weights.sum(dim=1).view(-1, 1, 1))
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

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, basis: Optional[Tensor] = None) -> Tensor:
        """x: B T C, mask: B T (optional) -> B T C.

        With ``basis`` (K × C, K < C), ``x`` is given as coefficients B T K of the input x·basis: the four first
        convolutions then take K input channels instead of C (the same function, less work), see ``folded_conv``.
        """
        if basis is None:
            residual = first = x.transpose(1, 2)  # B C T
        else:
            first = x.transpose(1, 2)  # B K T
            residual = (x @ basis.to(x.dtype)).transpose(1, 2)
        branches = [conv_norm_relu(conv, first, mask, basis) for conv in (self.conv_1, self.conv_2, self.conv_3)]
        branches.append(self.non_local(conv_norm_relu(self.conv_4, first, mask, basis), mask))
        fused = conv_norm_relu(self.conv_5, torch.cat(branches, dim=1), mask)
        return (fused + residual).transpose(1, 2)
