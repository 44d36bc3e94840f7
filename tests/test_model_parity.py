"""The model, losses and one optimiser step reproduce the published code number for number."""

import json

import pytest
import torch

from anomaly.engine import make_optimizer, train_step
from anomaly.losses import s3r_losses
from anomaly.models import S3R
from tests.conftest import assert_close, shared_path

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
    return model.to(device)


def train_inputs(s3r_small, device="cpu"):
    video = s3r_small["train_video"].to(device)
    dictionary = s3r_small["dictionary"].to(device).unsqueeze(0).expand(video.shape[0], -1, -1)
    return video, dictionary


def check_train_forward(s3r_small, device, rtol):
    model = small_model(s3r_small, device).train()
    outputs = model(*train_inputs(s3r_small, device))
    for name, expected in s3r_small["train_outputs"].items():
        if name.startswith("loss_"):
            continue
        assert_close(outputs[name].cpu(), expected, rtol=rtol, atol=rtol / 10, name=name)
    losses = s3r_losses(outputs, batch_size=s3r_small["config"]["batch_size"])
    for reference_name, name in LOSS_NAMES.items():
        assert_close(losses[name].cpu(), s3r_small["train_outputs"][reference_name], rtol=rtol, name=name)


def adam_noise_dominated(s3r_small, device):
    """Elements whose gradient (with weight decay) is within 100 Adam epsilons of zero.

    Adam's first step moves every element by lr · g / (|g| + 1e-8): about lr · sign(g) for real gradients, but
    for a gradient that is float32 rounding noise (for instance the bias of ``cache_embedding``, whose true
    gradient is exactly zero because a softmax ignores a shift shared by all atoms) the step follows the noise,
    which depends on summation order. There only the Adam bound |step| <= lr can be compared.
    """
    model = small_model(s3r_small, device).train()
    half = s3r_small["config"]["batch_size"]
    s3r_losses(model(*train_inputs(s3r_small, device)), batch_size=half)["total"].backward()
    return {
        name: (parameter.grad + 5e-3 * parameter.detach()).abs() < 1e-6
        for name, parameter in model.named_parameters()
        if parameter.grad is not None  # the unused projections get no gradient and no step
    }


def check_one_step(s3r_small, device, rtol):
    lr = 1e-3
    noise_dominated = adam_noise_dominated(s3r_small, device)
    model = small_model(s3r_small, device)
    video, dictionary = train_inputs(s3r_small, device)
    half = s3r_small["config"]["batch_size"]
    train_step(model, make_optimizer(model, lr=lr), video[:half], video[half:], dictionary[0])
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    expected_state = s3r_small["state_after_one_step"]
    assert state.keys() == expected_state.keys()
    loosened = sum(int(mask.sum()) for name, mask in noise_dominated.items() if "cache_embedding.bias" not in name)
    assert loosened < 0.01 * sum(tensor.numel() for tensor in state.values())
    for name, expected in expected_state.items():
        actual = state[name]
        if name in noise_dominated:
            noisy = noise_dominated[name].cpu()
            initial = s3r_small["init_state"][name]
            assert ((expected - initial)[noisy].abs() <= lr * 1.001).all(), name
            assert ((actual - initial)[noisy].abs() <= lr * 1.001).all(), name
            actual, expected = actual[~noisy], expected[~noisy]
        assert_close(actual, expected, rtol=rtol, atol=rtol / 10, name=name)


def check_eval_scores(s3r_small, device, rtol):
    model = small_model(s3r_small, device).eval()
    video = s3r_small["test_video"].to(device).permute(0, 2, 1, 3)  # stored 1 T N C -> 1 N T C
    dictionary = s3r_small["dictionary"].to(device).unsqueeze(0)
    with torch.no_grad():
        outputs = model(video, dictionary)
        scores = model.snippet_scores(video, dictionary)
    assert_close(outputs["video_scores"].cpu(), s3r_small["test_video_scores"], rtol=rtol, name="video_scores")
    assert_close(scores[0].cpu(), s3r_small["test_snippet_scores"], rtol=rtol, name="snippet scores")


DEVICES = [pytest.param("cpu", 1e-5, id="cpu")] + [
    pytest.param(
        "cuda",
        1e-4,
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
    )
]


@pytest.mark.parametrize("device,rtol", DEVICES)
def test_train_mode_outputs_and_losses_equal_the_published_code(s3r_small, device, rtol):
    check_train_forward(s3r_small, device, rtol)


@pytest.mark.parametrize("device,rtol", DEVICES)
def test_one_adam_step_gives_the_published_weights(s3r_small, device, rtol):
    check_one_step(s3r_small, device, rtol)


@pytest.mark.parametrize("device,rtol", DEVICES)
def test_eval_mode_snippet_scores_equal_the_published_evaluator(s3r_small, device, rtol):
    check_eval_scores(s3r_small, device, rtol)


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
