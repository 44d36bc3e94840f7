"""The model, losses and one optimiser step reproduce the published code number for number."""

import json

import pytest
import torch

from anomaly.engine import make_optimizer, train_step
from anomaly.losses import s3r_losses
from anomaly.models import S3R
from tests.conftest import FORWARD_REL, GRADIENT_REL, assert_close_to_scale, shared_path

LR = 1e-3
WEIGHT_DECAY = 5e-3

LOSS_NAMES = {
    "loss_magnitude": "magnitude",
    "loss_sparse": "sparsity",
    "loss_smooth": "smoothness",
    "loss_macro": "macro",
    "loss_total": "total",
}


def small_model(s3r_small, device="cpu"):
    config = s3r_small["config"]
    model = S3R(config["feature_size"], batch_size=config["batch_size"], dropout=config["dropout"])
    model.load_state_dict(s3r_small["init_state"], strict=True)
    for name, tensor in model.state_dict().items():  # the fixture's weights, not a default initialisation
        assert torch.equal(tensor, s3r_small["init_state"][name]), name
    return model.to(device)


def train_inputs(s3r_small, device="cpu"):
    video = s3r_small["train_video"].to(device)
    dictionary = s3r_small["dictionary"].to(device).unsqueeze(0).expand(video.shape[0], -1, -1)
    return video, dictionary


def assert_informative(expected, name):
    """A reference that a broken model could not match by chance: finite, and not one constant (all zeros, all
    0.5 from zero weights before a sigmoid)."""
    expected = expected.double()
    assert torch.isfinite(expected).all(), name
    if expected.numel() > 1:
        assert float(expected.std()) > 100 * FORWARD_REL * float(expected.abs().max()), f"{name} is constant"
    else:
        assert float(expected) != 0, f"{name} is zero"


def check_train_forward(s3r_small, device, rel):
    model = small_model(s3r_small, device).train()
    outputs = model(*train_inputs(s3r_small, device))
    for name, expected in s3r_small["train_outputs"].items():
        if name.startswith("loss_"):
            continue
        assert_informative(expected, name)
        assert_close_to_scale(outputs[name], expected, rel=rel, name=name)
    losses = s3r_losses(outputs, batch_size=s3r_small["config"]["batch_size"])
    for reference_name, name in LOSS_NAMES.items():
        assert_informative(s3r_small["train_outputs"][reference_name], reference_name)
        assert_close_to_scale(losses[name], s3r_small["train_outputs"][reference_name], rel=rel, name=name)


def adam_gradients(s3r_small, device):
    """The gradient Adam sees on the first step (loss gradient plus weight decay · weight), per parameter."""
    model = small_model(s3r_small, device).train()
    half = s3r_small["config"]["batch_size"]
    s3r_losses(model(*train_inputs(s3r_small, device)), batch_size=half)["total"].backward()
    return {
        name: (parameter.grad + WEIGHT_DECAY * parameter.detach()).cpu()
        for name, parameter in model.named_parameters()
        if parameter.grad is not None  # the unused projections get no gradient and no step
    }


def check_one_step(s3r_small, device, rel):
    """One Adam step (lr 1e-3, weight decay 5e-3) gives the published weights and BatchNorm statistics.

    Adam's first step moves every element by lr · g / (|g| + 1e-8): lr · sign(g) for a real gradient, insensitive
    to rounding. For an element whose gradient is float32 rounding noise (the bias of ``cache_embedding``, whose
    true gradient is zero because a softmax ignores a shift shared by all atoms) the step's sign follows the noise.
    Such noise-only elements are those with |g| <= GRADIENT_REL · (the largest |g| of the model), the rounding bound
    of a gradient (see tests/conftest.py); there only the Adam bound |step| <= lr holds.
    """
    gradients = adam_gradients(s3r_small, device)
    largest = max(float(gradient.abs().max()) for gradient in gradients.values())
    noise_only = {name: gradient.abs() <= GRADIENT_REL * largest for name, gradient in gradients.items()}
    model = small_model(s3r_small, device)
    video, dictionary = train_inputs(s3r_small, device)
    half = s3r_small["config"]["batch_size"]
    train_step(model, make_optimizer(model, lr=LR), video[:half], video[half:], dictionary[0])
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    expected_state, initial_state = s3r_small["state_after_one_step"], s3r_small["init_state"]
    assert state.keys() == expected_state.keys()
    # The step is informative: it moved almost every parameter that has a gradient, and at least 95 % of them are
    # compared element by element below (at most 5 % are noise-only, held only to the Adam bound).
    stepped = sum(gradient.numel() for gradient in gradients.values())
    moved = sum(int((expected_state[name] != initial_state[name]).sum()) for name in gradients)
    assert moved > 0.95 * stepped
    assert sum(int(mask.sum()) for mask in noise_only.values()) < 0.05 * stepped
    for name, expected in expected_state.items():
        actual, initial = state[name], initial_state[name]
        if name in noise_only:
            noisy = noise_only[name]
            adam_bound = LR * (1 + FORWARD_REL)  # |step| <= lr, and the subtraction rounds once
            assert ((expected - initial)[noisy].abs() <= adam_bound).all(), name
            assert ((actual - initial)[noisy].abs() <= adam_bound).all(), name
            actual, expected = actual[~noisy], expected[~noisy]
        # One rounding of p - step and the BatchNorm running statistics of a forward pass: the forward bound.
        assert_close_to_scale(actual, expected, rel=rel, name=name)


def check_eval_scores(s3r_small, device, rel):
    model = small_model(s3r_small, device).eval()
    video = s3r_small["test_video"].to(device).permute(0, 2, 1, 3)  # stored 1 T N C -> 1 N T C
    dictionary = s3r_small["dictionary"].to(device).unsqueeze(0)
    with torch.no_grad():
        outputs = model(video, dictionary)
        scores = model.snippet_scores(video, dictionary)
    assert_informative(s3r_small["test_video_scores"], "video_scores")
    assert_close_to_scale(outputs["video_scores"], s3r_small["test_video_scores"], rel=rel, name="video_scores")
    assert_close_to_scale(scores[0], s3r_small["test_snippet_scores"], rel=rel, name="snippet scores")


# CUDA: other kernels (cuDNN convolutions, TF32 off) with their own summation orders: the gradient bound.
DEVICES = [pytest.param("cpu", FORWARD_REL, id="cpu")] + [
    pytest.param(
        "cuda",
        GRADIENT_REL,
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
    )
]


@pytest.mark.parity
@pytest.mark.parametrize("device,rel", DEVICES)
def test_train_mode_outputs_and_losses_equal_the_published_code(s3r_small, device, rel):
    check_train_forward(s3r_small, device, rel)


@pytest.mark.parity
@pytest.mark.parametrize("device,rel", DEVICES)
def test_one_adam_step_gives_the_published_weights(s3r_small, device, rel):
    check_one_step(s3r_small, device, rel)


@pytest.mark.parity
@pytest.mark.parametrize("device,rel", DEVICES)
def test_eval_mode_snippet_scores_equal_the_published_evaluator(s3r_small, device, rel):
    check_eval_scores(s3r_small, device, rel)


def test_full_size_state_dict_has_the_released_checkpoint_layout():
    layout = json.loads(shared_path("reference", "s3r_2048_state_dict_keys.json").read_text())
    state = S3R(2048).state_dict()
    assert [(name, list(tensor.shape)) for name, tensor in state.items()] == [
        (name, list(shape)) for name, shape in layout
    ]
    assert sum(tensor.numel() for tensor in state.values()) == 81_438_852


def test_a_state_dict_with_the_released_layout_loads_strictly():
    layout = json.loads(shared_path("reference", "s3r_2048_state_dict_keys.json").read_text())
    generator = torch.Generator().manual_seed(0)
    released = {
        name: (torch.tensor(3) if not shape else torch.randn(*shape, generator=generator)) for name, shape in layout
    }
    model = S3R(2048)
    model.load_state_dict(released, strict=True)
    assert torch.equal(model.state_dict()["video_classifier.6.weight"], released["video_classifier.6.weight"])


def test_initial_weights_are_xavier_with_zero_biases_and_identity_non_local():
    model = S3R(64, batch_size=2)
    state = model.state_dict()
    assert torch.count_nonzero(state["video_classifier.0.bias"]) == 0
    assert torch.count_nonzero(state["video_embedding.0.non_local.alter.1.weight"]) == 0
    bound = (6 / (64 + 16)) ** 0.5  # xavier-uniform bound of a 64 -> 16 linear layer
    assert state["en_normal.en_normal_module.query_embedding.weight"].abs().max() <= bound


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_short_videos_are_scored_not_a_crash(length):
    torch.manual_seed(0)
    model = S3R(64, batch_size=2).eval()
    video = torch.rand(1, 3, length, 64)
    with torch.no_grad():
        outputs = model(video, torch.rand(1, 5, 64))
    assert outputs["video_scores"].shape == (1, length, 1)
    assert outputs["feature_select_anomaly"].shape == (3, min(3, length), 64)
    assert torch.isfinite(outputs["video_scores"]).all()


def test_a_batch_of_normal_videos_only_uses_them_for_both_halves():
    torch.manual_seed(0)
    model = S3R(64, batch_size=4).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 8, 64), torch.rand(2, 5, 64))
    assert torch.equal(outputs["anomaly_score"], outputs["regular_score"])


def test_a_quantize_size_below_10_still_selects_one_snippet():
    torch.manual_seed(0)
    model = S3R(64, batch_size=1, quantize_size=5).train()
    outputs = model(torch.rand(2, 3, 5, 64), torch.rand(2, 4, 64))
    assert outputs["feature_select_anomaly"].shape == (3, 1, 64)
    assert torch.isfinite(outputs["anomaly_score"]).all()
