"""s3r make-dataset from a fresh folder of short videos (seeded I3D weights, the centre crop): features, lists,
ground truth and description, then dictionary learning, training, --inference and detection with the detector file
alone; every refusal is one line that leaves nothing a rerun would misread; a killed run resumes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from anomaly.cli.command import run_command
from anomaly.data.description import read_description
from tests.conftest import REPO
from tests.extraction_helpers import make_video, write_picture, write_seeded_weights

NAME = "my-cameras"
FPS = 25
LAYOUT = {  # video -> frames: two snippets each under rtfm (16 < frames <= 32)
    "train/normal/n1": 20, "train/normal/n2": 18, "train/normal/day/n3": 24,
    "train/anomalous/a1": 20, "train/anomalous/a2": 17,
    "test/t1": 20, "test/night/t2": 24, "test/t3": 18,
}
ANNOTATIONS = "video,start,end\nt1,0.1,0.35\nt2,0.5,2.0\n"  # t3 has no row: normal


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("make-dataset")
    weights = write_seeded_weights(folder)
    for seed, (name, frames) in enumerate(LAYOUT.items()):
        path = folder / "clips" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_video(path, frames, 64, 48, fps=FPS, seed=seed)
    annotations = folder / "incidents.csv"
    annotations.write_text(ANNOTATIONS)
    return dict(folder=folder, weights=weights, clips=folder / "clips", annotations=annotations)


def make(inputs, root, *extra, clips=None, annotations="given"):
    arguments = [NAME, "--videos", str(clips or inputs["clips"]), "--weights", str(inputs["weights"]),
                 "--num_crops", "1", "--root_path", str(root / "data"), "--dictionary_path", str(root / "dictionary"),
                 "--no_progress", *extra]  # fmt: skip
    if annotations == "given":
        arguments += ["--annotations", str(inputs["annotations"])]
    elif annotations is not None:
        arguments += ["--annotations", str(annotations)]
    return run_command("make-dataset", arguments)


@pytest.fixture(scope="module")
def made(inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    assert make(inputs, root) == 0
    return root


def test_the_dataset_has_the_published_layout_and_its_description(made):
    base = made / "data" / NAME
    training = (base / f"{NAME}.training.csv").read_text().split()
    assert training == ["video-id", "a1", "a2", "n1", "n2", "n3"]  # anomalous first
    assert (base / f"{NAME}.testing.csv").read_text().split() == ["video-id", "t1", "t2", "t3"]
    features = np.load(base / "i3d" / "test" / "t2_i3d.npy")
    assert features.shape == (2, 1, 2048)
    description = read_description(made / "data", NAME)
    assert (description.num_crops, description.preset, description.num_anomalous_train) == (1, "rtfm", 2)
    assert description.batch_size == 2  # the smaller class has two videos
    assert list((made / "dictionary" / NAME).glob("*taskaware*90pct.npy"))


def test_the_ground_truth_is_aligned_with_the_features(made):
    truth = json.loads((made / "data" / NAME / f"{NAME}_ground_truth.testing.json").read_text())
    # t1: 20 frames, two snippets (32 frames); frames at 0.12 .. 0.32 s are anomalous (3 .. 8); the 12 loop-padded
    # frames take frame 19's label (0).
    assert truth["t1"]["num_frames"] == 32
    assert np.flatnonzero(truth["t1"]["labels"]).tolist() == list(range(3, 9))
    # t2: 24 frames; from 0.5 s (frame 13) to its end, and the padded frames after it, are anomalous.
    assert np.flatnonzero(truth["t2"]["labels"]).tolist() == list(range(13, 32))
    assert not any(truth["t3"]["labels"]) and truth["t3"]["num_frames"] == 32


def test_from_videos_to_a_trained_detector_and_its_curves(made, inputs, monkeypatch, capsys):
    monkeypatch.chdir(made)
    options = ["--dataset", NAME, "--version", "mine"]
    assert run_command("train", [*options, "--max_epoch", "2", "--evaluate_min_step", "0"]) == 0
    detector = made / "checkpoint" / "mine" / f"{NAME}_s3r_i3d.detector.pth"
    assert run_command("train", [*options, "--inference", "--resume", f"checkpoint/mine/{NAME}_s3r_i3d_best.pth"]) == 0
    metrics = json.loads((made / "output" / NAME / "metrics.json").read_text())
    assert metrics["dataset"] == NAME and 0.0 <= metrics["frame_auc"] <= 1.0
    capsys.readouterr()
    video = inputs["clips"] / "test" / "t1.mp4"
    status = run_command("detect", [str(video), "--detector", str(detector), "--weights", str(inputs["weights"]),
                                    "--output", str(made / "curves"), "--no_progress"])
    assert status == 0, capsys.readouterr().err
    rows = (made / "curves" / "t1_scores.csv").read_text().splitlines()
    assert rows[0] == "frame,time_s,score" and len(rows) == 1 + 20
    settings = json.loads((made / "curves" / "t1_i3d.json").read_text())["settings"]
    assert (settings["preset"], settings["num_crops"]) == ("rtfm", 1)  # as the detector records


def copy_clips(inputs, tmp_path, drop=(), extra=()):
    """The clips folder with some videos left out and others added (by relative path)."""
    clips = tmp_path / "clips"
    for group in ("train/normal", "train/anomalous", "test"):
        (clips / group).mkdir(parents=True)
    for name in LAYOUT:
        if name not in drop:
            target = clips / f"{name}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(inputs["clips"] / f"{name}.mp4", target)  # with its time: the features made of it still match
    for name in extra:
        target = clips / f"{name}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        make_video(target, 17, 64, 48, fps=FPS, seed=99)
    return clips


def refused(capsys, status):
    err = capsys.readouterr().err
    assert status == 2, err
    return err.splitlines()[-1]


@pytest.mark.parametrize("case, problem", [
    ("no normal", "s3r make-dataset: {clips}/train/normal: no videos found: folders are searched for "),
    ("no test folder", "s3r make-dataset: {clips}/test: missing: the test videos go there (train/normal, "
                       "train/anomalous, test)"),
    ("no anomalous", "s3r make-dataset: {clips}/train/anomalous: no videos found: folders are searched for "),
    ("one stem twice", "s3r make-dataset: {clips}/test/t1.mp4: has the same name as {clips}/train/normal/t1.mp4: a "
                       "video's name (its stem) is its id in the lists, the annotations and the feature files; rename "
                       "one of them"),
    ("few normal", "s3r make-dataset: {clips}/train/normal: 1 normal video(s) at 90 % give 1 atom(s), but the OMP "
                   "codes need at least 2: add normal videos (at least 2) or raise --dictionary_ratio"),
    ("batch", "s3r make-dataset: --batch_size 3 needs 3 training videos of each class, but train/anomalous has 2: "
              "--batch_size 2 or less would work (or add videos)"),
    ("unknown video", "s3r make-dataset: {annotations}: line 2: video 'ghost' is not a test video (no video of that "
                      "name under test/)"),
    ("interval", "s3r make-dataset: {annotations}: line 2: video 't1': the interval ends at 0.2, not after its start "
                 "(0.3)"),
    ("no annotations", "s3r make-dataset: --annotations is needed: without it every test frame is normal, and "
                       "frame-level AUC needs anomalous frames too (a CSV in seconds or frames, or a folder of frame "
                       "masks)"),
    ("all-normal masks", "s3r make-dataset: {annotations}: no frame of these masks is anomalous (1): frame-level AUC "
                         "needs anomalous frames"),
    ("built-in name", "s3r make-dataset: 'shanghaitech' is a built-in dataset: choose another name for yours"),
    ("not a name", "s3r make-dataset: 'my_cameras' is not a dataset name: use letters, digits, '-' and '.', starting "
                   "with a letter or digit (no '_', which separates the parts of run file names, and no '/')"),
])
def test_refusals_before_any_work_are_one_line_and_write_nothing(inputs, tmp_path, capsys, case, problem):
    clips, annotations, extra, name = inputs["clips"], "given", [], NAME
    if case == "no normal":
        clips = copy_clips(inputs, tmp_path, drop=[video for video in LAYOUT if "normal/" in video])
    elif case == "few normal":
        clips = copy_clips(inputs, tmp_path, drop=["train/normal/n2", "train/normal/day/n3"])
    elif case == "no anomalous":
        clips = copy_clips(inputs, tmp_path, drop=[video for video in LAYOUT if "anomalous/" in video])
    elif case == "no test folder":
        clips = copy_clips(inputs, tmp_path)
        for video in (clips / "test").rglob("*.mp4"):
            video.unlink()
        for folder in sorted((clips / "test").rglob("*"), reverse=True) + [clips / "test"]:
            folder.rmdir()
    elif case == "one stem twice":
        clips = copy_clips(inputs, tmp_path, extra=["train/normal/t1"])
    elif case == "batch":
        extra = ["--batch_size", "3"]
    elif case == "no annotations":
        annotations = None
    elif case == "all-normal masks":
        annotations = tmp_path / "masks"
        annotations.mkdir()
        np.save(annotations / "t1.npy", np.zeros(20))
    elif case in ("unknown video", "interval"):
        annotations = tmp_path / "bad.csv"
        annotations.write_text("video,start,end\nghost,1,2\n" if case == "unknown video" else "video,start,end\nt1,0.3,0.2\n")
    root = tmp_path / "out"
    arguments = [name if case not in ("built-in name", "not a name") else
                 {"built-in name": "shanghaitech", "not a name": "my_cameras"}[case]]
    arguments += ["--videos", str(clips), "--weights", str(inputs["weights"]), "--num_crops", "1",
                  "--root_path", str(root / "data"), "--dictionary_path", str(root / "dictionary"), "--no_progress",
                  *extra]  # fmt: skip
    if annotations is not None:
        arguments += ["--annotations", str(inputs["annotations"] if annotations == "given" else annotations)]
    line = refused(capsys, run_command("make-dataset", arguments))
    assert line.startswith(problem.format(clips=clips, annotations=annotations))
    assert not root.exists()


@pytest.mark.parametrize("case, problem", [
    ("no anomaly", "s3r make-dataset: {annotations}: the test videos have no anomalous frame among their 96 frames: "
                   "frame-level AUC needs both; annotate the anomalous intervals of the test videos (an interval in "
                   "seconds holds the frames shown at start <= t < end)"),
    ("late", "s3r make-dataset: {annotations}: line 2: video 't3': the interval starts at 5 s, after the video's last "
             "frame (at 0.680 s)"),
])
def test_refusals_after_extraction_keep_the_features_and_write_no_dataset(made, inputs, tmp_path, capsys, case,
                                                                          problem):
    """The features of the made dataset are copied: nothing is extracted again, and the refusal leaves the folder as
    a rerun needs it (features only: no lists, no description)."""
    root = tmp_path / "again"
    for subset in ("train", "test"):
        source = made / "data" / NAME / "i3d" / subset
        target = root / "data" / NAME / "i3d" / subset
        target.mkdir(parents=True)
        for path in source.iterdir():
            target.joinpath(path.name).write_bytes(path.read_bytes())
    annotations = tmp_path / f"{case}.csv"  # t1's frames are shown at 0, 0.04, 0.08, ... s
    annotations.write_text("video,start,end\nt3,5,6\n" if case == "late" else "video,start,end\nt1,0.01,0.03\n")
    status = make(inputs, root, annotations=annotations)
    assert refused(capsys, status) == problem.format(annotations=annotations)
    assert sorted(path.name for path in (root / "data" / NAME).iterdir()) == ["i3d"]


def test_a_picture_among_the_videos_fails_alone_and_no_dataset_is_written(made, inputs, tmp_path, capsys):
    """The made dataset's features are copied beside copies of its videos: only the picture is new, and it fails."""
    clips, root = copy_clips(inputs, tmp_path), tmp_path / "again"
    picture = write_picture(clips / "test" / "t4.mp4", "PNG")
    shutil.copytree(made / "data" / NAME / "i3d", root / "data" / NAME / "i3d")
    assert make(inputs, root, clips=clips) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{picture}: not a video: a single picture (PNG image)",
        "1 video(s) could not be extracted (said above): fix or remove them and run again; the dataset's lists, ground "
        "truth and description are written once every video is extracted",
    ]  # fmt: skip
    assert sorted(path.name for path in (root / "data" / NAME).iterdir()) == ["i3d"]
    assert not list((root / "data" / NAME / "i3d").rglob("t4_*"))


def test_features_of_another_preset_or_crop_count_are_refused_never_mixed(made, inputs, capsys):
    before = {path: path.stat().st_mtime_ns for path in (made / "data" / NAME / "i3d").rglob("*.npy")}
    line = refused(capsys, run_command("make-dataset", [
        NAME, "--videos", str(inputs["clips"]), "--weights", str(inputs["weights"]), "--num_crops", "5",
        "--root_path", str(made / "data"), "--dictionary_path", str(made / "dictionary"), "--no_progress",
        "--annotations", str(inputs["annotations"])]))  # fmt: skip
    assert line.startswith("s3r make-dataset: ") and line.endswith(
        f"features of dataset '{NAME}' were made with --preset rtfm --num_crops 1, not --preset rtfm --num_crops 5: "
        "rerun with those, or make the dataset under another name")
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_a_killed_run_resumes_where_it_stopped(inputs, tmp_path):
    """On the smallest dataset there is (three normal videos for the dictionary, one anomalous, one test video)."""
    root = tmp_path / "killed"
    clips = copy_clips(inputs, tmp_path, drop=["train/anomalous/a2", "test/night/t2", "test/t3"])
    annotations = tmp_path / "t1.csv"
    annotations.write_text("video,start,end\nt1,0.1,0.35\n")
    command = [sys.executable, str(REPO / "tools" / "make_dataset.py"), NAME, "--videos", str(clips),
               "--weights", str(inputs["weights"]), "--num_crops", "1", "--root_path", str(root / "data"),
               "--dictionary_path", str(root / "dictionary"), "--no_progress", "--annotations", str(annotations),
               "--extract_batch_size", "1"]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    train = root / "data" / NAME / "i3d" / "train"
    while not list(train.glob("*_i3d.json")):  # the first video's features are whole once its settings are written
        assert first.poll() is None, "the run ended before any video was extracted"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = {path.name: path.stat().st_mtime_ns for path in train.glob("*_i3d.npy")}
    assert done and not (root / "data" / NAME / f"{NAME}.dataset.json").exists()
    completed = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == (f"s3r train --dataset {NAME} --root_path {root / 'data'} --dictionary_path "
                                        f"{root / 'dictionary'} --version {NAME}")
    assert {name: (train / name).stat().st_mtime_ns for name in done} == done  # extracted once, not again
    assert read_description(root / "data", NAME).num_anomalous_train == 1


@pytest.mark.parametrize("stem, problem", [("n,4", "it holds ','"), (" n4", "it starts or ends with a space"),
                                           ('n"4', "it holds '\"'")])
def test_a_video_whose_name_cannot_be_a_list_id_is_refused_before_extraction(inputs, tmp_path, capsys, stem, problem):
    clips = copy_clips(inputs, tmp_path)
    video = clips / "train" / "normal" / f"{stem}.mp4"
    video.write_bytes((inputs["clips"] / "train" / "normal" / "n1.mp4").read_bytes())
    line = refused(capsys, make(inputs, tmp_path / "out", clips=clips))
    assert line == f"s3r make-dataset: {video}: its name '{stem}' cannot be a video id in the dataset's lists " \
                   f"({problem}): rename the file"
    assert not (tmp_path / "out").exists()
