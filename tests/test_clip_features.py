"""CLIP ViT-B/16 features behind the backbone seam: `s3r extract --backbone clip` makes VadCLIP's recipe (340 × 256
OpenCV bilinear, VadCLIP's ten crops, CLIP's normalisation, a row per 16 frames), detect and watch take the backbone
from the detector file, and S3R trains and evaluates on 512-channel features. Seeded random weights: no download."""

import json
import re

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anomaly.cli.command import run_command
from anomaly.engine.detector_file import FeatureSpec, load_detector_file, save_detector
from anomaly.extraction import BACKBONES, PRESETS, file_sha256
from anomaly.extraction.clip import MIDDLE_FRAME, ClipImageEncoder, seeded_state_dict
from anomaly.extraction.preprocess import opencv_bilinear_resize
from anomaly.models.s3r import S3R
from tests.browser import PageParts
from tests.extraction_helpers import make_video

CLIP_MEAN = np.float32([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.float32([0.26862954, 0.26130258, 0.27577711])


@pytest.fixture(scope="module")
def clip_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    state = seeded_state_dict()
    weights = folder / "open_clip_model.safetensors"
    save_file({f"visual.{name}": tensor.contiguous() for name, tensor in state.items()}, str(weights))
    encoder = ClipImageEncoder()
    encoder.load_state_dict(state)
    video = make_video(folder / "street.mp4", 40, 320, 240, fps=20)  # 2 rows: the tail of 8 frames is dropped
    return dict(folder=folder, weights=weights, encoder=encoder.eval(), video=video)


def encoded(encoder, crops: np.ndarray) -> np.ndarray:
    """CLIP's preprocessing by hand on uint8 crops N 224 224 3 -> the encoder's N 512."""
    images = (crops.astype(np.float32) / 255 - CLIP_MEAN) / CLIP_STD
    with torch.no_grad():
        return encoder(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()


def vadclip_crops(frame: np.ndarray) -> np.ndarray:
    """VadCLIP's src/crop.py on one decoded frame: cv2.resize to 340 × 256, centre, top-left, top-right, bottom-left,
    bottom-right, then the same five of the flipped frame -> uint8 10 224 224 3."""
    image = opencv_bilinear_resize(frame, 340, 256)

    def five(im):
        return [im[16:240, 58:282], im[:224, :224], im[:224, -224:], im[-224:, :224], im[-224:, -224:]]

    return np.stack(five(image) + five(image[:, ::-1]))


def decoded_frames(video) -> list:
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_the_vadclip_recipe_crops_in_vadclips_order():
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    preset = PRESETS["vadclip"]
    np.testing.assert_array_equal(preset.crops(frame, 10), vadclip_crops(frame))
    np.testing.assert_array_equal(preset.crops(frame, 5), vadclip_crops(frame)[:5])
    np.testing.assert_array_equal(preset.crops(frame, 1), vadclip_crops(frame)[:1])  # VadCLIP's crop 0: the centre
    assert (preset.snippet_count(15), preset.snippet_count(16), preset.snippet_count(1412)) == (0, 1, 88)


def test_extract_writes_a_row_per_16_frames_from_the_middle_frame(clip_inputs, tmp_path):
    output = tmp_path / "features"
    status = run_command("extract", ["--videos", str(clip_inputs["video"]), "--output", str(output), "--weights",
                                     str(clip_inputs["weights"]), "--backbone", "clip", "--clip_frames", "middle",
                                     "--num_crops", "5", "--no_progress"])  # fmt: skip
    assert status == 0
    features = np.load(output / "street_clip.npy")
    assert features.shape == (2, 5, 512) and features.dtype == np.float32
    frames = decoded_frames(clip_inputs["video"])
    assert len(frames) == 40
    for row in range(2):
        expected = encoded(clip_inputs["encoder"], vadclip_crops(frames[16 * row + MIDDLE_FRAME])[:5])
        np.testing.assert_allclose(features[row], expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    record = json.loads((output / "street_clip.json").read_text())
    assert {key: record["settings"][key] for key in ("backbone", "preset", "num_crops", "frames", "precision")} == {
        "backbone": "clip", "preset": "vadclip", "num_crops": 5, "frames": "middle", "precision": "fp32"}
    assert len(record["settings"]["weights_sha256"]) == 64


def test_a_row_of_mean_is_the_mean_of_its_16_frames_embeddings(clip_inputs):
    """One clip, the centre crop: 16 forwards, averaged."""
    frames = decoded_frames(clip_inputs["video"])[:16]
    preset = PRESETS["vadclip"]
    clips = np.stack([preset.resize(frame) for frame in frames])[None]
    backbone = BACKBONES["clip"]
    extractor = backbone.runner(clip_inputs["encoder"], torch.device("cpu"), "fp32", "mean", None, "auto", print)
    row = extractor(clips, preset, 1)
    expected = encoded(clip_inputs["encoder"], np.stack([vadclip_crops(frame)[0] for frame in frames])).mean(axis=0)
    np.testing.assert_allclose(row[0, 0], expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert backbone.gflop_per_crop("mean") == pytest.approx(16 * backbone.gflop_per_crop("middle"))


@pytest.mark.parametrize("arguments, problem", [
    (["--clip_frames", "mean"], "--clip_frames is for --backbone clip: I3D ResNet-50 reads a snippet's 16 frames as "
                                "one clip"),
    (["--backbone", "clip", "--preset", "rtfm"], "--preset must be one of vadclip, not 'rtfm'; the presets of "
                                                 "--backbone clip"),
])
def test_a_recipe_of_another_backbone_is_refused_in_one_line(clip_inputs, tmp_path, capsys, arguments, problem):
    status = run_command("extract", ["--videos", str(clip_inputs["video"]), "--output", str(tmp_path / "out"),
                                     "--weights", str(clip_inputs["weights"]), *arguments])  # fmt: skip
    assert status == 2
    assert capsys.readouterr().err == f"s3r extract: {problem}\n"
    assert not (tmp_path / "out").exists()


def clip_detector(path, weights_sha256=None, feature_size=512, backbone="clip"):
    torch.manual_seed(0)
    state = S3R(feature_size).state_dict()
    state["video_classifier.6.weight"].zero_()  # every snippet scores sigmoid(0.1)
    state["video_classifier.6.bias"].fill_(0.1)
    atoms = torch.rand(6, feature_size, generator=torch.Generator().manual_seed(0))
    spec = FeatureSpec(backbone, "vadclip" if backbone == "clip" else "rtfm", 1, feature_size, "middle",
                       weights_sha256)  # fmt: skip
    save_detector(path, state, atoms, spec, "cameras", "AUC", 0.9, 3)
    return path


def test_detect_takes_the_backbone_from_the_detector_file(clip_inputs, tmp_path, capsys):
    detector = clip_detector(tmp_path / "cameras.detector.pth", file_sha256(clip_inputs["weights"], BACKBONES["clip"]))
    output = tmp_path / "out"
    status = run_command("detect", [str(clip_inputs["video"]), "--detector", str(detector), "--weights",
                                    str(clip_inputs["weights"]), "--output", str(output), "--no_progress"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert np.load(output / "street_clip.npy").shape == (2, 1, 512)
    scores = np.loadtxt(output / "street_scores.csv", delimiter=",", skiprows=1, usecols=2)
    assert len(scores) == 40 and np.allclose(scores, 1 / (1 + np.exp(-0.1)), atol=1e-6)
    page = PageParts((output / "street_report.html").read_text())
    assert page.texts["features"] == "CLIP features: --preset vadclip, 1 crop, --clip_frames middle, fp32"


def test_a_detector_refuses_other_weights_and_features_of_another_backbone(clip_inputs, tmp_path, capsys):
    detector = clip_detector(tmp_path / "cameras.detector.pth", "0" * 64)
    arguments = [str(clip_inputs["video"]), "--weights", str(clip_inputs["weights"]), "--output", str(tmp_path / "o")]
    assert run_command("detect", [*arguments, "--detector", str(detector)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"s3r detect: {clip_inputs['weights']}: is not the CLIP ViT-B/16 weights file the detector "
                          f"{detector} was trained on features of (SHA-256 000000000000…") and err.count("\n") == 1
    wrong = clip_detector(tmp_path / "wrong.detector.pth", feature_size=512, backbone="i3d")
    assert run_command("detect", [*arguments, "--detector", str(wrong)]) == 2
    assert capsys.readouterr().err == (f"s3r detect: {wrong}: was trained on 512-channel i3d features; videos are "
                                       "scored with 2048-channel i3d or 512-channel clip features (train on features "
                                       "made by s3r extract)\n")
    assert not (tmp_path / "o").exists()


def test_watch_scores_a_stream_with_a_clip_detector(clip_inputs, tmp_path, capsys):
    detector = clip_detector(tmp_path / "cameras.detector.pth")
    output = tmp_path / "live" / "street.jsonl"
    status = run_command("watch", [str(clip_inputs["video"]), "--detector", str(detector), "--weights",
                                   str(clip_inputs["weights"]), "--output", str(output), "--window", "4"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["snippet"] for line in lines if "snippet" in line] == [0, 1]
    page = PageParts((tmp_path / "live" / "street_report.html").read_text())
    assert page.texts["features"] == "CLIP features: --preset vadclip, 1 crop, --clip_frames middle, fp32"


def test_s3r_trains_and_evaluates_on_clip_shaped_features(tmp_path, monkeypatch, capsys):
    """`s3r synthetic --backbone clip`: 512 channels under synthetic/clip/; the dictionary goes in a folder of its
    own; training writes a detector file that records the clip backbone."""
    monkeypatch.chdir(tmp_path)
    sizes = ["--num_train_anomalous", "4", "--num_train_normal", "6", "--num_test_anomalous", "2",
             "--num_test_normal", "3", "--median_length", "12", "--max_length", "24"]
    assert run_command("synthetic", ["--backbone", "clip", *sizes]) == 0
    assert np.load(next((tmp_path / "data" / "synthetic" / "clip" / "train").glob("*_clip.npy"))).shape[1:] == (10, 512)
    options = ["--dataset", "synthetic", "--backbone", "clip"]  # 512 channels: CLIP's
    assert run_command("learn-dictionary", [*options, "--num_anomalous", "4", "--batch_size", "4"]) == 0
    assert list((tmp_path / "dictionary" / "synthetic" / "clip").glob("*taskaware*.npy"))
    assert not list((tmp_path / "dictionary" / "synthetic").glob("*taskaware*.npy"))  # I3D's place left alone
    assert run_command("train", [*options, "--version", "clip", "--batch_size", "4", "--max_epoch", "2",
                                 "--evaluate_min_step", "0", "--evaluate_freq", "1"]) == 0  # fmt: skip
    detector = load_detector_file(tmp_path / "checkpoint" / "clip" / "synthetic_s3r_clip.detector.pth")
    assert (detector.features.backbone, detector.features.feature_size, detector.features.num_crops) == ("clip", 512, 10)
    checkpoint = tmp_path / "checkpoint" / "clip" / "synthetic_s3r_clip_best.pth"
    assert run_command("train", [*options, "--version", "clip", "--inference", "--resume", str(checkpoint)]) == 0
    assert "CLIP" in capsys.readouterr().out


def test_the_live_throughput_times_the_backbone_of_the_run(capsys):
    status = run_command("benchmark-live", ["--no_causality", "--crops", "1", "--repeats", "1", "--backbone", "clip",
                                            "--clip_frames", "middle"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "| precision | crops | CLIP (ms) | S3R W=16 (ms) | S3R / CLIP (%) |" in out
    network_gflop = float(re.search(r"^\| fp32 +\| +1 \| +([\d.]+) \|", out.split("the work of a snippet")[1],
                                    re.MULTILINE).group(1))  # fmt: skip
    assert network_gflop == pytest.approx(BACKBONES["clip"].gflop_per_crop("middle"), rel=0.1)  # counted, one image
    assert "S3R on a window of 16 snippets (512 channels" in out
