"""RTFM's multi-scale temporal block (``Aggregate``) and its 1-D non-local block, each with its packed form.

``forward`` is the module as trained (and as published). Beside each module, its packed form computes the same
eval-mode function for many videos at once, on the packed layout of ``anomaly.models.packing``: ``PackedNonLocal``
after ``NonLocalBlock1D``, ``PackedAggregate`` after ``Aggregate``. A change to a module's ``forward`` needs the
same change in its packed form (``tests/test_packed_forms.py`` compares the two for every module).
"""

import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomaly.errors import check_choice
from anomaly.measuring import Timer, no_timer
from anomaly.models.kernel_choice import MEASURE_ROWS, KernelChoice, measurement_input
from anomaly.models.packing import (
    GAP,
    KERNELS,
    PackedChunk,
    body,
    conv_rows,
    conv_weight,
    matmul_rows,
    matmuls_like_convolutions,
    padded,
    shifted,
    winograd_rows,
    winograd_weights,
)


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
    shape = (max(1, MEASURE_ROWS // length), x.shape[1], length)

    # Made only when the key is measured: looking up a choice already made draws no measurement sample.
    @functools.cache
    def inputs() -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        sample = measurement_input(shape, x.dtype, device).requires_grad_(grad)
        bias = None if conv.bias is None else conv.bias.detach().requires_grad_(grad)
        return sample, weight.detach().requires_grad_(grad), bias

    def run(kernel: str):
        def step():
            sample, weights, bias = inputs()
            if kernel == "conv":
                out = F.conv1d(sample, weights, bias, 1, conv.padding[0], conv.dilation[0])
            else:
                out = conv1d_as_matmul(sample, weights, bias, conv.padding[0], conv.dilation[0])
            if grad:
                out.float().sum().backward()

        return step

    flops = 2.0 * shape[0] * length * weight.numel() * (3 if grad else 1)  # backward: twice the forward
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


class PackedNonLocal:
    """``NonLocalBlock1D.forward`` in eval mode on packed rows (``anomaly.models.packing``).

    value, query and key are one product (rows × 3D); the keys of tail rows are zeroed, so each sequence's
    keyᵀ·value sums its own snippets, divided by its own T. ``alter``'s eval-mode BatchNorm is folded into its
    convolution (in float64, rounded once to ``dtype``).
    """

    def __init__(self, block: NonLocalBlock1D, dtype: torch.dtype):
        self.half = block.inter_channels
        projections = (block.value, block.query, block.key)
        self.vqk = torch.cat([conv.weight[:, :, 0] for conv in projections]).to(dtype).contiguous().t()  # in × 3D
        self.vqk_bias = torch.cat([conv.bias for conv in projections]).to(dtype).contiguous()
        conv, norm = block.alter
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        self.alter = (conv.weight[:, :, 0].double().t() * scale).to(dtype).contiguous()  # D × in
        self.alter_bias = (conv.bias.double() * scale + norm.bias.double() - norm.running_mean.double() * scale).to(dtype)

    def __call__(self, x: Tensor, chunk: PackedChunk) -> None:
        """x: body rows × in (tails zero) becomes, in place, the block's output (tails zero again)."""
        sequences, pitch, half = chunk.sequences, chunk.pitch, self.half
        vqk = torch.addmm(self.vqk_bias, x, self.vqk)  # rows × 3D
        chunk.zero_tails_(vqk[:, 2 * half :])
        vqk = vqk.view(sequences, pitch, 3 * half)
        value, query, key = vqk[..., :half], vqk[..., half : 2 * half], vqk[..., 2 * half :]
        summary = torch.bmm(key.transpose(1, 2), value)  # sequences × D × D
        summary /= chunk.counts.view(sequences, 1, 1).to(summary.dtype)
        out = torch.bmm(query, summary).view(chunk.body_rows, half)
        x.add_(torch.addmm(self.alter_bias, out, self.alter))
        chunk.zero_tails_(x)


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


@dataclass(frozen=True)
class PackedGroupNormReLU:
    """GroupNorm then ReLU on packed rows, each sequence's statistics over its real rows only: the packed form of
    Aggregate's ``GroupNorm, ReLU`` (of one block, or of several side by side: their groups concatenated).

    Statistics accumulate in float32 whatever the rows' dtype, with the two-pass (centred) variance.
    """

    groups: int
    eps: float
    weight: Tensor  # C, float32
    bias: Tensor  # C, float32

    @staticmethod
    def of(norms: Sequence[nn.GroupNorm]) -> "PackedGroupNormReLU":
        if len({(norm.num_channels // norm.num_groups, norm.eps) for norm in norms}) != 1:
            raise ValueError("GroupNorms side by side need one group size and one eps")
        weight = torch.cat([norm.weight.float() for norm in norms])
        bias = torch.cat([norm.bias.float() for norm in norms])
        return PackedGroupNormReLU(sum(norm.num_groups for norm in norms), norms[0].eps, weight, bias)

    def __call__(self, y: Tensor, chunk: PackedChunk) -> None:
        """In place on ``y`` (body rows × C, possibly a column slice): normalised, affine, ReLU, tails zero."""
        sequences, groups = chunk.sequences, self.groups
        group_size = y.shape[1] // groups
        chunk.zero_tails_(y)
        grouped = y.view(sequences, chunk.pitch, groups, group_size)
        count = chunk.counts.view(sequences, 1) * group_size
        mean = grouped.sum(dim=(1, 3), dtype=torch.float32) / count  # R G
        grouped.sub_(mean.view(sequences, 1, groups, 1))
        chunk.zero_tails_(y)
        variance = torch.linalg.vector_norm(grouped, dim=(1, 3), dtype=torch.float32).square_() / count
        scale = torch.rsqrt(variance + self.eps).unsqueeze(-1) * self.weight.view(groups, group_size)  # R G g
        torch.addcmul(self.bias.view(1, 1, groups, group_size), grouped, scale.unsqueeze(1), out=grouped)
        y.relu_()
        chunk.zero_tails_(y)


def conv_taps(conv: nn.Conv1d, basis: Optional[Tensor] = None) -> List[Tensor]:
    """Each tap of ``conv`` as an in × out float64 matrix; with ``basis`` (K × C), folded: K × out.

    Unfolded taps are transposed views of out × in tensors, and stay so when cast (``Tensor.to`` keeps the
    strides): a matrix product takes them without a copy.
    """
    per_tap = conv.weight.detach().double().permute(2, 0, 1)  # k × out × in
    if basis is None:
        return [tap.t() for tap in per_tap]
    return [basis.double() @ tap.t() for tap in per_tap]


class PackedAggregate:
    """``Aggregate.forward`` in eval mode on packed rows (``anomaly.models.packing``), without the residual.

    Weights in matrix form (in × out), formed in float64 and rounded once to ``dtype``. With ``basis`` (K × C) the
    block's input is given as coefficients a (rows × K) of x = a·basis and the first convolutions take a directly,
    their weights folded with the basis (as ``forward``'s ``basis``). Two stages, each run by one of ``KERNELS``:
    "branches" (conv_1-3 and conv_4 side by side: with "matmul" their middle taps share one product) and "conv_5";
    by ``kernel`` when given, else the fastest here, measured by ``choice`` on ``rows`` body rows, the size of the
    chunks it will run (Winograd in float32 only: its sums of inputs add a rounding each, 2^-24 in float32 but 2^-8
    in bfloat16).
    """

    def __init__(
        self, block: Aggregate, dtype: torch.dtype, choice: KernelChoice, basis: Optional[Tensor] = None,
        kernel: Optional[str] = None, rows: int = MEASURE_ROWS,
    ):  # fmt: skip
        branches = (block.conv_1, block.conv_2, block.conv_3)
        self.inner = block.conv_1[0].out_channels
        self.dilations = [branch[0].dilation[0] for branch in branches]
        if max(self.dilations) > GAP or block.conv_5[0].padding[0] != 1:
            raise ValueError("the packed layout assumes dilations up to 4 and conv_5 of padding 1")
        self.branch_norm = PackedGroupNormReLU.of([branch[1] for branch in branches])
        self.fuse_norm = PackedGroupNormReLU.of([block.conv_5[1]])
        self.non_local = PackedNonLocal(block.non_local, dtype)
        forms = {
            "branches": self._branch_forms(branches, block.conv_4[0], basis, dtype),
            "conv_5": self._fuse_forms(block.conv_5[0], dtype),
        }
        in_channels = block.dim if basis is None else basis.shape[0]
        device = block.conv_5[0].weight.device
        self.kernels = self._choose_kernels(kernel, choice, dtype, device, in_channels, block.dim, forms, rows)
        self.branch_weights = forms["branches"][self.kernels["branches"]]()
        self.fuse_weights = forms["conv_5"][self.kernels["conv_5"]]()

    @staticmethod
    def _branch_forms(
        branches: Sequence[nn.Sequential], local_conv: nn.Conv1d, basis: Optional[Tensor], dtype: torch.dtype
    ) -> Dict[str, Callable[[], tuple]]:  # fmt: skip
        """Every kernel's form of conv_1-3 (with their biases) and conv_4, each formed when first asked for: a
        scorer is built for every evaluation, and once the kernels are chosen only their forms are needed."""
        branch_taps = [conv_taps(branch[0], basis) for branch in branches]
        local = conv_taps(local_conv, basis)[0]  # conv_4: in × inner
        biases = [branch[0].bias.to(dtype).contiguous() for branch in branches]
        middle = [taps[1] for taps in branch_taps] + [local]  # the taps that read the unshifted rows
        forms = {
            # one product for the middle taps and conv_4 side by side, then the side taps (before, after)
            "matmul": lambda: (torch.cat([tap.t() for tap in middle]).t().to(dtype),
                               torch.cat(biases + [biases[0].new_zeros(local.shape[1])]),
                               [(taps[0].to(dtype), taps[2].to(dtype)) for taps in branch_taps]),
            "conv": lambda: ([conv_weight([tap.to(dtype) for tap in taps]) for taps in branch_taps], biases,
                             local.to(dtype)),
            "winograd": lambda: ([winograd_weights(taps, dtype) for taps in branch_taps], biases, local.to(dtype)),
        }  # fmt: skip
        return {name: functools.cache(form) for name, form in forms.items()}

    @staticmethod
    def _fuse_forms(conv: nn.Conv1d, dtype: torch.dtype) -> Dict[str, Callable[[], object]]:
        """Every kernel's form of conv_5, each formed when first asked for."""
        taps = conv_taps(conv)
        forms = {
            "matmul": lambda: [tap.to(dtype) for tap in taps],
            "conv": lambda: conv_weight([tap.to(dtype) for tap in taps]),
            "winograd": lambda: winograd_weights(taps, dtype),
        }
        return {name: functools.cache(form) for name, form in forms.items()}

    def _choose_kernels(
        self, kernel: Optional[str], choice: KernelChoice, dtype: torch.dtype, device: torch.device,
        in_channels: int, channels: int, forms: Dict[str, Dict[str, Callable[[], object]]], rows: int,
    ) -> Dict[str, str]:  # fmt: skip
        """The kernel of each stage: ``kernel`` when given, else the one ``choice`` measures fastest on a buffer of
        ``rows`` random rows (``forms[stage][name]()`` gives a candidate's weights)."""
        if kernel is not None:
            check_choice(kernel, KERNELS, "kernel")
            if kernel == "winograd" and dtype != torch.float32:
                raise ValueError(f"the winograd kernel runs in float32 only, not {dtype}")
            return {"branches": kernel, "conv_5": kernel}
        names = KERNELS if dtype == torch.float32 else tuple(name for name in KERNELS if name != "winograd")
        # Evaluation's key predates the row count (training states saved it): only other sizes name theirs.
        size = "" if rows == MEASURE_ROWS else f" rows={rows}"
        chosen = {}
        for stage, width, run in (("branches", in_channels, self._branches), ("conv_5", channels, self._fuse)):
            # Drawn only when the key is measured: looking up a choice already made draws no sample.
            sample = functools.cache(lambda width=width: measurement_input((rows + 2 * GAP, width), dtype, device))
            key = f"packed {stage} {dtype} in={in_channels} channels={channels} dilations={self.dilations}{size}"
            # Timed within this iteration (fastest runs them at once), so the loop's variables are the right ones.
            candidates = {
                name: lambda name=name: run(sample(), rows, name, forms[stage][name]()) for name in names
            }
            out_channels = 4 * self.inner if stage == "branches" else channels
            flops = 2.0 * rows * width * out_channels * 3
            chosen[stage] = choice.fastest(key, candidates, device, "matmul", flops)
        return chosen

    def __call__(self, source: Tensor, chunk: PackedChunk, timer: Timer = no_timer, name: str = "") -> Tensor:
        """source: padded buffer (tails zero) -> conv_5's branch after GroupNorm and ReLU (body rows × C, tails
        zero). The block's output is this plus its input (the residual), left to the caller.

        ``timer(section)`` times the stages (labels "<name>: conv_1-3 + conv_4", ": non-local", ": conv_5").
        """
        rows, inner = chunk.body_rows, self.inner
        with matmuls_like_convolutions(source.device):
            with timer(f"{name}: conv_1-3 + conv_4"):
                branches = self._branches(source, rows, self.kernels["branches"], self.branch_weights)
                self.branch_norm(body(branches, rows)[:, : 3 * inner], chunk)
                local = body(branches, rows)[:, 3 * inner :]
                local.relu_()  # conv_4's ReLU (it has no norm)
                chunk.zero_tails_(local)
            with timer(f"{name}: non-local"):
                self.non_local(local, chunk)
            with timer(f"{name}: conv_5"):
                fused = self._fuse(branches, rows, self.kernels["conv_5"], self.fuse_weights)
                del branches, local
                self.fuse_norm(fused, chunk)
        return fused

    def _branches(self, source: Tensor, rows: int, kernel: str, weights: tuple) -> Tensor:
        """conv_1, conv_2, conv_3 (with bias) and conv_4 of ``source`` (padded, tails zero) side by side, before
        their norms: a padded buffer (GAP + rows + GAP) × 4·inner whose border rows are zero. ``weights``: the
        ``kernel``'s form of them (see ``_branch_forms``)."""
        inner = self.inner
        branches = padded(rows, 4 * inner, source)
        out = body(branches, rows)
        if kernel == "matmul":
            middle, middle_bias, sides = weights
            torch.addmm(middle_bias, shifted(source, 0, rows), middle, out=out)
            for index, (dilation, (before, after)) in enumerate(zip(self.dilations, sides)):
                columns = out[:, index * inner : (index + 1) * inner]
                columns.addmm_(shifted(source, -dilation, rows), before)
                columns.addmm_(shifted(source, dilation, rows), after)
            return branches
        per_branch, biases, local = weights
        for index, (dilation, weight, bias) in enumerate(zip(self.dilations, per_branch, biases)):
            columns = out[:, index * inner : (index + 1) * inner]
            if kernel == "conv":
                columns.copy_(conv_rows(source, rows, weight, dilation, bias))
            else:
                winograd_rows(source, rows, weight, dilation, columns, bias)
        torch.mm(shifted(source, 0, rows), local, out=out[:, 3 * inner :])
        return branches

    def _fuse(self, branches: Tensor, rows: int, kernel: str, weights) -> Tensor:
        """conv_5 of the padded branch buffer -> body rows × C (no bias; tails hold garbage)."""
        if kernel == "conv":
            return conv_rows(branches, rows, weights, 1)
        if kernel == "winograd":
            fused = branches.new_empty(rows, weights[0].shape[1])
            winograd_rows(branches, rows, weights, 1, fused)
            return fused
        return matmul_rows(branches, rows, weights, 1)
