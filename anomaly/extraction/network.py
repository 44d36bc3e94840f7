"""The I3D ResNet-50 of pytorch-resnet3d (``I3Res50`` without non-local blocks) as a feature extractor.

Parameter names and shapes are those of ``i3d_r50_kinetics.pth`` (320 state_dict entries, the classifier ``fc``
included), so the released weights load with ``strict=True``. ``features`` is the eval-mode global average pool
of ``layer4``: clips B 3 16 224 224 (RGB, time, height, width) -> B 2048. About 32.8 GFLOP per clip.

The module as loaded is the released network, for loading and saving weights; ``inference_copy`` gives the form to
run: the same features, faster.
"""

import copy
from pathlib import Path
from typing import Iterator, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomaly.engine.checkpoint import load_checkpoint, load_model_weights, model_state_of

PathLike = Union[str, Path]
FEATURE_SIZE = 2048
CLIP_LENGTH = 16
CROP_SIZE = 224
GFLOP_PER_CLIP = 32.8
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

    def inference_copy(self) -> "I3DResNet50":
        """An eval-only copy that computes the same ``features`` (to float32 rounding) faster, on CPU and CUDA.

        - Every BatchNorm is folded into its convolution (``fold_batch_norm``) and replaced by ``nn.Identity``: one
          pass over each activation instead of two.
        - The convolution weights are channels-last 3-D (B C T H W stored as B T H W C), the layout of oneDNN's
          fastest CPU convolutions and of cuDNN's tensor-core ones, so that no layer reorders its input or output.
          Inputs should be channels-last 3-D too (``Preset.normalise`` gives that); the max-pools and the average
          pool keep the layout.

        Its state_dict is no longer the released layout (convolution biases, no BatchNorm entries): load and save
        weights with this module, run the copy. Parameters do not require gradients.
        """
        fast = copy.deepcopy(self).eval().requires_grad_(False)
        with torch.no_grad():
            for owner, conv, norm in fast._conv_norm_pairs():
                fold_batch_norm(getattr(owner, conv), getattr(owner, norm))
                setattr(owner, norm, nn.Identity())
        return fast.to(memory_format=torch.channels_last_3d)

    def features(self, clips: Tensor) -> Tensor:
        """clips B 3 16 224 224 -> B 2048 (call in eval mode: BatchNorm uses its running statistics)."""
        x = self.relu(self.bn1(self.conv1(clips)))
        x = spatial_max_pool(temporal_pair_max(x), self.maxpool1)
        x = temporal_pair_max(self.layer1(x))  # pytorch-resnet3d's maxpool2: MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.avgpool(x).flatten(1)


def load_i3d(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> I3DResNet50:
    """The network with the weights of ``path`` (``i3d_r50_kinetics.pth``), in eval mode.

    ``weights_only=True`` and ``strict=True``: a file of another network fails in one line naming it and the first
    missing or unexpected parameter.
    """
    path = Path(path)
    state = model_state_of(load_checkpoint(path, map_location), path)
    with torch.device("meta"):  # no random initialisation of 28 M parameters that are replaced at once
        network = I3DResNet50()
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    load_model_weights(network, state, path, "the I3D ResNet-50 of i3d_r50_kinetics.pth", assign=True)
    return network.eval()
