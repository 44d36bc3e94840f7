"""bf16 I3D: weights and activations in bfloat16 give the fp32 features to bf16's precision (and so does the float32
simulation that measures bf16's effect where bf16 is emulated); one crop per forward gives the batched features; the
network's body is compiled only where that is possible and pays, and runs eager otherwise, said in one line; the
measurement of bf16's effect on a detector's scores.

bf16 is emulated on CPUs without bf16 instructions (about 1 GFLOP/s): the bf16 network runs here on one crop of 8
frames, about 16 GFLOP. The body needs 8 frames at least (two temporal poolings of two after the stem's stride 2)."""

import copy
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly.benchmark.bf16_effect import Extracted, SimulatedBf16, feature_error_bound, rounding_stages, score_change
from anomaly.cli.command import run_command
from anomaly.detection import frame_scores, snippet_scores, window_scorer
from anomaly.engine.detector_file import Detector, FeatureSpec
from anomaly.extraction import I3DExtractor, I3DResNet50, PRESETS
from anomaly.extraction.compiling import NetworkBody, break_even_seconds, compile_pays, compiler_problem
from anomaly.models import S3R
from anomaly.precision import BF16_UNIT_ROUNDOFF
from tests.conftest import REPO, assert_close_to_scale
from tests.extraction_helpers import seeded_state_dict

# Far above float32 rounding (about 1e-7 of the features), far below bf16's: features this far from fp32 were
# computed in bf16, not in float32 that was cast at the end.
NOT_FLOAT32 = 2.0**-16


@pytest.fixture(scope="module")
def network():
    network = I3DResNet50()
    network.load_state_dict(seeded_state_dict())
    return network.eval()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def test_bf16_features_are_the_fp32_features_to_bf16_precision(network):
    """The bound (``feature_error_bound``): each of the 66 roundings to bf16 on the longest path changes a value by at
    most 2^-8 of itself; independent roundings add in quadrature, so the relative L2 error is within 2^-8·sqrt(66)."""
    clips = torch.randint(0, 256, (1, 8, 224, 224, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    preset = PRESETS["rtfm"]
    lines = []
    fp32 = I3DExtractor(network, torch.device("cpu"), "fp32")(clips, preset, 1)
    bf16 = I3DExtractor(network, torch.device("cpu"), "bf16", log=lines.append)(clips, preset, 1)
    simulated = SimulatedBf16(network)(clips, preset, 1)
    assert rounding_stages(network) == 66
    bound = feature_error_bound(network)
    assert bound == pytest.approx(BF16_UNIT_ROUNDOFF * math.sqrt(66))
    for name, features in (("bf16", bf16), ("simulated bf16", simulated)):
        assert features.shape == (1, 1, 2048) and features.dtype == np.float32, name
        assert NOT_FLOAT32 < relative_error(features, fp32) <= bound, name
    assert lines == ["bf16 I3D: eager (the work is not known beforehand, and compiling takes about 60 s)"]


def test_the_bf16_network_keeps_bf16_weights_in_the_channels_last_layout(network):
    fast = network.inference_copy(torch.bfloat16)
    convolutions = [module for module in fast.modules() if isinstance(module, torch.nn.Conv3d)]
    assert len(convolutions) == 53
    for conv in convolutions:
        assert conv.weight.dtype == conv.bias.dtype == torch.bfloat16
        assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    exact = copy.deepcopy(network).double().inference_copy(torch.float64)  # the folding, rounded once to bf16
    for rounded, reference in zip(convolutions, [m for m in exact.modules() if isinstance(m, torch.nn.Conv3d)]):
        assert torch.equal(rounded.weight, reference.weight.to(torch.bfloat16))
        assert torch.equal(rounded.bias, reference.bias.to(torch.bfloat16))


def test_one_crop_per_forward_gives_the_batched_features(network):
    fast = network.inference_copy()
    frames = torch.rand(2, 3, 8, 224, 240, generator=torch.Generator().manual_seed(0)) * 2 - 1
    frames = frames.contiguous(memory_format=torch.channels_last_3d)
    boxes = [(False, 0, 0), (True, 0, 16)]  # overlapping: the shared stem pays
    with torch.no_grad():
        batched = fast.crop_features(frames, boxes)
        one_at_a_time = fast.crop_features(frames, boxes, clips_per_forward=1)
    assert one_at_a_time.shape == (2, 2, 2048)
    assert_close_to_scale(one_at_a_time, batched, name="features")


def small_body():
    """A bottleneck of layer 2 in bf16, folded and channels-last, and an input for it: a body that compiles fast."""
    block = I3DResNet50().eval().inference_copy(torch.bfloat16).layer2[1]
    x = torch.rand(1, 512, 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    return block, x.contiguous(memory_format=torch.channels_last_3d)


def test_compiling_pays_only_for_enough_known_work():
    assert not compile_pays(None, 10.0)  # a stream: unknown
    assert break_even_seconds() == 120.0  # a minute of compiling pays when it halves 120 s of work
    assert compile_pays(1200, 0.1) and not compile_pays(1199, 0.1)


def test_a_little_work_runs_eager_and_says_why():
    block, x = small_body()
    lines = []
    body = NetworkBody(block, "auto", clips=3, label="bf16 I3D", log=lines.append)
    with torch.no_grad():
        outputs = [body(x) for _ in range(3)]
        expected = block(x)
    assert all(torch.equal(output, expected) for output in outputs) and not body.is_compiled
    assert len(lines) == 1 and lines[0].startswith("bf16 I3D: eager (compiling takes about 60 s and pays from 120 s "
                                                   "of eager work; the clips left, 1 at ")  # fmt: skip


def test_enough_work_compiles_the_body_and_keeps_it_only_if_faster():
    """Forwards: one eager (warming), one eager timed (the decision), one compiling, one compiled and timed (kept
    when faster than eager, else dropped): each outcome is a line, and the features are the eager ones either way."""
    problem = compiler_problem()
    if problem:
        pytest.skip(problem)
    block, x = small_body()
    lines = []
    body = NetworkBody(block, "auto", clips=10**9, label="bf16 I3D", log=lines.append)
    with torch.no_grad():
        outputs = [body(x) for _ in range(5)]
        expected = block(x).float()
    assert len(lines) == 1
    if body.is_compiled:
        assert re.fullmatch(r"bf16 I3D: compiled in \d+ s \(inductor, frozen weights\): [\d.]+ s a clip against "
                            r"[\d.]+ s eager", lines[0]), lines[0]  # fmt: skip
    else:
        assert re.fullmatch(r"bf16 I3D: eager \(compiled in \d+ s, it took [\d.]+ s a clip, no faster than eager's "
                            r"[\d.]+ s\)", lines[0]), lines[0]  # fmt: skip
    assert body.compile_seconds is not None
    for output in outputs:  # fused kernels round the same values in another order: a bf16 rounding or two apart
        assert_close_to_scale(output.float(), expected, rel=2 * BF16_UNIT_ROUNDOFF, name="body")


FAILING_COMPILER = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "c++ 1.0"; exit 0; fi
echo "error: cannot compile" >&2
exit 1
"""


@pytest.mark.parametrize("compiler, line", [
    ("missing", "test: eager (no C++ compiler for torch.compile (install g++, or name one in CXX))"),
    ("failing", "test: eager (compiling failed: "),
])  # fmt: skip
def test_without_a_working_compiler_the_body_runs_eager_and_says_why(tmp_path, compiler, line):
    """Inductor reads CXX when it is imported: each case runs in its own process."""
    cxx = tmp_path / "c++"
    if compiler == "failing":
        cxx.write_text(FAILING_COMPILER)
        cxx.chmod(0o755)
    code = textwrap.dedent("""
        import torch
        from anomaly.extraction.compiling import NetworkBody
        conv = torch.nn.Conv3d(4, 4, 1)
        lines = []
        body = NetworkBody(lambda x: torch.relu(conv(x)) * 2 + 1, "auto", clips=10**9, label="test", log=lines.append)
        x = torch.rand(1, 4, 2, 3, 3)
        with torch.no_grad():
            assert all(torch.equal(body(x), torch.relu(conv(x)) * 2 + 1) for _ in range(4))
        print("\\n".join(lines))
    """)
    environment = dict(os.environ, CXX=str(cxx), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                               cwd=tmp_path, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), completed.stdout
    assert "Traceback" not in completed.stderr


def small_detector() -> Detector:
    torch.manual_seed(0)
    model = S3R(64, batch_size=1).eval()
    return Detector(model, torch.rand(1, 5, 64), FeatureSpec("i3d", "rtfm", 2, 64))


def test_the_score_change_is_that_of_each_frame_and_the_aucs_are_of_each_precision():
    rng = np.random.default_rng(0)
    fp32 = {Path(f"v{index}.mp4"): rng.random((snippets, 2, 64), dtype=np.float32)
            for index, snippets in enumerate((3, 5))}  # fmt: skip
    frames = {video: 16 * len(features) - 5 for video, features in fp32.items()}  # a partial last snippet
    labels = {video: (np.arange(count) >= 20).astype(float) for video, count in frames.items()}
    detector = small_detector()

    def extracted(change: float):
        return {video: Extracted(features, features * (1 + change), frames[video], np.arange(frames[video]) / 25)
                for video, features in fp32.items()}  # fmt: skip

    same = score_change(detector, extracted(0.0), labels)
    assert same.largest == 0 and same.auc_fp32 == same.auc_bf16 and 0 <= same.auc_fp32 <= 1
    changed = score_change(detector, extracted(2.0**-8), labels)
    score = window_scorer(detector)
    expected = max(float(np.abs(frame_scores(snippet_scores(score, features * (1 + 2.0**-8)), frames[video])
                                - frame_scores(snippet_scores(score, features), frames[video])).max())
                   for video, features in fp32.items())  # fmt: skip
    assert changed.largest == pytest.approx(expected) and changed.largest > 0
    assert changed.auc_fp32 == same.auc_fp32
    assert score_change(detector, extracted(0.0), {}).auc_fp32 is None  # no labels, no AUC


@pytest.mark.parametrize("arguments, problem", [
    (["--annotations", "incidents.csv"], "incidents.csv: --annotations label --videos; the made videos carry their "
                                         "own labels"),
    (["--steps", "0"], "--steps must be an integer at least 1, not 0"),
    (["--checkpoint", "s3r.pth"], "give --detector FILE, or --checkpoint FILE and --dictionary FILE (a released "
                                  "checkpoint): one of the two"),
])  # fmt: skip
def test_the_bf16_benchmark_refuses_bad_arguments_in_one_line(capsys, arguments, problem):
    assert run_command("benchmark-bf16", arguments) == 2
    assert capsys.readouterr().err == f"s3r benchmark-bf16: {problem}\n"
