"""--precision: strict fp32 by default, TF32 switches for the whole step on CUDA, bf16 autocast that trains."""

import pytest
import torch

from anomaly.engine import make_optimizer, train_step
from anomaly.precision import autocast, tf32_switches
from anomaly.models import S3R


@pytest.mark.parametrize("precision,allowed", [("fp32", False), ("tf32", True), ("bf16", True)])
def test_tf32_switches_on_cuda_and_restored_after(precision, allowed):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with tf32_switches(precision, torch.device("cuda")):
        assert torch.backends.cuda.matmul.allow_tf32 is allowed
        assert torch.backends.cudnn.allow_tf32 is allowed
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_cpu_leaves_the_switches_alone():
    before = torch.backends.cudnn.allow_tf32
    with tf32_switches("fp32", torch.device("cpu")):
        assert torch.backends.cudnn.allow_tf32 == before


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16"):
        with autocast("fp16", torch.device("cpu")):
            pass


def test_a_bf16_training_step_updates_the_weights_with_finite_losses():
    torch.manual_seed(0)
    model = S3R(64, batch_size=2)
    before = model.video_classifier[0].weight.detach().clone()
    losses = train_step(
        model, make_optimizer(model), torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64), torch.rand(5, 64), "bf16"
    )
    assert all(torch.isfinite(loss) and loss.dtype == torch.float32 for loss in losses.values())
    assert not torch.equal(before, model.video_classifier[0].weight)
