"""How s3r watch and s3r detect score a window: the model's packed scorer (evaluation's fast path), built once per
detector, gives ``S3R.snippet_scores`` in eval mode for any window length and crop count; its work is the window's
own, with nothing per call (no weights folded again, no measurement sample drawn).

Tolerance. The packed scorer computes the same function as ``snippet_scores`` with its float32 sums taken in another
order (the dictionary folded into other products, kernel-3 convolutions as shifted matrix products, BatchNorm folded
into a convolution). Each layer's sums have at most K = 3·C terms (6,144 at 2048 channels), so each layer's result
moves by about sqrt(K)·2^-24 ≈ 5e-6 of its terms' scale; GroupNorm rescales what follows, and the final sigmoid
only shrinks differences (its slope s·(1 - s) is at most 1/4 and at most s), so a score moves by less than
FORWARD_REL (1e-5, tests/conftest.py, for sums of up to 10^4 terms) of the scores' scale. The summation orders
depend on the kernel set and thread count, hence the parity mark (CI runs these again with the portable kernels
on one thread).
"""

import pytest
import torch
import torch.nn.functional as F

from anomaly.benchmark.detector import counted_run
from anomaly.detection import window_scorer
from anomaly.engine.detector_file import Detector, FeatureSpec
from anomaly.models import S3R
from anomaly.models.packing import GAP
from tests.conftest import FORWARD_REL, assert_close_to_scale, trained_like_batchnorm

LENGTHS = (1, 2, 5, 16, 33)
CROPS = (1, 5, 10)


def detector_of(channels: int, atoms: torch.Tensor, crops: int, seed: int = 0) -> Detector:
    """A detector of ``channels`` channels with every branch active (non-zero non-local BatchNorm, as after
    training) and a classifier scaled so that the scores spread over (0, 1) instead of saturating."""
    torch.manual_seed(seed)
    model = trained_like_batchnorm(S3R(channels))
    with torch.no_grad():
        model.video_classifier[6].weight.mul_(0.05)
    return Detector(model.eval(), atoms.unsqueeze(0), FeatureSpec("i3d", "rtfm", crops, channels))


def i3d_like(crops: int, length: int, channels: int, generator: torch.Generator) -> torch.Tensor:
    """Features shaped as I3D's are: non-negative and sparse-ish (pooled ReLU activations), smooth in time, their
    norm varying from snippet to snippet. N T C."""
    scene = torch.randn(1, 1, channels, generator=generator)
    steps = torch.randn(crops, length, channels, generator=generator)
    drift = steps.cumsum(dim=1) / (1 + torch.arange(length)).sqrt().view(1, -1, 1)
    gain = 1 + torch.rand(1, length, 1, generator=generator)
    return F.softplus(scene + 0.5 * drift - 1) * gain


def expected_scores(detector: Detector, video: torch.Tensor) -> torch.Tensor:
    """``S3R.snippet_scores`` in eval mode: T scores, which differ from snippet to snippet (a comparison with
    constant scores would say little)."""
    with torch.no_grad():
        scores = detector.model.snippet_scores(video.unsqueeze(0), detector.dictionary)[0, :, 0]
    if len(scores) > 1:
        assert float(scores.max() - scores.min()) > 100 * FORWARD_REL * float(scores.abs().max())
    return scores


@pytest.mark.parity
@pytest.mark.parametrize("crops", CROPS)
def test_windows_of_every_length_and_crop_count_score_as_the_model_does(crops):
    generator = torch.Generator().manual_seed(crops)
    detector = detector_of(128, torch.rand(12, 128, generator=generator), crops)
    score = window_scorer(detector, longest=max(LENGTHS))
    for length in LENGTHS:
        video = torch.rand(crops, length, 128, generator=generator)
        expected = expected_scores(detector, video)
        actual = score(video)
        assert actual.dtype == torch.float32 and actual.shape == (length,)
        assert_close_to_scale(actual, expected, rel=FORWARD_REL, name=f"{crops} crops, T = {length}")


@pytest.mark.parity
def test_full_size_windows_of_i3d_like_features_score_as_the_model_does():
    """2048 channels and 158 atoms (ShanghaiTech's dictionary), atoms drawn from features like the videos', one
    crop (live scoring's; the crop counts are the test above's)."""
    generator = torch.Generator().manual_seed(7)
    atoms = i3d_like(1, 158, 2048, generator)[0]
    detector = detector_of(2048, atoms, crops=1)
    score = window_scorer(detector, longest=16)
    for length in (1, 16, 33):  # 33: longer than the window the kernels were measured on
        video = i3d_like(1, length, 2048, generator)
        expected = expected_scores(detector, video)
        assert_close_to_scale(score(video), expected, rel=FORWARD_REL, name=f"T = {length}")


def test_in_bf16_a_window_is_scored_with_bfloat16_products_close_to_float32():
    """As the network's precision: bfloat16 keeps 8 significant bits (u = 2^-9 ≈ 2e-3 per rounding); about ten
    layers of such rounding reach the scores, which are sigmoids (scale <= 1): within 10 u ≈ 2e-2 of float32, and
    not equal to them (the products did run in bfloat16)."""
    generator = torch.Generator().manual_seed(3)
    detector = detector_of(128, torch.rand(12, 128, generator=generator), crops=5)
    video = torch.rand(5, 16, 128, generator=generator)
    expected = expected_scores(detector, video)
    scores = window_scorer(detector, "bf16", longest=16)(video)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=0, atol=2e-2)
    assert not torch.equal(scores, window_scorer(detector, "fp32", longest=16)(video))


def test_a_window_costs_its_own_work_and_draws_nothing():
    """Once built, scoring a window does work in proportion to its rows (T + GAP per crop: no weights folded or
    reordered per call) and draws no random numbers (no kernel measurement sample once the kernels are chosen)."""
    detector = detector_of(128, torch.rand(100, 128), crops=2)  # folding 100 atoms per call would outweigh a window
    score = window_scorer(detector, longest=16)
    windows = {length: torch.rand(2, length, 128) for length in (1, 16)}
    for window in windows.values():
        score(window)  # any first-call work done
    flops = {length: counted_run(lambda: score(window), torch.device("cpu"), torch.float32)[0]
             for length, window in windows.items()}  # fmt: skip
    # Per sequence, not per row: the channel gate and the time means, a few per cent at these sizes.
    assert flops[1] == pytest.approx(flops[16] * (1 + GAP) / (16 + GAP), rel=0.05)
    # One crop is one sequence: the buffer's borders are its zeros, no rows are computed past its snippets.
    alone = window_scorer(detector_of(128, torch.rand(100, 128), crops=1), longest=16)
    one_crop = {length: counted_run(lambda: alone(torch.rand(1, length, 128)), torch.device("cpu"), torch.float32)[0]
                for length in (8, 16)}  # fmt: skip
    assert one_crop[16] == pytest.approx(2 * one_crop[8], rel=0.05)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        score(windows[16])
    drawn = [event.key for event in profile.key_averages() if event.key in ("aten::uniform_", "aten::normal_")]
    assert drawn == []
