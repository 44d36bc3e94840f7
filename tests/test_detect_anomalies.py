"""tools/detect_anomalies.py on a short video with a small S3R checkpoint (seeded I3D weights, centre crop)."""

import csv

import numpy as np
import pytest
import torch

from anomaly.models.s3r import S3R
from tests.conftest import run_tool
from tests.extraction_helpers import make_video, seeded_state_dict


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detect")
    weights = folder / "i3d_r50_kinetics.pth"
    torch.save(seeded_state_dict(), weights)
    torch.manual_seed(0)
    checkpoint = folder / "s3r.pth"
    torch.save(S3R(2048).state_dict(), checkpoint)
    dictionary = folder / "dictionary.npy"
    np.save(dictionary, np.random.default_rng(0).random((8, 2048), dtype=np.float32))
    labels = folder / "street.npy"
    np.save(labels, np.array([0, 0, 0, 1, 1, 1, 0, 0]))
    video = make_video(folder / "street.mp4", 8, 320, 240, fps=20)
    return dict(folder=folder, weights=weights, checkpoint=checkpoint, dictionary=dictionary, labels=labels, video=video)


def detect(inputs, output, *extra, checkpoint=None):
    arguments = (inputs["video"], "--checkpoint", checkpoint or inputs["checkpoint"],
                 "--dictionary", inputs["dictionary"], "--weights", inputs["weights"], "--output", output,
                 "--num_crops", "1", "--no_progress", *extra)  # fmt: skip
    return run_tool("detect_anomalies.py", *map(str, arguments))


def test_a_curve_per_frame_a_picture_and_the_segments(inputs, tmp_path):
    output = tmp_path / "out"
    # The seeded I3D features are large, so the untrained S3R's scores may be 0: every frame is above -1.
    status, out, err = detect(inputs, output, "--threshold", "-1", "--ground_truth", inputs["labels"])
    assert status == 0, err
    with open(output / "street_scores.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["frame"]) for row in rows] == list(range(8))  # one row per frame
    assert [float(row["time_s"]) for row in rows] == pytest.approx([frame / 20 for frame in range(8)])
    scores = [float(row["score"]) for row in rows]
    assert all(0 <= score <= 1 for score in scores) and len(set(scores)) == 1  # one snippet covers the 8 frames
    picture = (output / "street_scores.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 1000
    assert out.strip() == f"{inputs['video']}: 1 segment(s) above -1: 0.00-0.40 s (peak {scores[0]:.3f})"

    # Run again: the features are reused (not rewritten), the scores are the same.
    features = output / "street_i3d.npy"
    written = features.stat().st_mtime_ns
    status, again, _ = detect(inputs, output, "--threshold", "-1")
    assert status == 0 and again == out and features.stat().st_mtime_ns == written


def test_a_checkpoint_for_other_features_is_refused(inputs, tmp_path):
    checkpoint = tmp_path / "s3r_128.pth"
    torch.save(S3R(128).state_dict(), checkpoint)
    output = tmp_path / "out"
    status, out, err = detect(inputs, output, checkpoint=checkpoint)
    assert status == 2 and out == ""
    assert err == f"s3r detect: {checkpoint}: an S3R checkpoint for 128-channel features; I3D ResNet-50 features have 2048 (use a checkpoint trained on I3D features)\n"
    assert not output.exists()


def test_ground_truth_files_must_match_the_videos(inputs, tmp_path):
    status, _, err = detect(inputs, tmp_path / "out", "--ground_truth", inputs["labels"], inputs["labels"])
    assert status == 2 and err.startswith(f"s3r detect: {inputs['labels']}: 2 ground-truth files for 1 videos")
