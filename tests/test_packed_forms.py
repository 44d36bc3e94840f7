"""Every module's packed form (many videos at once, ``anomaly.models.packing``) computes its ``forward`` on each
video alone: a change to one form only fails here, module by module (the whole scorer: test_kernels, test_benchmark).

Videos of 1 to 33 snippets (3 crops) share one chunk; each module's eval-mode ``forward`` runs on each video's
crops alone. Forward values: within FORWARD_REL of their scale (tests/conftest.py). Marked parity: the packed
forms are the evaluation's, so .ci/run checks them with the portable kernels too.
"""

import pytest
import torch

from anomaly.models import S3R
from anomaly.models.aggregate import PackedAggregate, PackedNonLocal
from anomaly.models.kernel_choice import KernelChoice
from anomaly.models.packing import KERNELS, PackedChunk, body
from anomaly.models.s3r import PackedClassifier, PackedDeNormal, PackedEnNormal, packed_time_mean
from tests.conftest import assert_close_to_scale, trained_like_batchnorm

LENGTHS = (1, 9, 4, 33, 2)
CROPS = 3


@pytest.fixture(autouse=True)
def without_autograd():
    """Packed forms serve evaluation only: PackedScorer runs them without autograd."""
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return trained_like_batchnorm(S3R(64, batch_size=2)).eval()


@pytest.fixture(scope="module")
def chunk():
    return PackedChunk.plan(LENGTHS, CROPS, torch.device("cpu"))


def videos_of(channels):
    """One N T C input per video of LENGTHS."""
    return [torch.rand(CROPS, length, channels) for length in LENGTHS]


def rows_of(chunk, rows, video):
    """The rows (body rows × channels) of one video's crops: N T channels."""
    return rows.view(len(chunk.lengths), chunk.num_crops, chunk.pitch, -1)[video, :, : chunk.lengths[video]]


@pytest.mark.parity
def test_packed_non_local_equals_the_module(model, chunk):
    block = model.video_embedding[0].non_local
    videos = videos_of(block.in_channels)
    x = body(chunk.pack(videos, torch.float32), chunk.body_rows)
    PackedNonLocal(block, torch.float32)(x, chunk)
    for index, video in enumerate(videos):
        expected = block(video.transpose(1, 2)).transpose(1, 2)
        assert_close_to_scale(rows_of(chunk, x, index), expected, name=f"video {index}")
    assert not x[chunk.tail_rows].any()


@pytest.mark.parity
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("folded", [False, True])
def test_packed_aggregate_equals_the_module(model, chunk, kernel, folded):
    """With a basis (the dictionary folded in), the input is coefficients of it, as ``Aggregate.forward`` takes."""
    block = model.macro_embedding[0]
    basis = torch.rand(6, 64) if folded else None
    videos = videos_of(6 if folded else 64)
    source = chunk.pack(videos, torch.float32)
    fused = PackedAggregate(block, torch.float32, KernelChoice(), basis, kernel)(source, chunk)
    residual = body(source, chunk.body_rows)
    output = fused + (residual if basis is None else residual @ basis)
    for index, video in enumerate(videos):
        assert_close_to_scale(rows_of(chunk, output, index), block(video, basis), name=f"video {index}")


@pytest.mark.parity
def test_packed_en_normal_equals_the_module(model, chunk):
    module = model.en_normal.en_normal_module
    dictionary = torch.rand(6, 64)
    videos = videos_of(64)
    packed = PackedEnNormal(module, dictionary, torch.float32)
    x = body(chunk.pack(videos, torch.float32), chunk.body_rows)
    attention = packed.attention(x, chunk)
    reconstruction = torch.empty_like(x)
    packed.reconstruction_(attention, reconstruction)
    means = packed.reconstruction_mean(attention, chunk).view(len(LENGTHS), CROPS, -1)
    for index, video in enumerate(videos):
        expected, expected_attention = module(video, dictionary.unsqueeze(0))  # N T C, 1 (N T) S
        name = f"video {index}"
        assert_close_to_scale(rows_of(chunk, attention, index), expected_attention.view(CROPS, -1, 6), name=name)
        assert_close_to_scale(rows_of(chunk, reconstruction, index), expected, name=name)
        assert_close_to_scale(means[index], expected.mean(dim=1), name=name)


@pytest.mark.parity
def test_packed_de_normal_equals_the_module(model, chunk):
    module = model.de_normal
    videos, macros = videos_of(64), videos_of(64)
    x = body(chunk.pack(videos, torch.float32), chunk.body_rows)
    macro_mean = packed_time_mean(body(chunk.pack(macros, torch.float32), chunk.body_rows), chunk)
    gated = PackedDeNormal(module)(x, macro_mean, chunk)
    for index, (video, macro) in enumerate(zip(videos, macros)):
        assert_close_to_scale(rows_of(chunk, gated, index), module(video, macro)[0], name=f"video {index}")


@pytest.mark.parity
def test_packed_classifier_equals_the_module(model, chunk):
    classifier = model.video_classifier
    videos = videos_of(64)
    scores = PackedClassifier(classifier, torch.float32)(body(chunk.pack(videos, torch.float32), chunk.body_rows), chunk)
    for index, video in enumerate(videos):
        expected = classifier(video).mean(dim=0)[:, 0]  # crop average: T
        assert_close_to_scale(scores[index, : LENGTHS[index]], expected, name=f"video {index}")


def test_a_classifier_layer_without_a_packed_form_is_refused():
    with pytest.raises(ValueError, match="the packed classifier has no form of Tanh"):
        PackedClassifier(torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Tanh()), torch.float32)
