"""s3r export and the exported models: the same numbers as PyTorch under ONNX Runtime and OpenVINO, a manifest that
names the recipe and the detector, and a folder refused in one line when it is damaged or made for other features;
s3r detect and s3r watch with --runtime onnxruntime|openvino giving PyTorch's curves, segments and lines.

One export per module (the seeded I3D network and a 2048-channel detector, one crop): exporting takes tens of
seconds."""

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import contextlib
import io

import pytest
import torch

from anomaly.cli.command import run_command
from anomaly.deploy import OPSET, RUNTIMES, ExportedFeatures, open_export, read_manifest
from anomaly.detection import DetectorFiles, window_scorer
from anomaly.engine.detector_file import FeatureSpec, save_detector
from anomaly.errors import InputError
from anomaly.extraction import PRESETS, I3DExtractor, load_i3d
from anomaly.models.s3r import S3R
from tests.conftest import assert_close_to_scale, trained_like_batchnorm
from tests.extraction_helpers import make_video, write_seeded_weights

# Exported models against PyTorch: the bound the deployment promises. The runtimes sum the same products in another
# order (other blocking, Winograd convolutions), through the 50 layers of I3D: each layer's rounding (FORWARD_REL's
# sqrt(K)·u, K up to 4,608) carried on by the next. Measured: 2e-7 (ONNX Runtime) and 4e-7 (OpenVINO) of the
# features' scale, 4e-7 of the scores'.
DEPLOY_REL = 1e-4
# The seeded network's features have a standard deviation of about 600: the detector's last layer is scaled down
# so that its scores of them (and of random windows of that scale) lie inside (0, 1), not saturated at 0.
FEATURE_STD = 600.0
LAST_LAYER_SCALE = 0.003


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    weights = write_seeded_weights(folder)
    torch.manual_seed(0)
    model = trained_like_batchnorm(S3R(2048))
    model.video_classifier[6].weight.data.mul_(LAST_LAYER_SCALE)
    detector = folder / "cams_s3r_i3d.detector.pth"
    # No preset recorded, as the synthetic datasets' detectors: the export takes --preset.
    save_detector(detector, model.state_dict(), torch.rand(8, 2048), FeatureSpec("i3d", None, 1, 2048), "cams",
                  "AUC", 0.9, 100)  # fmt: skip
    output = folder / "exported"
    status = run_command("export", ["--detector", str(detector), "--weights", str(weights), "--output", str(output),
                                    "--preset", "rtfm"])  # fmt: skip
    assert status == 0
    video = make_video(folder / "street.mp4", 40, 320, 240, fps=20)  # 3 snippets (the last loop-padded)
    return dict(folder=folder, weights=weights, detector=detector, output=output, video=video)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_manifest_names_the_recipe_the_detector_and_every_file(exported):
    manifest = read_manifest(exported["output"])
    assert (manifest.backbone, manifest.preset, manifest.num_crops, manifest.feature_size, manifest.frames) == (
        "i3d", "rtfm", 1, 2048, None)
    assert (manifest.frames_per_snippet, manifest.crop_size, manifest.precision, manifest.opset) == (16, 224, "fp32", OPSET)
    assert manifest.detector == {"name": exported["detector"].name, "sha256": sha256(exported["detector"]),
                                 "dataset": "cams"}  # fmt: skip
    assert manifest.weights == {"name": "i3d_r50_kinetics.pth", "sha256": sha256(exported["weights"])}
    features, scorer = manifest.models["features"], manifest.models["scorer"]
    assert [(spec.name, spec.shape, spec.dtype) for spec in features.inputs + features.outputs] == [
        ("crops", ("crops", 16, 224, 224, 3), "uint8"), ("features", ("crops", 2048), "float32")]
    assert [(spec.name, spec.shape, spec.dtype) for spec in scorer.inputs + scorer.outputs] == [
        ("features", (1, "snippets", 2048), "float32"), ("scores", ("snippets",), "float32")]
    names = []
    for entry in (features, scorer):
        for files in entry.files.values():
            for file in files:
                path = exported["output"] / file.name
                assert (path.stat().st_size, sha256(path)) == (file.bytes, file.sha256)
                names.append(file.name)
    assert sorted(names + ["manifest.json"]) == sorted(path.name for path in exported["output"].iterdir())
    assert json.loads((exported["output"] / "manifest.json").read_text())["format"] == "s3r-export/1"


@pytest.fixture(scope="module")
def clips_and_features(exported):
    """Two clips of resized frames (rtfm: 256 high) and PyTorch's features of them, as s3r watch makes them."""
    clips = np.random.default_rng(0).integers(0, 256, (2, 16, 256, 300, 3), dtype=np.uint8)
    extractor = I3DExtractor(load_i3d(exported["weights"]), torch.device("cpu"), "fp32")
    return clips, extractor(clips, PRESETS["rtfm"], 1)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_exported_network_makes_the_features_pytorch_makes(exported, clips_and_features, runtime):
    clips, expected = clips_and_features
    features = open_export(exported["output"]).features(runtime)(clips, PRESETS["rtfm"], 1)
    assert features.shape == expected.shape == (2, 1, 2048) and features.dtype == np.float32
    assert_close_to_scale(features, expected, rel=DEPLOY_REL, name=runtime)


@pytest.fixture(scope="module")
def windows_and_scores(exported):
    """Windows of 1, 2, 7 and 16 snippets and PyTorch's scores of them, as s3r watch scores them."""
    detector = DetectorFiles(detector=exported["detector"]).load("rtfm", None, None, torch.device("cpu"))
    score = window_scorer(detector, "fp32", 16)
    generator = torch.Generator().manual_seed(0)
    windows = [FEATURE_STD * torch.randn(1, snippets, 2048, generator=generator) for snippets in (1, 2, 7, 16)]
    return [(window, score(window)) for window in windows]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_exported_scorer_gives_the_scores_pytorch_gives_on_windows_of_any_length(exported, windows_and_scores,
                                                                                     runtime):  # fmt: skip
    scorer = open_export(exported["output"]).scorer(runtime)
    for window, expected in windows_and_scores:
        snippets = window.shape[1]
        scores = scorer(window)
        assert scores.shape == (snippets,) and scores.dtype == torch.float32
        assert 0.05 < float(expected.min()) and float(expected.max()) < 0.95  # not saturated: the scores tell
        assert_close_to_scale(scores, expected, rel=DEPLOY_REL, name=f"{runtime}, {snippets} snippets")


def test_ten_crops_are_cut_in_the_order_and_places_of_the_preset(exported):
    """The runtimes see the crops the preset cuts, the flipped frame's after the frame's (a session that returns
    its input shows them)."""
    manifest = dataclasses.replace(read_manifest(exported["output"]), num_crops=10)
    show_crops = ExportedFeatures(manifest, lambda crops: crops.reshape(len(crops), -1), "fp32")
    clips = np.random.default_rng(1).integers(0, 256, (2, 16, 256, 340, 3), dtype=np.uint8)
    crops = show_crops(clips, PRESETS["rtfm"], 10).reshape(2, 10, 16, 224, 224, 3)
    for clip in range(2):
        for frame in range(16):
            np.testing.assert_array_equal(crops[clip, :, frame], PRESETS["rtfm"].crops(clips[clip, frame], 10))


@pytest.mark.parametrize("argument, option, value, recorded", [
    ("preset", "preset", "gowtham", "rtfm"), ("num_crops", "num_crops", 10, 1), ("backbone", "backbone", "clip", "i3d"),
    ("frames", "clip_frames", "mean", None),
])  # fmt: skip
def test_a_folder_exported_for_other_features_is_refused_naming_its_manifest(exported, argument, option, value,
                                                                             recorded):  # fmt: skip
    with pytest.raises(InputError) as refused:
        open_export(exported["output"], **{argument: value})
    assert str(refused.value).startswith(f"{exported['output'] / 'manifest.json'}: exported for --{option} "
                                         f"{recorded}, not {value}: ")


def damaged_copy(exported, tmp_path, damage):
    """The exported folder again (its large files linked, not copied), then ``damage(folder)``."""
    folder = tmp_path / "exported"
    folder.mkdir()
    for path in exported["output"].iterdir():
        os.link(path, folder / path.name)
    damage(folder)
    return folder


def replace_file(path, content: bytes):
    path.unlink()  # a link to the module's export: unlinked, not written through
    path.write_bytes(content)


@pytest.mark.parametrize("damage, model, runtime, file, problem", [
    (lambda folder: (folder / "features.bin").unlink(), "features", "openvino", "features.bin", "is missing"),
    (lambda folder: replace_file(folder / "scorer.xml", (folder / "scorer.xml").read_bytes()[:1000]), "scorer",
     "openvino", "scorer.xml", "has 1,000 bytes, not the"),
    (lambda folder: replace_file(folder / "scorer.xml", (folder / "scorer.xml").read_bytes().replace(b"<", b">", 1)),
     "scorer", "openvino", "scorer.xml", "is not the file exported"),
    (lambda folder: (folder / "features.onnx").unlink(), "features", "onnxruntime", "features.onnx", "is missing"),
])  # fmt: skip
def test_a_missing_truncated_or_replaced_model_file_is_refused_before_the_runtime_reads_it(
    exported, tmp_path, damage, model, runtime, file, problem
):
    folder = damaged_copy(exported, tmp_path, damage)
    with pytest.raises(InputError) as refused:
        open_export(folder).session(model, runtime)
    message = str(refused.value)
    assert message.startswith(f"{folder / file}: {problem}") and message.endswith("export the folder again with s3r "
                                                                                  "export") and "\n" not in message


@pytest.mark.parametrize("damage, problem", [
    (lambda folder: (folder / "manifest.json").unlink(), "manifest.json: is missing: not an exported folder"),
    (lambda folder: replace_file(folder / "manifest.json", b"{\"format\": \"s3r-export/0\"}"),
     "manifest.json: is not a manifest of format s3r-export/1 (format 's3r-export/0')"),
    (lambda folder: replace_file(folder / "manifest.json", (folder / "manifest.json").read_bytes()[:500]),
     "manifest.json: cannot be read"),
])  # fmt: skip
def test_a_folder_without_a_whole_manifest_is_refused(exported, tmp_path, damage, problem):
    folder = damaged_copy(exported, tmp_path, damage)
    with pytest.raises(InputError) as refused:
        open_export(folder)
    assert str(refused.value).startswith(f"{folder}/{problem}")


def test_a_runtime_that_is_not_installed_says_how_to_install_it(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino fails, as where it is not installed
    with pytest.raises(InputError) as refused:
        open_export(exported["output"]).scorer("openvino")
    assert str(refused.value) == ("openvino is not installed: pip install -e .[deploy] installs the runtimes and the "
                                  "exporter")


def test_bf16_is_refused_where_the_runtime_has_no_bf16(exported):
    with pytest.raises(InputError) as refused:
        open_export(exported["output"]).features("onnxruntime", "bf16")
    assert str(refused.value) == ("--precision must be one of fp32, not 'bf16'; onnxruntime runs the exported models "
                                  "in fp32")


def export_arguments(exported, output, detector=None, weights=None, *extra):
    return ["--detector", str(detector or exported["detector"]), "--weights", str(weights or exported["weights"]),
            "--output", str(output), *extra]


@pytest.mark.parametrize("case, problem", [
    ("no preset", "cams_s3r_i3d.detector.pth: records no extraction preset"),
    ("missing weights", "nothing.pth: weights file not found"),
    ("other features", "s3r_128.detector.pth: was trained on 128-channel i3d features"),
    ("no exporter", "openvino is not installed: pip install -e .[deploy]"),
])  # fmt: skip
def test_export_refuses_bad_input_in_one_line_writing_nothing(exported, tmp_path, capsys, monkeypatch, case, problem):
    output = tmp_path / "out"
    arguments = export_arguments(exported, output, None, None, "--preset", "rtfm")
    if case == "no preset":
        arguments = export_arguments(exported, output)
    elif case == "missing weights":
        arguments = export_arguments(exported, output, None, tmp_path / "nothing.pth", "--preset", "rtfm")
    elif case == "other features":
        small = tmp_path / "s3r_128.detector.pth"
        save_detector(small, S3R(128).state_dict(), torch.rand(4, 128), FeatureSpec("i3d", "rtfm", 1, 128), "cams",
                      "AUC", 0.9, 1)  # fmt: skip
        arguments = export_arguments(exported, output, small)
    else:
        monkeypatch.setitem(sys.modules, "openvino", None)
    assert run_command("export", arguments) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3r export: ") and problem in lines[0], lines
    assert not output.exists()


# ------------------------------------------------------------------------------------ s3r detect and s3r watch
def read_scores(path):
    with open(path) as file:
        return np.array([float(row["score"]) for row in csv.DictReader(file)])


def model_arguments(exported, runtime):
    """The options that name the detector and network: PyTorch's files, or the exported folder alone (its manifest
    names the recipe, the detector and the weights)."""
    if runtime == "torch":
        return ["--runtime", runtime, "--detector", str(exported["detector"]), "--weights", str(exported["weights"]),
                "--preset", "rtfm"]  # fmt: skip
    return ["--runtime", runtime, "--exported", str(exported["output"])]


def detect_arguments(exported, output, runtime):
    return [str(exported["video"]), "--output", str(output), "--threshold", "0.2", "--no_progress",
            *model_arguments(exported, runtime)]  # fmt: skip


@pytest.fixture(scope="module")
def torch_detection(exported, tmp_path_factory):
    """s3r detect of the video by PyTorch: its output folder (features, settings, CSV) and its segments line."""
    output = tmp_path_factory.mktemp("torch")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run_command("detect", detect_arguments(exported, output, "torch")) == 0
    return output, stdout.getvalue()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detect_with_an_exported_folder_gives_the_curve_and_segments_of_pytorch_and_extracts_its_features_again(
    exported, torch_detection, tmp_path, capsys, runtime
):
    torch_output, torch_lines = torch_detection
    output = shutil.copytree(torch_output, tmp_path / "out")  # PyTorch's features cached in the output folder
    assert run_command("detect", detect_arguments(exported, output, runtime)) == 0
    captured = capsys.readouterr()
    # Features of another runtime round differently: extracted again, said in one line, and recorded.
    assert f"{exported['video']}: extracting again: its features were made with runtime 'torch' (now {runtime!r})" \
        in captured.err
    assert json.loads((output / "street_i3d.json").read_text())["settings"]["runtime"] == runtime
    expected, scores = read_scores(torch_output / "street_scores.csv"), read_scores(output / "street_scores.csv")
    assert len(scores) == 40 and np.ptp(expected[::16]) > 1e-3  # the snippets' scores differ: equality tells
    assert_close_to_scale(scores, expected, rel=DEPLOY_REL, name=runtime)
    assert captured.out == torch_lines and "1 segment(s) above 0.2" in torch_lines


def test_watch_with_openvino_writes_the_lines_of_pytorch(exported, tmp_path):
    lines = {}
    for runtime in ("torch", "openvino"):
        output = tmp_path / runtime / "street.jsonl"
        arguments = [str(exported["video"]), "--output", str(output), *model_arguments(exported, runtime)]
        assert run_command("watch", arguments) == 0
        lines[runtime] = [json.loads(line) for line in output.read_text().splitlines()]
    snippets = {runtime: [line for line in found if "score" in line] for runtime, found in lines.items()}
    assert len(snippets["torch"]) == 3 and all(line["precision"] == "fp32" for line in snippets["openvino"])
    assert_close_to_scale([line["score"] for line in snippets["openvino"]], [line["score"] for line in snippets["torch"]],
                          rel=DEPLOY_REL, name="watch")  # fmt: skip
    without_times = [{key: value for key, value in line.items() if key not in ("score", "latency_ms")}
                     for runtime in ("torch", "openvino") for line in lines[runtime]]  # fmt: skip
    assert without_times[: len(lines["torch"])] == without_times[len(lines["torch"]):]


def edit_manifest(folder, **changes):
    path = folder / "manifest.json"
    replace_file(path, json.dumps({**json.loads(path.read_text()), **changes}).encode())


@pytest.mark.parametrize("case, extra, problem", [
    ("features.bin missing", [], "features.bin: is missing from the exported folder: export the folder again"),
    ("features.onnx truncated", ["--runtime", "onnxruntime"], "features.onnx: has 1,000 bytes, not the"),
    ("other preset", ["--preset", "gowtham"], "manifest.json: exported for --preset rtfm, not gowtham: "),
    ("other crops", ["--num_crops", "10"], "manifest.json: exported for --num_crops 1, not 10: "),
    ("other backbone", [], "manifest.json: records 2048-channel clip features, but clip makes 512-channel features"),
    ("other feature size", [], "manifest.json: records 512-channel i3d features, but i3d makes 2048-channel"),
    ("other detector", ["--detector", "{other}"], "other.pth: is not the detector file exported to"),
    ("other weights", ["--weights", "{other}"], "other.pth: is not the weights file exported to"),
    ("not installed", ["--runtime", "onnxruntime"], "onnxruntime is not installed: pip install -e .[deploy]"),
    ("bf16", ["--runtime", "onnxruntime", "--precision", "bf16"], "--precision must be one of fp32, auto, not 'bf16'"),
    ("no folder", [], "--runtime openvino runs an exported folder: give --exported"),
    ("torch and a folder", ["--runtime", "torch"], "--exported is run by --runtime onnxruntime or openvino"),
])  # fmt: skip
@pytest.mark.parametrize("command", ["detect", "watch"])
def test_a_bad_exported_folder_or_runtime_is_refused_in_one_line_writing_nothing(
    exported, tmp_path, capsys, monkeypatch, command, case, extra, problem
):
    folder = damaged_copy(exported, tmp_path, lambda folder: None)
    if case == "features.bin missing":
        (folder / "features.bin").unlink()
    elif case == "features.onnx truncated":
        replace_file(folder / "features.onnx", (folder / "features.onnx").read_bytes()[:1000])
    elif case == "other backbone":
        edit_manifest(folder, backbone="clip")
    elif case == "other feature size":
        edit_manifest(folder, feature_size=512)
    elif case == "not installed":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails, as where it is absent
    other = tmp_path / "other.pth"
    other.write_bytes(b"another file")
    extra = [str(other) if argument == "{other}" else argument for argument in extra]
    folder_given = [] if case == "no folder" else ["--exported", str(folder)]
    arguments = [str(exported["video"]), "--runtime", "openvino", *folder_given, *extra]  # the last --runtime counts
    output = tmp_path / "out"
    arguments += ["--output", str(output / "street.jsonl") if command == "watch" else str(output)]
    assert run_command(command, arguments) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"s3r {command}: ") and problem in lines[0], lines
    assert not output.exists()
