"""The I3D ResNet-50 of pytorch-resnet3d (``I3Res50`` without non-local blocks) as a feature extractor.

Parameter names and shapes are those of ``i3d_r50_kinetics.pth`` (320 state_dict entries, the classifier ``fc``
included), so the released weights load with ``strict=True``. ``features`` is the eval-mode global average pool
of ``layer4``: clips B 3 16 224 224 (RGB, time, height, width) -> B 2048. About 32.8 GFLOP per clip.

The module as loaded is the released network, for loading and saving weights; ``inference_copy`` gives the form to
run: the same features, faster, in float32 or bfloat16. ``crop_features`` takes whole (resized) frames and the
crops' boxes, cuts the crops itself and computes the first convolution once where the crops overlap (``CropStem``):
frames B 3 16 H W -> B N 2048, the rest of the network (``from_stem``) run on all clips at once or a few at a time.
"""

import copy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomaly.engine.checkpoint import load_checkpoint, load_model_weights, model_state_of
from anomaly.errors import InputError, check_choice
from anomaly.extraction.compiling import NetworkBody
from anomaly.precision import NETWORK_PRECISIONS, dtype_of

if TYPE_CHECKING:  # preprocess imports this module's crop geometry
    from anomaly.extraction.preprocess import Preset

PathLike = Union[str, Path]
FEATURE_SIZE = 2048
CROP_SIZE = 224
GFLOP_PER_CLIP = 32.8
WEIGHTS_FILE = "i3d_r50_kinetics.pth from pytorch-resnet3d's release"
WEIGHTS_NOT_FOUND = f"weights file not found ({WEIGHTS_FILE})"
# A crop of a frame: (flipped, top, left), ``flipped`` for a crop of the horizontally flipped frame, (top, left) its
# corner in that (flipped or not) frame.
CropBox = Tuple[bool, int, int]
# Per stage: blocks, channels, spatial stride, and which blocks have a 3-frame temporal first convolution.
STAGES = (
    (64, 1, (1, 1, 1)),
    (128, 2, (1, 0, 1, 0)),
    (256, 2, (1, 0, 1, 0, 1, 0)),
    (512, 2, (0, 1, 0)),
)


class Bottleneck(nn.Module):
    """1×1×1 (or 3×1×1) -> 1×3×3 (spatial stride) -> 1×1×1 ×4 channels, plus the (projected) input."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, temporal: bool, downsample: Union[nn.Module, None]):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, (3 if temporal else 1, 1, 1), padding=(1 if temporal else 0, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def fold_batch_norm(conv: nn.Conv3d, norm: nn.BatchNorm3d) -> None:
    """Make ``conv`` (bias-free, as all of I3D's are) compute eval-mode ``norm(conv(x))`` itself.

    BatchNorm in eval mode is, per output channel, the affine map y -> y·s + (β − μ·s) with s = γ / sqrt(σ² + ε)
    (running mean μ and variance σ²), so it folds into the convolution: weight O I kT kH kW scaled by s along O, bias
    O = β − μ·s. Computed in float64 and cast once, so each folded weight carries one rounding, like the weight it
    replaces.
    """
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)  # O
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1, 1)
    bias = norm.bias.double() - norm.running_mean.double() * scale
    conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)  # the dtype the weight keeps


def temporal_pair_max(x: Tensor) -> Tensor:
    """x B C T H W -> B C T//2 H W: the maximum of each pair of frames, which is what ``MaxPool3d((2, k, k),
    stride=(2, s, s))`` takes along time (a trailing odd frame dropped, as its floor mode does). Taken apart from the
    spatial maximum because on a CPU PyTorch's 3-D max-pool also computes indices and costs several times more."""
    frames = x.shape[2] // 2 * 2
    return torch.maximum(x[:, :, 0:frames:2], x[:, :, 1:frames:2])


def spatial_max_pool(x: Tensor, pool: nn.MaxPool3d) -> Tensor:
    """x B C T H W -> the spatial part of ``pool`` (its kernel and stride over H W) as a 2-D max-pool of every frame;
    with :func:`temporal_pair_max` before it, exactly ``pool(x)`` (a maximum does not depend on its order)."""
    batch, channels, frames, height, width = x.shape
    pooled = F.max_pool2d(x.transpose(1, 2).reshape(batch * frames, channels, height, width),
                          pool.kernel_size[1:], pool.stride[1:])
    return pooled.reshape(batch, frames, channels, *pooled.shape[-2:]).transpose(1, 2)


def cut_crops(frames: Tensor, boxes: Sequence[CropBox]) -> Tensor:
    """frames B C T H W -> the crops (B·N) C T 224 224 of every frame (B-major), in ``frames``' memory format."""
    crops = torch.stack(_crops(_frame_images(frames, boxes), boxes), dim=1).flatten(0, 1)
    channels_last = frames.is_contiguous(memory_format=torch.channels_last_3d)
    return crops.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


class CropStem:
    """The stem convolution (I3D's 5×7×7, spatial stride 2, padding 3) of several overlapping crops of the same
    frames, computed once where they overlap; ``pays`` says whether that is less work than crop by crop.

    A crop's output at (i, j) reads the 7 × 7 window of crop pixels around (2i, 2j); for the interior outputs
    (``lo`` ≤ i, j ≤ ``hi``: windows inside the crop) that window is the same pixels of the frame whatever the crop,
    so one convolution over the frame (unpadded, for the crops whose corners have the same parity: stride 2) gives
    the interior of all of them. Only the outputs whose windows cross the crop's edge (2 rows and columns at the
    start, 1 at the end) see the crop's zero padding; they come from four thin strips of each crop convolved with
    that padding. Ten crops of a 256 × 340 frame take about a third of the arithmetic of ten separate convolutions.
    Every output sums the same products as the crop's own convolution would, so the features change by float
    rounding at most (bit for bit equal on the CPU where this was measured).
    """

    def __init__(self, conv: nn.Conv3d, boxes: Sequence[CropBox]):
        kernel, stride, padding = conv.kernel_size[1], conv.stride[1], conv.padding[1]  # square in H W

        def outputs(pixels: int) -> int:
            return (pixels + 2 * padding - kernel) // stride + 1

        self.conv, self.boxes, self.stride = conv, list(boxes), stride
        self.size = outputs(CROP_SIZE)  # outputs per crop side
        self.lo = -(-padding // stride)  # the first output whose window lies inside the crop
        self.hi = (CROP_SIZE + padding - kernel) // stride  # the last one
        self.offset = stride * self.lo - padding  # where output lo's window starts in the crop
        # Strips: the first lo outputs read crop rows [0, strip); the last ones read rows from stride·strip_first on
        # (a multiple of the stride, so that the strip's outputs fall on the crop's grid: its first is strip_first).
        self.strip = stride * (self.lo - 1) - padding + kernel
        self.strip_first = (stride * (self.hi + 1) - padding) // stride
        self.groups: Dict[Tuple[bool, int, int], List[int]] = {}
        for index, (flipped, top, left) in enumerate(self.boxes):
            self.groups.setdefault((flipped, top % stride, left % stride), []).append(index)
        # Output positions computed, shared against per crop: one crop alone costs more shared (strips included).
        shared = sum(self._span(members, 1) * self._span(members, 2) for members in self.groups.values())
        strips = 2 * (outputs(self.strip) + outputs(CROP_SIZE - stride * self.strip_first)) * self.size
        self.pays = shared + strips * len(self.boxes) < self.size**2 * len(self.boxes)

    def _span(self, members: Sequence[int], axis: int) -> int:
        """Outputs along ``axis`` (1: rows, 2: columns) of the convolution over the group's frame region."""
        corners = [self.boxes[index][axis] for index in members]
        return (max(corners) - min(corners)) // self.stride + self.hi - self.lo + 1

    def __call__(self, frames: Tensor) -> Tensor:
        """frames B C T H W -> conv of every crop (B·N) O T' n n (B-major), channels-last 3-D."""
        conv, stride, lo, hi, size = self.conv, self.stride, self.lo, self.hi, self.size
        images = _frame_images(frames, self.boxes)
        batch, crops, inner = frames.shape[0], len(self.boxes), hi - lo + 1
        out = per_crop = None
        for (flipped, _, _), members in self.groups.items():
            tops = [self.boxes[index][1] for index in members]
            lefts = [self.boxes[index][2] for index in members]
            top, left = min(tops), min(lefts)
            region = images[flipped][
                ..., top + self.offset : max(tops) + self.offset + stride * (inner - 1) + conv.kernel_size[1],
                left + self.offset : max(lefts) + self.offset + stride * (inner - 1) + conv.kernel_size[2],
            ]  # fmt: skip
            interior = F.conv3d(region, conv.weight, conv.bias, conv.stride, (conv.padding[0], 0, 0))
            if out is None:
                out = torch.empty((batch * crops, *interior.shape[1:3], size, size), dtype=interior.dtype,
                                  device=interior.device, memory_format=torch.channels_last_3d)  # fmt: skip
                per_crop = out.view(batch, crops, *out.shape[1:])
            for index in members:
                row, column = (self.boxes[index][1] - top) // stride, (self.boxes[index][2] - left) // stride
                per_crop[:, index, ..., lo : hi + 1, lo : hi + 1] = interior[..., row : row + inner, column : column + inner]
        whole, head, tail = slice(None), slice(0, lo), slice(hi + 1, size)
        first_rows, end_rows = slice(0, self.strip), slice(stride * self.strip_first, CROP_SIZE)
        tail_in_strip = slice(hi + 1 - self.strip_first, size - self.strip_first)
        for rows, columns, taken, target in (  # a strip's crop pixels, the outputs taken from it, where they go
            (first_rows, whole, (head, whole), (head, whole)),
            (end_rows, whole, (tail_in_strip, whole), (tail, whole)),
            (whole, first_rows, (whole, head), (whole, head)),
            (whole, end_rows, (whole, tail_in_strip), (whole, tail)),
        ):
            strips = torch.stack([crop[..., rows, columns] for crop in _crops(images, self.boxes)], dim=1).flatten(0, 1)
            out[(..., *target)] = conv(strips)[(..., *taken)]
        return out


def _frame_images(frames: Tensor, boxes: Sequence[CropBox]) -> Dict[bool, Tensor]:
    """The frames, and their horizontal flip when a crop needs it."""
    images = {False: frames}
    if any(flipped for flipped, _, _ in boxes):
        images[True] = frames.flip(-1)
    return images


def _crops(images: Dict[bool, Tensor], boxes: Sequence[CropBox]) -> List[Tensor]:
    return [images[flipped][..., top : top + CROP_SIZE, left : left + CROP_SIZE] for flipped, top, left in boxes]


class I3DResNet50(nn.Module):
    """I3Res50: conv1 5×7×7 (stride 2) -> max-pool 2×3×3 -> layer1 -> max-pool 2×1×1 -> layer2..4 -> average pool.

    A 16-frame 224×224 clip reaches layer4 as 2048 × 2 × 7 × 7.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (5, 7, 7), stride=(2, 2, 2), padding=(2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool1 = nn.MaxPool3d((2, 3, 3), stride=(2, 2, 2))
        inplanes = 64
        for index, (planes, stride, temporal) in enumerate(STAGES, start=1):
            blocks = []
            for block, temporal_conv in enumerate(temporal):
                block_stride = stride if block == 0 else 1
                downsample = None
                if block == 0 and (block_stride != 1 or inplanes != planes * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        nn.Conv3d(inplanes, planes * Bottleneck.expansion, 1, stride=(1, block_stride, block_stride), bias=False),
                        nn.BatchNorm3d(planes * Bottleneck.expansion),
                    )
                blocks.append(Bottleneck(inplanes, planes, block_stride, bool(temporal_conv), downsample))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        # Unused for features; kept so that the released file loads with strict=True.
        self.fc = nn.Linear(FEATURE_SIZE, num_classes)

    def _conv_norm_pairs(self) -> Iterator[Tuple[nn.Module, str, str]]:
        """(owner, convolution name, BatchNorm name) of each BatchNorm3d and the convolution whose output it takes."""
        yield self, "conv1", "bn1"
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                yield from ((block, f"conv{index}", f"bn{index}") for index in (1, 2, 3))
                if block.downsample is not None:
                    yield block.downsample, "0", "1"

    def inference_copy(self, dtype: torch.dtype = torch.float32) -> "I3DResNet50":
        """An eval-only copy that computes the same ``features`` faster, on CPU and CUDA, with weights and
        activations in ``dtype``: float32 (the same features to float32 rounding) or bfloat16.

        - Every BatchNorm is folded into its convolution (``fold_batch_norm``, in float64, rounded once to ``dtype``)
          and replaced by ``nn.Identity``: one pass over each activation instead of two.
        - The convolution weights are channels-last 3-D (B C T H W stored as B T H W C), the layout of oneDNN's
          fastest CPU convolutions and of cuDNN's tensor-core ones, so that no layer reorders its input or output.
          Inputs should be channels-last 3-D too (``Preset.normalise`` gives that), in ``dtype``; the max-pools and
          the average pool keep the layout.
        - In bfloat16 every convolution reads and writes bfloat16 (the products accumulate in float32 inside the
          kernels), with no autocast casts between layers; the final average is taken in float32, and the features
          are float32.

        Its state_dict is no longer the released layout (convolution biases, no BatchNorm entries): load and save
        weights with this module, run the copy. Parameters do not require gradients.
        """
        fast = copy.deepcopy(self).eval().requires_grad_(False).double()
        with torch.no_grad():
            for owner, conv, norm in fast._conv_norm_pairs():
                fold_batch_norm(getattr(owner, conv), getattr(owner, norm))
                setattr(owner, norm, nn.Identity())
        return fast.to(dtype=dtype, memory_format=torch.channels_last_3d)

    def features(self, clips: Tensor) -> Tensor:
        """clips B 3 16 224 224 -> B 2048 (call in eval mode: BatchNorm uses its running statistics)."""
        return self.from_stem(self.conv1(clips))

    def crop_features(self, frames: Tensor, boxes: Sequence[CropBox], clips_per_forward: Optional[int] = None,
                      body: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:  # fmt: skip
        """frames B 3 16 H W (H, W ≥ 224), the crops' boxes -> B N 2048 (as ``from_stem``): ``features`` of every
        crop of every clip, with the stem computed once where the crops overlap (``CropStem``) when that is less work.

        ``clips_per_forward``: None runs the rest of the network (``body``, by default ``from_stem``) on all B·N
        crops at once; a number runs the stem one clip of frames (its N crops) at a time and ``body`` on that many
        crops at a time (smaller activations, which stay in the CPU's caches; one shape for a compiled ``body``)."""
        body = body or self.from_stem
        if clips_per_forward is None:
            return body(self._stem(frames, boxes)).view(frames.shape[0], len(boxes), -1)
        features = []
        for clip in frames.split(1):
            crops = self._stem(clip, boxes)
            features += [body(part) for part in crops.split(clips_per_forward)]
        return torch.cat(features).view(frames.shape[0], len(boxes), -1)

    def _stem(self, frames: Tensor, boxes: Sequence[CropBox]) -> Tensor:
        stem = CropStem(self.conv1, boxes)
        return stem(frames) if stem.pays else self.conv1(cut_crops(frames, boxes))

    def from_stem(self, x: Tensor) -> Tensor:
        """The stem convolution's output (B·N) 64 8 112 112 -> B·N 2048 (float32, or float64 in float64)."""
        x = self.relu(self.bn1(x))
        x = spatial_max_pool(temporal_pair_max(x), self.maxpool1)
        x = temporal_pair_max(self.layer1(x))  # pytorch-resnet3d's maxpool2: MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.avgpool(x.to(torch.promote_types(x.dtype, torch.float32))).flatten(1)  # bf16: a float32 mean


class I3DExtractor:
    """The network on a device: uint8 clip batches B 16 h w 3 (resized frames) -> float32 features B N 2048.

    ``network`` is left as it is: the extractor runs its ``inference_copy`` (BatchNorm folded, channels-last 3-D) in
    ``precision``: fp32, or bf16 weights and activations. In bf16 on a CPU the stem runs one clip of frames at a time
    and the rest of the network one crop at a time (faster per crop than a batch of them where bf16 is native: the
    activations stay in the caches), compiled when that pays (``anomaly.extraction.compiling``: ``compile_mode`` is its
    mode, ``clips`` the crops the run will extract when known, and the choice is said on ``log``). fp32, and bf16 on
    CUDA, run a whole batch in one forward, eager, unless ``compile_mode`` is ``compiled`` (on a CPU: one crop per
    forward, compiled; the benchmark measures it).
    """

    def __init__(self, network: I3DResNet50, device: torch.device, precision: str = "fp32",
                 clips: Optional[int] = None, compile_mode: str = "auto",
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)):  # fmt: skip
        check_choice(precision, NETWORK_PRECISIONS, "precision")
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = dtype_of(precision)
        self.network = network.inference_copy(self.dtype).to(self.device)
        # One crop per forward where bf16 gains from it, and wherever the body is compiled (one shape, one compile).
        per_crop = self.device.type == "cpu" and (precision == "bf16" or compile_mode == "compiled")
        self.clips_per_forward = 1 if per_crop else None
        self.body = NetworkBody(self.network.from_stem, compile_mode if per_crop else "eager", clips,
                                f"{precision} I3D", log)  # fmt: skip

    @torch.no_grad()
    def __call__(self, clips: Union[np.ndarray, torch.Tensor], preset: "Preset", num_crops: int) -> np.ndarray:
        clips = torch.as_tensor(clips).to(self.device, non_blocking=True)
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        frames = preset.normalise(clips).to(self.dtype)
        features = self.network.crop_features(frames, boxes, self.clips_per_forward, self.body)
        return features.cpu().numpy()


def load_i3d(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> I3DResNet50:
    """The network with the weights of ``path`` (``i3d_r50_kinetics.pth``), in eval mode.

    ``weights_only=True`` and ``strict=True``: a file of another network fails in one line naming it and the first
    missing or unexpected parameter.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, WEIGHTS_NOT_FOUND)
    state = model_state_of(load_checkpoint(path, map_location), path)
    with torch.device("meta"):  # no random initialisation of 28 M parameters that are replaced at once
        network = I3DResNet50()
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    load_model_weights(network, state, path, "the I3D ResNet-50 of i3d_r50_kinetics.pth", assign=True)
    return network.eval()


def seeded_state_dict() -> Dict[str, Tensor]:
    """Seeded weights, for measuring where the released ones are not at hand (the tests, ``s3r benchmark-bf16``):
    the rule of the reference features (../shared/reference/i3d/README.md), seed 0, entries in state_dict order;
    BatchNorm 1 + 0.1·N / 0.1·N, statistics 0 and 1, other weights N·sqrt(2 / fan_in), other biases 0.01·N (float64
    draws cast to float32)."""
    rng = np.random.default_rng(0)
    network = I3DResNet50()
    modules = dict(network.named_modules())
    state = {}
    for name, value in network.state_dict().items():
        owner, leaf = name.rsplit(".", 1)
        batch_norm = isinstance(modules[owner], nn.BatchNorm3d)
        shape = tuple(value.shape)
        if leaf == "num_batches_tracked":
            state[name] = torch.zeros_like(value)
            continue
        if leaf == "running_mean":
            array = np.zeros(shape)
        elif leaf == "running_var":
            array = np.ones(shape)
        elif batch_norm and leaf == "weight":
            array = 1 + 0.1 * rng.standard_normal(shape)
        elif batch_norm and leaf == "bias":
            array = 0.1 * rng.standard_normal(shape)
        elif leaf == "weight":
            array = rng.standard_normal(shape) * np.sqrt(2 / np.prod(shape[1:]))
        else:
            array = 0.01 * rng.standard_normal(shape)
        state[name] = torch.from_numpy(array.astype(np.float32))
    return state
