"""The I3D ResNet-50: the published state_dict layout, the seeded-weights features (of the module as released and of
its inference copy), loading errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from anomaly.errors import InputError
from anomaly.extraction.network import (
    CropStem,
    I3DResNet50,
    cut_crops,
    load_i3d,
    spatial_max_pool,
    temporal_pair_max,
)
from anomaly.extraction.preprocess import PRESETS
from anomaly.models.s3r import S3R
from tests.conftest import assert_close_to_scale, shared_path
from tests.extraction_helpers import seeded_state_dict


def test_state_dict_has_the_published_names_and_shapes():
    expected = json.loads(shared_path("reference", "i3d", "i3d_r50_state_dict_keys.json").read_text())
    actual = [[name, list(value.shape)] for name, value in I3DResNet50().state_dict().items()]
    assert len(expected) == 320
    assert actual == expected


def channels_last(clips: torch.Tensor) -> torch.Tensor:
    return clips.contiguous(memory_format=torch.channels_last_3d)


# How each form is run: the module as released on default-layout clips, and the extraction pipeline's form (its
# inference copy, on channels-last clips as Preset.normalise gives them).
FORMS = {
    "released": lambda network, clips: network.features(clips),
    "inference copy": lambda network, clips: network.inference_copy().features(channels_last(clips)),
}


@pytest.mark.parametrize("form", FORMS)
def test_seeded_weights_give_the_reference_features(tmp_path, form):
    reference = np.load(shared_path("reference", "i3d", "i3d_r50_features_seed0.npy"))
    weights = tmp_path / "seeded.pth"
    torch.save(seeded_state_dict(), weights)
    network = load_i3d(weights)
    clips = np.random.default_rng(1).uniform(-1, 1, (2, 3, 16, 224, 224)).astype(np.float32)
    with torch.no_grad():
        features = FORMS[form](network, torch.from_numpy(clips)).numpy()
    assert features.shape == (2, 2048) and features.dtype == np.float32
    # Bound relative to the feature scale: CPU kernel sets round differently.
    assert np.abs(features - reference).max() <= 1e-4 * np.abs(reference).max()


def test_the_inference_copy_gives_the_features_of_the_module_it_copies():
    """BatchNorm with running statistics far from 0 and 1 (as after training), so that folding them matters."""
    network = I3DResNet50()
    network.load_state_dict(seeded_state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.3, 3, generator=generator)
    released = {name: value.clone() for name, value in network.state_dict().items()}
    clips = torch.rand(2, 3, 16, 96, 112, generator=generator) * 2 - 1  # H != W: a swapped axis would show

    fast = network.eval().inference_copy()
    with torch.no_grad():
        expected = network.features(clips)
        actual = fast.features(channels_last(clips))
    assert_close_to_scale(actual, expected, name="features")
    assert not fast.training and not any(isinstance(module, nn.BatchNorm3d) for module in fast.modules())
    convolutions = [module for module in fast.modules() if isinstance(module, nn.Conv3d)]
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last_3d) for conv in convolutions)
    state = network.state_dict()  # the module copied is untouched: still the released layout and values
    assert list(state) == list(released) and all(torch.equal(state[name], released[name]) for name in state)


@pytest.mark.parametrize("preset, height, width", [
    ("gowtham", 256, 340),  # every corner even: one frame convolution per image
    ("rtfm", 256, 341),  # odd right corner: two column phases
    ("rtfm", 455, 256),  # portrait 16:9, odd bottom corner
])  # fmt: skip
@pytest.mark.parametrize("num_crops", [10, 5, 1])
def test_the_shared_stem_is_the_stem_of_each_crop(preset, height, width, num_crops):
    torch.manual_seed(0)
    conv = I3DResNet50().conv1.requires_grad_(False)
    conv.bias = nn.Parameter(torch.rand(64), requires_grad=False)  # as after folding BatchNorm into it
    frames = channels_last(torch.rand(2, 3, 4, height, width) * 2 - 1)  # 4 frames: the stem is per clip anyway
    boxes = PRESETS[preset].crop_boxes(height, width, num_crops)
    stem = CropStem(conv, boxes)
    assert stem.pays == (num_crops > 1)  # one crop alone: its own convolution is less work
    with torch.no_grad():
        assert_close_to_scale(stem(frames), conv(cut_crops(frames, boxes)), name="stem")


def test_crop_features_are_the_features_of_each_crop():
    """Crops of a frame and of its flip, at even and odd corners, through the pipeline's form of the network."""
    network = I3DResNet50()
    network.load_state_dict(seeded_state_dict())
    fast = network.eval().inference_copy()
    frames = channels_last(torch.rand(1, 3, 16, 256, 300, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    boxes = [(False, 0, 0), (True, 16, 59), (False, 32, 76)]
    with torch.no_grad():
        features = fast.crop_features(frames, boxes)
        expected = network.features(cut_crops(frames, boxes).contiguous())
    assert features.shape == (1, 3, 2048)
    assert_close_to_scale(features.view(3, 2048), expected, name="features")


def test_weights_of_another_network_are_refused_naming_the_first_missing_key(tmp_path):
    weights = tmp_path / "s3r.pth"
    torch.save(S3R(64).state_dict(), weights)
    with pytest.raises(InputError) as error:
        load_i3d(weights)
    message = str(error.value)
    assert message.startswith(f"{weights}: ") and "\n" not in message
    assert "conv1.weight" in message and "video_embedding" in message


def test_one_wrong_shape_is_named(tmp_path):
    state = I3DResNet50().state_dict()
    state["fc.weight"] = torch.zeros(10, 2048)
    weights = tmp_path / "i3d_r50_ucf101.pth"
    torch.save(state, weights)
    with pytest.raises(InputError, match=r"fc.weight is \[10, 2048\] here but \[400, 2048\]"):
        load_i3d(weights)


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint at all"])
def test_missing_or_unreadable_weights(tmp_path, content):
    weights = tmp_path / "i3d_r50_kinetics.pth"
    if content is not None:
        weights.write_bytes(content)
    with pytest.raises(InputError) as error:
        load_i3d(weights)
    assert str(error.value).startswith(f"{weights}: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("frames", [16, 8, 7])
def test_the_split_max_pools_equal_pytorch_resnet3d_pools_exactly(frames):
    clips = torch.randn(2, 4, frames, 17, 23)
    pool = nn.MaxPool3d((2, 3, 3), stride=(2, 2, 2))
    assert torch.equal(spatial_max_pool(temporal_pair_max(clips), pool), pool(clips))
    assert torch.equal(temporal_pair_max(clips), nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))(clips))
