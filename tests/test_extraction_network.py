"""The I3D ResNet-50: the published state_dict layout, the seeded-weights features, loading errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from anomaly.errors import InputError
from anomaly.extraction.network import I3DResNet50, load_i3d, spatial_max_pool, temporal_pair_max
from anomaly.models.s3r import S3R
from tests.conftest import shared_path
from tests.extraction_helpers import seeded_state_dict


def test_state_dict_has_the_published_names_and_shapes():
    expected = json.loads(shared_path("reference", "i3d", "i3d_r50_state_dict_keys.json").read_text())
    actual = [[name, list(value.shape)] for name, value in I3DResNet50().state_dict().items()]
    assert len(expected) == 320
    assert actual == expected


def test_seeded_weights_give_the_reference_features(tmp_path):
    reference = np.load(shared_path("reference", "i3d", "i3d_r50_features_seed0.npy"))
    weights = tmp_path / "seeded.pth"
    torch.save(seeded_state_dict(), weights)
    network = load_i3d(weights)
    clips = np.random.default_rng(1).uniform(-1, 1, (2, 3, 16, 224, 224)).astype(np.float32)
    with torch.no_grad():
        features = network.features(torch.from_numpy(clips)).numpy()
    assert features.shape == (2, 2048) and features.dtype == np.float32
    # Bound relative to the feature scale: CPU kernel sets round differently.
    assert np.abs(features - reference).max() <= 1e-4 * np.abs(reference).max()


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
