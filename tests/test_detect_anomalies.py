"""tools/detect_anomalies.py on short videos with a small S3R checkpoint (seeded I3D weights, centre crop): the
curve, reusing only whole cached features, and every argument refused before anything is written."""

import csv
import json
import shutil
from fractions import Fraction
from urllib.parse import urljoin

import av
import numpy as np
import pytest
import torch

from anomaly.engine.detector_file import FeatureSpec, save_detector
from anomaly.models.s3r import S3R
from tests.browser import console_errors, open_page
from tests.conftest import run_tool
from tests.extraction_helpers import make_video, write_picture, write_seeded_weights
from tests.browser import PageParts, curve, video_ready, webm_codec


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detect")
    weights = write_seeded_weights(folder)
    torch.manual_seed(0)
    checkpoint = folder / "s3r.pth"
    state = S3R(2048).state_dict()
    # The seeded I3D features are large and would saturate an untrained S3R's scores at 0; a last layer of zeros
    # scores every snippet sigmoid(0) = 0.5.
    state["video_classifier.6.weight"].zero_()
    state["video_classifier.6.bias"].zero_()
    torch.save(state, checkpoint)
    dictionary = folder / "dictionary.npy"
    np.save(dictionary, np.random.default_rng(0).random((8, 2048), dtype=np.float32))
    labels = folder / "street.npy"
    np.save(labels, np.array([0, 0, 0, 1, 1, 1, 0, 0]))
    video = make_video(folder / "street.mp4", 8, 320, 240, fps=20)
    return dict(folder=folder, weights=weights, checkpoint=checkpoint, dictionary=dictionary, labels=labels, video=video)


def detect(inputs, output, *extra, checkpoint=None, videos=None):
    arguments = (*(videos or [inputs["video"]]), "--checkpoint", checkpoint or inputs["checkpoint"],
                 "--dictionary", inputs["dictionary"], "--weights", inputs["weights"], "--output", output,
                 "--num_crops", "1", "--no_progress", *extra)  # fmt: skip
    return run_tool("detect_anomalies.py", *map(str, arguments))


@pytest.fixture(scope="module")
def street(inputs, tmp_path_factory):
    """The street video detected (--threshold 0.25, its ground truth): the output folder, status, stdout, stderr.
    Tests that only need its cached features (rtfm, one crop) copy the folder."""
    output = tmp_path_factory.mktemp("street")
    status, out, err = detect(inputs, output, "--threshold", "0.25", "--ground_truth", inputs["labels"])
    return dict(output=output, status=status, out=out, err=err)


def copy_of(detected, tmp_path):
    """A private copy of a detection's output folder, for a test to run again in or damage."""
    output = tmp_path / "out"
    shutil.copytree(detected["output"], output)
    return output


def test_a_curve_per_frame_a_picture_and_the_segments(inputs, street):
    output, status, out, err = street["output"], street["status"], street["out"], street["err"]
    assert status == 0, err
    with open(output / "street_scores.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["frame"]) for row in rows] == list(range(8))  # one row per frame
    assert [float(row["time_s"]) for row in rows] == pytest.approx([frame / 20 for frame in range(8)])
    scores = [float(row["score"]) for row in rows]
    assert scores == [0.5] * 8  # one snippet covers the 8 frames
    picture = (output / "street_scores.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 1000
    page = PageParts((output / "street_report.html").read_text())  # the report page, its video linked relatively
    assert urljoin((output / "street_report.html").as_uri(), page.first("video")["src"]) == inputs["video"].as_uri()
    assert json.loads(page.texts["report-data"])["truth"] == [[3 / 20, 6 / 20]]  # frames 3-5, in seconds
    assert page.texts["features"] == "I3D features: --preset rtfm, 1 crop, fp32"  # what made them, as run
    assert out.strip() == f"{inputs['video']}: 1 segment(s) above 0.25: 0.00-0.40 s (peak 0.500)"

    # Run again: the features are reused (not rewritten), the scores are the same.
    features = output / "street_i3d.npy"
    written = features.stat().st_mtime_ns
    status, again, _ = detect(inputs, output, "--threshold", "0.25")
    assert status == 0 and again == out and features.stat().st_mtime_ns == written


def test_a_checkpoint_for_other_features_is_refused(inputs, tmp_path):
    checkpoint = tmp_path / "s3r_128.pth"
    torch.save(S3R(128).state_dict(), checkpoint)
    output = tmp_path / "out"
    status, out, err = detect(inputs, output, checkpoint=checkpoint)
    assert status == 2 and out == ""
    assert err == (f"s3r detect: {checkpoint}: an S3R checkpoint for 128-channel features; the features here have "
                   "2048 (use a checkpoint trained on such features)\n")
    assert not output.exists()


def test_ground_truth_files_must_match_the_videos(inputs, tmp_path):
    status, _, err = detect(inputs, tmp_path / "out", "--ground_truth", inputs["labels"], inputs["labels"])
    assert status == 2 and err.startswith(f"s3r detect: {inputs['labels']}: 2 ground-truth files for 1 videos")


@pytest.mark.parametrize("threshold", ["nan", "inf", "-0.1", "1.5"])
def test_the_threshold_is_a_score(inputs, tmp_path, threshold):
    output = tmp_path / "out"
    status, out, err = detect(inputs, output, "--threshold", threshold)
    assert status == 2 and out == ""
    assert err == (f"s3r detect: --threshold must be a finite number in [0, 1], not {float(threshold)!r}; scores "
                   "are probabilities\n")
    assert not output.exists()


def test_bad_weights_are_refused_before_the_output_folder_is_made(inputs, tmp_path):
    output, weights = tmp_path / "out", tmp_path / "missing.pth"
    arguments = (inputs["video"], "--checkpoint", inputs["checkpoint"], "--dictionary", inputs["dictionary"],
                 "--weights", weights, "--output", output, "--num_crops", "1", "--no_progress")  # fmt: skip
    status, out, err = run_tool("detect_anomalies.py", *map(str, arguments))
    assert status == 2 and err.startswith(f"s3r detect: {weights}: weights file not found") and err.count("\n") == 1
    assert not output.exists()


def test_a_mask_past_the_end_is_refused_before_anything_is_written(inputs, tmp_path):
    """The MP4 declares its 8 frames: the mask's event at frame 10 is refused before extracting."""
    output, mask = tmp_path / "out", tmp_path / "late.npy"
    np.save(mask, np.array([0] * 10 + [1, 1]))
    status, out, err = detect(inputs, output, "--ground_truth", mask)
    assert status == 2 and out == ""
    assert err == (f"s3r detect: {mask}: video 'street': an anomalous event starts at frame 10, past the video's end "
                   f"({inputs['video']} has 8 frames, as its container declares)\n")  # fmt: skip
    assert not output.exists()


def test_a_mask_past_the_end_of_a_video_that_declares_no_count_fails_that_video(inputs, tmp_path):
    """Matroska declares a duration, not a count: the frames are known once decoded; the video fails alone, with
    no CSV, and the other is scored."""
    video = make_video(tmp_path / "yard.mkv", 8, 176, 144, fps=20)
    output, mask = tmp_path / "out", tmp_path / "late.npy"
    np.save(mask, np.array([0] * 10 + [1, 1]))
    status, out, err = detect(inputs, output, "--ground_truth", inputs["labels"], mask, "--threshold", "0.25",
                              videos=[inputs["video"], video])  # fmt: skip
    assert status == 1
    assert err == (f"{video}: not scored: {mask}: video 'yard': an anomalous event starts at frame 10, past the "
                   f"video's end ({video} has 8 decoded frames)\n")  # fmt: skip
    assert out.startswith(f"{inputs['video']}: 1 segment(s) above 0.25")
    assert (output / "street_scores.csv").exists() and not (output / "yard_scores.csv").exists()


def test_a_picture_fails_alone_and_a_folder_without_videos_is_refused_before_anything_is_written(inputs, tmp_path):
    picture, output = write_picture(tmp_path / "clip.mp4", "PNG"), tmp_path / "out"
    status, out, err = detect(inputs, output, videos=[picture, inputs["video"]])
    assert (status, err) == (1, f"{picture}: not a video: a single picture (PNG image)\n")
    assert out.startswith(f"{inputs['video']}: ")
    assert not list(output.glob("clip_*")) and (output / "street_scores.csv").exists()

    folder, output = tmp_path / "pictures", tmp_path / "again"
    folder.mkdir()
    write_picture(folder / "frame.png", "PNG")
    status, out, err = detect(inputs, output, videos=[inputs["video"], folder])
    assert (status, out) == (2, "")
    assert err.startswith(f"s3r detect: {folder}: no videos found: folders are searched for ") and err.count("\n") == 1
    assert not output.exists()


@pytest.fixture(scope="module")
def two_videos(inputs, tmp_path_factory):
    """The street video and another detected together: the output folder, status, stdout, the other video."""
    other = make_video(tmp_path_factory.mktemp("yard") / "yard.mp4", 8, 176, 144, fps=20, seed=5)
    output = tmp_path_factory.mktemp("two_videos")
    status, out, _ = detect(inputs, output, videos=[inputs["video"], other])
    return dict(output=output, status=status, out=out, other=other)


@pytest.mark.parametrize("damage", ["cut in half", "NaN inside"])
def test_a_corrupt_cached_feature_file_is_extracted_again(inputs, two_videos, tmp_path, damage):
    """Two videos; the second run finds one's features damaged: that one is extracted again, both scored. Detection
    reads every cached value (a NaN in a file of the right size is found too)."""
    other, output, first = two_videos["other"], copy_of(two_videos, tmp_path), two_videos["out"]
    assert two_videos["status"] == 0
    features = output / "yard_i3d.npy"
    whole = features.read_bytes()
    if damage == "cut in half":
        features.write_bytes(whole[: len(whole) // 2])
        problem = "not a readable .npy file ("
    else:
        features.write_bytes(whole[:-4] + np.float32(np.nan).tobytes())
        problem = "NaN or inf in features: every value must be finite"
    status, again, err = detect(inputs, output, videos=[inputs["video"], other])
    assert status == 0 and again == first
    assert err.startswith(f"{other}: extracting again: its feature file is unreadable: {features}: {problem}")
    assert err.count("\n") == 1
    assert features.read_bytes() == whole


def write_detector(inputs, path, preset="gowtham", num_crops=1, feature_size=2048):
    """A detector file of the fixture's checkpoint and dictionary, recording how its features were made."""
    state = torch.load(inputs["checkpoint"], weights_only=True) if feature_size == 2048 else S3R(feature_size).state_dict()
    atoms = torch.from_numpy(np.load(inputs["dictionary"]))[:, :feature_size]
    save_detector(path, state, atoms, FeatureSpec("i3d", preset, num_crops, feature_size), "my-cameras", "AUC", 0.9, 7)
    return path


def detect_with(inputs, output, detector, *extra):
    arguments = (inputs["video"], "--detector", detector, "--weights", inputs["weights"], "--output", output,
                 "--no_progress", *extra)  # fmt: skip
    return run_tool("detect_anomalies.py", *map(str, arguments))


def test_a_detector_file_needs_nothing_else_and_extracts_as_it_records(inputs, tmp_path):
    detector = write_detector(inputs, tmp_path / "mine.detector.pth", preset="rtfm")
    status, out, err = detect_with(inputs, tmp_path / "out", detector, "--threshold", "0.25")
    assert status == 0, err
    assert out.strip() == f"{inputs['video']}: 1 segment(s) above 0.25: 0.00-0.40 s (peak 0.500)"
    settings = json.loads((tmp_path / "out" / "street_i3d.json").read_text())["settings"]
    assert (settings["preset"], settings["num_crops"]) == ("rtfm", 1)


def test_a_detector_file_of_format_1_still_scores(inputs, tmp_path):
    """Written before detector files recorded the frame reading and the weights: read as recording neither."""
    detector = write_detector(inputs, tmp_path / "old.detector.pth", preset="rtfm")
    content = torch.load(detector, weights_only=True)
    content["format"] = "s3r-detector/1"
    content["features"] = {key: content["features"][key] for key in ("backbone", "preset", "num_crops", "feature_size")}
    torch.save(content, detector)
    status, out, err = detect_with(inputs, tmp_path / "out", detector, "--threshold", "0.25")
    assert status == 0, err
    assert out.strip() == f"{inputs['video']}: 1 segment(s) above 0.25: 0.00-0.40 s (peak 0.500)"


def test_cached_features_of_another_recipe_are_refused_not_replaced(inputs, street, tmp_path):
    output = copy_of(street, tmp_path)  # rtfm, one crop, from the released checkpoint
    before = (output / "street_i3d.npy").read_bytes()
    detector = write_detector(inputs, tmp_path / "mine.detector.pth", preset="gowtham")
    status, out, err = detect_with(inputs, output, detector)
    assert (status, out) == (2, "")
    assert err == (f"s3r detect: {output / 'street_i3d.json'}: features of street.mp4 made with --preset rtfm "
                   "--num_crops 1, but the detector scores --preset gowtham --num_crops 1: give another --output or "
                   "remove them\n")
    assert (output / "street_i3d.npy").read_bytes() == before


@pytest.mark.parametrize("make, extra, problem", [
    ("2048", ("--preset", "rtfm"), "{detector}: was trained on features of --preset gowtham, not rtfm: leave --preset "
                                   "out or give gowtham"),
    ("32", (), "{detector}: was trained on 32-channel i3d features; videos are scored with 2048-channel i3d or "
               "512-channel clip features (train on features made by s3r extract)"),
    ("none", (), "{detector}: records no extraction preset (its features were not made from video here): give "
                 "--preset (rtfm, gowtham)"),
    ("text", (), "{detector}: not a readable checkpoint: truncated, corrupt or not a PyTorch file"),
    ("dict", (), "{detector}: not a detector file (no \"format\": \"s3r-detector/2\"): training writes one beside the "
                 "best checkpoint; for a plain checkpoint give --checkpoint and --dictionary"),
])
def test_a_detector_that_cannot_score_these_videos_is_refused(inputs, tmp_path, make, extra, problem):
    detector = tmp_path / "bad.detector.pth"
    if make == "2048":
        write_detector(inputs, detector)
    elif make == "32":
        write_detector(inputs, detector, feature_size=32)
    elif make == "none":
        write_detector(inputs, detector, preset=None)
    elif make == "text":
        detector.write_text("not a detector")
    else:
        torch.save(S3R(64).state_dict(), detector)
    status, out, err = detect_with(inputs, tmp_path / "out", detector, *extra)
    assert (status, out, err) == (2, "", f"s3r detect: {problem.format(detector=detector)}\n")
    assert not (tmp_path / "out").exists()


def test_a_detector_or_a_checkpoint_with_its_dictionary_must_be_given(inputs, tmp_path):
    arguments = (inputs["video"], "--weights", inputs["weights"], "--output", tmp_path / "out")
    status, out, err = run_tool("detect_anomalies.py", *map(str, arguments))
    assert (status, err) == (2, "s3r detect: give --detector FILE, or --checkpoint FILE and --dictionary FILE (a "
                                "released checkpoint): one of the two\n")


def test_the_report_page_of_a_detection_opens_in_the_browser(inputs, tmp_path, browser):
    video = make_video(tmp_path / "yard.webm", 20, 64, 64, fps=20, codec=webm_codec())
    status, _, err = detect(inputs, tmp_path / "out", "--threshold", "0.25", videos=[video])
    assert status == 0, err
    open_page(browser, tmp_path / "out" / "yard_report.html")
    video_ready(browser)
    assert curve(browser)[1] == 20  # a point per frame
    assert console_errors(browser) == []


def test_a_detector_that_scores_nan_fails_the_video_in_one_line_and_writes_no_curve(inputs, tmp_path):
    checkpoint = tmp_path / "overflowing.pth"
    state = torch.load(inputs["checkpoint"], weights_only=True)
    state["video_embedding.0.conv_1.0.weight"].mul_(1e37)  # finite weights whose products overflow float32
    torch.save(state, checkpoint)
    output = tmp_path / "out"
    status, out, err = detect(inputs, output, checkpoint=checkpoint)
    assert status == 1
    assert err == (f"{inputs['video']}: not scored: the detector's scores are NaN or inf for 1 of 1 snippets: its "
                   "weights or these features overflow float32\n")
    assert not list(output.glob("street_scores.*")) and not (output / "street_report.html").exists()


def variable_rate_video(path, milliseconds):
    """A lossless video whose frame i is shown at milliseconds[i] (a phone's variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for index, shown_at in enumerate(milliseconds):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * index % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = shown_at, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_variable_frame_rate_video_is_timed_by_its_timestamps(inputs, tmp_path):
    """Frames 0-15 at 25 fps, then one every 200 ms: the CSV, the page and the segment line place each frame where
    the video shows it, not at frame / average rate; the times are recorded beside the features, for reruns."""
    milliseconds = [40 * frame for frame in range(16)] + [600 + 200 * frame for frame in range(1, 17)]
    video = variable_rate_video(tmp_path / "phone.mkv", milliseconds)
    output = tmp_path / "out"
    status, out, err = detect(inputs, output, "--threshold", "0.25", videos=[video])
    assert status == 0, err
    with open(output / "phone_scores.csv") as file:
        times = [float(row["time_s"]) for row in csv.DictReader(file)]
    assert times == pytest.approx([shown_at / 1000 for shown_at in milliseconds])
    record = json.loads((output / "phone_i3d.json").read_text())
    assert record["frame_times"] == pytest.approx(times)
    data = json.loads(PageParts((output / "phone_report.html").read_text()).texts["report-data"])
    assert data["curve"]["x"] == pytest.approx(times)
    # The segment ends with the last frame, shown at 3.8 s for a frame at the declared 25 fps.
    assert f"{video}: 1 segment(s) above 0.25: 0.00-3.84 s (peak 0.500)" in out
