"""What bf16 changes in I3D features, and in the scores of a detector that reads them, measured.

**bf16 where it is emulated.** Where the CPU has no bf16 instructions PyTorch emulates bf16 convolutions (about 1
GFLOP/s on an AVX2 CPU: minutes per clip), so the features are computed by :class:`SimulatedBf16`: the float32
network with the bf16 network's weights (the same values), whose input, every convolution's output and every
residual sum are rounded to bf16, as the bf16 network stores them; the products accumulate in float32, as bf16
kernels accumulate them. The rounding happens at the same places with the same values as on a CPU that computes
bf16 natively; only the order of each float32 accumulation differs, which flips a rounding now and then, and the
network carries such flips on: the two computations are two draws of the same bf16 error, equal in size, not
element by element (``tests/test_extraction_bf16.py`` holds both to the same bound).

**The bound.** Each bf16 rounding changes a value by at most ``BF16_UNIT_ROUNDOFF`` (2^-8) of itself; independent
roundings add up in quadrature, and a network whose layers keep the scale of their input (BatchNorm folded into
them) carries them to the features at about their size. The longest path from a clip to the features passes
``rounding_stages`` roundings (the clip, the stem, and per bottleneck its three convolutions and the residual sum:
66), so the features' relative L2 error is expected within ``BF16_UNIT_ROUNDOFF · sqrt(66)`` ≈ 3.2 %
(:func:`feature_error_bound`).
"""

import math
from typing import Union

import numpy as np
import torch
from torch import Tensor, nn

from anomaly.extraction.network import Bottleneck, I3DResNet50
from anomaly.extraction.preprocess import Preset
from anomaly.precision import BF16_UNIT_ROUNDOFF


def round_to_bf16(x: Tensor) -> Tensor:
    """``x`` rounded to the nearest bfloat16, kept in its dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


def rounding_stages(network: I3DResNet50) -> int:
    """The bf16 roundings on the longest path from a clip to the features (see the module docstring)."""
    blocks = sum(len(stage) for stage in (network.layer1, network.layer2, network.layer3, network.layer4))
    return 2 + 4 * blocks


def feature_error_bound(network: I3DResNet50) -> float:
    """The relative L2 error of bf16 features against fp32 ones that bf16's rounding explains (module docstring)."""
    return BF16_UNIT_ROUNDOFF * math.sqrt(rounding_stages(network))


class SimulatedBf16:
    """The bf16 network computed in float32, rounding to bf16 where the bf16 network stores bf16 (see the module
    docstring); called as ``FeatureExtractor`` is: uint8 clips B 16 h w 3 -> float32 features B N 2048."""

    def __init__(self, network: I3DResNet50, device: Union[str, torch.device] = "cpu"):
        self.device = torch.device(device)
        self.network = network.inference_copy(torch.bfloat16).float().to(self.device)
        for module in self.network.modules():
            if isinstance(module, (nn.Conv3d, Bottleneck)):
                module.register_forward_hook(lambda _module, _inputs, output: round_to_bf16(output))

    @torch.no_grad()
    def __call__(self, clips: Union[np.ndarray, Tensor], preset: Preset, num_crops: int) -> np.ndarray:
        clips = torch.as_tensor(clips).to(self.device)
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        frames = round_to_bf16(preset.normalise(clips))
        # The shared stem convolves the frames itself (no module call to hook): its output is rounded here.
        body = lambda x: self.network.from_stem(round_to_bf16(x))  # noqa: E731
        return self.network.crop_features(frames, boxes, body=body).cpu().numpy()
