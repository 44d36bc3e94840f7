"""tools/extract_features.py end to end on short encoded videos (centre crop only, seeded weights): files the
feature reader accepts, skipping only what is done, extracting again what is not (other settings, another video
under the same name, a cut feature file), per-video failures (unreadable, partial, too wide, a name too long),
leftovers of killed writes, turned and animated videos, bad arguments, torchrun."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly.cli.command import run_command
from anomaly.data import load_features
from anomaly.hardware import native_bf16
from anomaly.models.s3r import S3R
from tests.conftest import REPO
from tests.conftest import run_tool
from anomaly.extraction import VideoDecoder, list_videos
from tests.extraction_helpers import cut_in_half, make_audio_only, make_video, write_picture, write_seeded_weights


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    weights = write_seeded_weights(folder)
    small = make_video(folder / "small.mp4", 17, 176, 144, fps=25)  # rtfm: 2 snippets
    large = make_video(folder / "large.avi", 8, 320, 240, fps=30, codec="mpeg4")  # 1 snippet
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(small.read_bytes()[:600])  # cut before the index: unreadable
    audio = make_audio_only(folder / "speech.m4a")
    listing = folder / "videos.txt"
    listing.write_text("# a video list\nsmall.mp4\n\ncorrupt.mp4\n")
    return dict(folder=folder, weights=weights, small=small, large=large, corrupt=corrupt, audio=audio,
                listing=listing, missing=folder / "missing.mp4")  # fmt: skip


def extract(inputs, output, *videos, extra=()):
    arguments = ("--videos", *videos, "--output", output, "--weights", inputs["weights"],
                 "--num_crops", "1", "--batch_size", "2", "--no_progress", *extra)  # fmt: skip
    return run_tool("extract_features.py", *map(str, arguments))


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory):
    output = tmp_path_factory.mktemp("features")
    status, out, err = extract(inputs, output, inputs["listing"], inputs["large"], inputs["audio"], inputs["missing"])
    return dict(output=output, status=status, out=out, err=err)


def test_features_are_written_for_the_readable_videos(first_run, inputs):
    output = first_run["output"]
    assert first_run["status"] == 1
    small = load_features(output / "small_i3d.npy", num_crops=1, feature_size=2048)
    large = load_features(output / "large_i3d.npy", num_crops=1, feature_size=2048)
    assert small.shape == (2, 1, 2048) and large.shape == (1, 1, 2048)
    assert np.load(output / "small_i3d.npy").dtype == np.float32
    assert not np.allclose(small[0], small[1])  # two different snippets
    record = json.loads((output / "large_i3d.json").read_text())
    assert record["settings"]["preset"] == "rtfm" and record["settings"]["num_crops"] == 1
    assert (record["frames"], record["fps"], record["width"], record["height"]) == (8, 30.0, 320, 240)
    assert (record["rotation"], record["mirrored"], record["partial"]) == (0, False, None)
    video = inputs["large"].stat()
    assert record["video_file"] == {"size": video.st_size, "mtime_ns": video.st_mtime_ns}  # what identifies it
    assert record["shape"] == [1, 1, 2048] and record["snippets"] == 1
    assert sorted(path.name for path in output.iterdir()) == [
        "large_i3d.json", "large_i3d.npy", "small_i3d.json", "small_i3d.npy"]  # fmt: skip
    assert "| 2                | 0       | 3      | 3        |" in first_run["out"]


def test_each_failed_video_is_one_line_naming_it(first_run, inputs):
    lines = first_run["err"].strip().splitlines()
    assert len(lines) == 3
    assert any(line.startswith(f"{inputs['corrupt']}: not a readable video") for line in lines)
    assert f"{inputs['audio']}: has no video stream" in lines
    assert f"{inputs['missing']}: video not found" in lines


def test_a_second_run_skips_what_is_done(first_run, inputs):
    output = first_run["output"]
    before = {path.name: path.stat().st_mtime_ns for path in output.iterdir()}
    status, out, err = extract(inputs, output, inputs["small"], inputs["large"])
    assert status == 0 and err == ""
    assert "| 0                | 2       | 0      | 0        |" in out
    assert {path.name: path.stat().st_mtime_ns for path in output.iterdir()} == before


def test_other_settings_extract_again(first_run, inputs, tmp_path):
    output = tmp_path / "features"
    shutil.copytree(first_run["output"], output)
    status, out, err = extract(inputs, output, inputs["small"], extra=("--preset", "gowtham"))
    assert status == 0
    assert err == f"{inputs['small']}: extracting again: its features were made with preset 'rtfm' (now 'gowtham')\n"
    assert load_features(output / "small_i3d.npy").shape == (1, 1, 2048)  # floor(17 / 16)
    assert json.loads((output / "small_i3d.json").read_text())["settings"]["preset"] == "gowtham"


def test_precision_auto_is_recorded_as_what_it_ran(first_run, inputs, tmp_path):
    output = copy_of(first_run, tmp_path)
    ran = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    status, out, err = extract(inputs, output, inputs["small"], extra=("--precision", "auto", "--device", "cpu"))
    assert status == 0
    assert err.splitlines()[0].startswith(f"--precision auto: {ran} (this CPU (")
    assert json.loads((output / "small_i3d.json").read_text())["settings"]["precision"] == ran
    if ran == "fp32":  # the features are the ones fp32 made: not extracted again
        assert err.count("\n") == 1


def copy_of(first_run, tmp_path):
    output = tmp_path / "features"
    shutil.copytree(first_run["output"], output)
    return output


def test_a_video_replaced_under_the_same_name_is_extracted_again(inputs, tmp_path):
    """17 frames, then another video of 8 under the same name, then the same file modified."""
    video, output = make_video(tmp_path / "clip.mp4", 17, 176, 144, seed=1), tmp_path / "features"
    assert extract(inputs, output, video)[0] == 0
    size = video.stat().st_size
    make_video(video, 8, 176, 144, seed=2)
    status, out, err = extract(inputs, output, video)
    assert status == 0
    assert err == (f"{video}: extracting again: the video is not the one its features were made from "
                   f"({video.stat().st_size} bytes, {size} then)\n")  # fmt: skip
    record = json.loads((output / "clip_i3d.json").read_text())
    assert (record["frames"], record["shape"]) == (8, [1, 1, 2048])
    assert load_features(output / "clip_i3d.npy").shape == (1, 1, 2048)

    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    status, out, err = extract(inputs, output, video)
    assert status == 0 and err == f"{video}: extracting again: the video was modified since its features were made\n"
    assert "| 1                | 0       | 0      | 1        |" in out


def test_a_cut_feature_file_is_extracted_again(first_run, inputs, tmp_path):
    output = copy_of(first_run, tmp_path)
    features = output / "small_i3d.npy"
    features.write_bytes(features.read_bytes()[: features.stat().st_size // 2])
    status, out, err = extract(inputs, output, inputs["small"], inputs["large"])
    assert status == 0
    assert err.startswith(f"{inputs['small']}: extracting again: its feature file is unreadable: {features}: not a "
                          "readable .npy file (")  # fmt: skip
    assert len(err.splitlines()) == 1
    assert "| 1                | 1       | 0      | 2        |" in out
    np.testing.assert_array_equal(np.load(features), np.load(first_run["output"] / "small_i3d.npy"))


def test_i3d_features_recorded_before_the_clip_backbone_are_still_done(first_run, inputs, tmp_path):
    """Settings files written before features recorded their backbone and frame reading are I3D's, whole clips."""
    output = copy_of(first_run, tmp_path)
    settings = output / "large_i3d.json"
    record = json.loads(settings.read_text())
    assert (record["settings"].pop("backbone"), record["settings"].pop("frames")) == ("i3d", None)
    settings.write_text(json.dumps(record))
    status, out, err = extract(inputs, output, inputs["large"])
    assert (status, err) == (0, "") and "| 0                | 1       | 0      | 0        |" in out


def test_features_without_their_settings_file_are_extracted_again(first_run, inputs, tmp_path):
    output = copy_of(first_run, tmp_path)
    (output / "large_i3d.json").unlink()
    status, _, err = extract(inputs, output, inputs["large"])
    assert status == 0
    assert err == (f"{inputs['large']}: extracting again: its feature file {output / 'large_i3d.npy'} has no settings "
                   "file large_i3d.json beside it\n")  # fmt: skip


def test_a_settings_file_edited_without_its_frame_count_is_extracted_again(first_run, inputs, tmp_path):
    output = copy_of(first_run, tmp_path)
    settings = output / "large_i3d.json"
    record = json.loads(settings.read_text())
    del record["frames"]
    settings.write_text(json.dumps(record))
    status, _, err = extract(inputs, output, inputs["large"])
    assert (status, err) == (0, f"{inputs['large']}: extracting again: its settings file {settings} records no frame "
                                "count\n")


@pytest.mark.parametrize("damage", ["another count", "not a list", "going back", "not numbers"])
def test_a_settings_file_whose_frame_times_do_not_fit_is_extracted_again(first_run, inputs, tmp_path, damage):
    output = copy_of(first_run, tmp_path)
    settings = output / "large_i3d.json"
    record = json.loads(settings.read_text())
    frames = record["frames"]
    assert record["frame_times"] is None  # a constant rate: frame / fps places the frames
    record["frame_times"] = {"another count": [0.0, 0.1], "not a list": "0.0 0.1",
                             "going back": [0.2, 0.1] + [1.0] * (frames - 2), "not numbers": [None] * frames}[damage]
    settings.write_text(json.dumps(record))
    status, _, err = extract(inputs, output, inputs["large"])
    assert (status, err) == (0, f"{inputs['large']}: extracting again: its settings file {settings} records frame "
                                f"times that do not fit its {frames} frames\n")


def test_leftovers_of_killed_writes_are_removed(first_run, inputs, tmp_path):
    output = copy_of(first_run, tmp_path)
    leftovers = [output / ".small_i3d.npy.k1ll3d0x.tmp", output / ".small_i3d.json.abcd1234.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a write")
    status, out, err = extract(inputs, output, inputs["small"])
    assert status == 0 and err == "" and "| 0                | 1       |" in out
    assert not any(leftover.exists() for leftover in leftovers)


def test_a_list_file_with_a_byte_order_mark_keeps_its_first_video(first_run, inputs, tmp_path):
    """Windows editors begin UTF-8 files with U+FEFF; it is not part of the first name."""
    output = copy_of(first_run, tmp_path)
    listing = inputs["folder"] / "windows.txt"
    listing.write_bytes("small.mp4\r\nlarge.avi\r\n".encode("utf-8-sig"))
    status, out, err = extract(inputs, output, listing)
    assert status == 0 and err == ""
    assert "| 0                | 2       | 0      | 0        |" in out


def test_no_video_in_the_paths_is_one_line(inputs, tmp_path):
    folder, output = tmp_path / "empty", tmp_path / "features"
    (folder / "x.mp4").mkdir(parents=True)  # a folder named like a video
    (folder / "notes.txt").write_text("small.mp4\n")  # a list inside a folder is not read
    status, out, err = extract(inputs, output, folder)
    assert status == 2 and out == ""
    assert err.startswith(f"s3r extract: {folder}: no videos found: folders are searched for .3gp .avi ") and err.count("\n") == 1
    assert not output.exists()


@pytest.mark.parametrize("given", ["a folder of pictures and notes", "a folder named like a video",
                                   "a list naming no video"])
def test_a_folder_or_list_given_without_videos_is_refused_beside_videos_before_anything_is_written(inputs, tmp_path,
                                                                                                  given):
    """A mistyped folder is never left out of a batch in silence: the batch does not start."""
    path, output = tmp_path / "given", tmp_path / "features"
    if given == "a list naming no video":
        path = tmp_path / "videos.txt"
        path.write_text("# nothing yet\n\n")
        problem = "no videos found: a list file names one video a line (blank lines and # comments aside)"
    else:
        if given == "a folder named like a video":
            path = tmp_path / "x.mp4"
            path.mkdir()
        else:
            path.mkdir()
            write_picture(path / "frame.png", "PNG")
            (path / "notes.txt").write_text("small.mp4\n")
        problem = ("no videos found: folders are searched for .3gp .avi .flv .gif .m4v .mkv .mov .mp4 .mpeg .mpg .ts "
                   ".webm .wmv files (in their subfolders too)")
    status, out, err = extract(inputs, output, inputs["small"], path)
    assert (status, out, err) == (2, "", f"s3r extract: {path}: {problem}\n")
    assert not output.exists()


def test_files_that_are_not_videos_fail_alone_each_in_one_line_saying_what_they_are(inputs, tmp_path):
    folder, output = tmp_path / "given", tmp_path / "features"
    folder.mkdir()
    picture = write_picture(folder / "clip.mp4", "PNG")
    photo = write_picture(folder / "photo.jpg", "JPEG")
    song = make_audio_only(folder / "song.m4a", cover=True)
    empty = folder / "empty.mkv"
    empty.touch()
    status, out, err = extract(inputs, output, picture, inputs["small"], photo, song, empty)
    assert status == 1
    assert err.splitlines() == [
        f"{picture}: not a video: a single picture (PNG image)",
        f"{photo}: not a video: a single picture (JPG image)",
        f"{song}: has no video stream, only a still picture (cover art)",
        f"{empty}: an empty file (0 bytes), not a video",
    ]  # fmt: skip
    assert "| 1                | 0       | 4      | 2        |" in out
    assert sorted(path.name for path in output.iterdir()) == ["small_i3d.json", "small_i3d.npy"]


def test_a_picture_alone_fails_as_a_video_does_and_writes_nothing(inputs, tmp_path):
    picture, output = write_picture(tmp_path / "clip.mp4", "PNG"), tmp_path / "features"
    status, out, err = extract(inputs, output, picture)
    assert (status, err) == (1, f"{picture}: not a video: a single picture (PNG image)\n")
    assert "| 0                | 0       | 1      | 0        |" in out
    assert list(output.iterdir()) == []


def test_a_folder_is_searched_through_its_linked_folders_and_without_hidden_files(tmp_path):
    """A camera's folder linked into the tree is part of it (once, even when linked twice or back up the tree);
    macOS's ``._`` companions and other hidden files or folders are not videos."""
    real, top = tmp_path / "cameras" / "gate", tmp_path / "clips"
    real.mkdir(parents=True)
    (top / ".cache").mkdir(parents=True)
    for path in (real / "g1.mp4", top / "t1.mp4", top / "._t1.mp4", top / ".cache" / "c.mp4"):
        path.write_bytes(b"not decoded here")
    (top / "gate").symlink_to(real)
    (top / "again").symlink_to(real)
    (real / "up").symlink_to(top)
    assert [video.relative_to(top) for video in list_videos([top])] == [Path("again/g1.mp4"), Path("t1.mp4")]


def test_an_animated_gif_in_a_folder_is_a_video(inputs, tmp_path):
    folder, output = tmp_path / "gifs", tmp_path / "features"
    folder.mkdir()
    make_video(folder / "animated.gif", 8, 64, 48, codec="gif")
    status, out, _ = extract(inputs, output, folder)
    assert status == 0 and load_features(output / "animated_i3d.npy").shape == (1, 1, 2048)


@pytest.fixture(scope="module")
def hostile(inputs, tmp_path_factory):
    """A folder of videos a user may well have: fine ones (one of them a phone's, stored sideways), two downloads
    that broke off, a 2048 × 2 strip, and a name as long as the file system allows."""
    folder, whole = tmp_path_factory.mktemp("hostile"), tmp_path_factory.mktemp("whole")
    name_max = os.pathconf(folder, "PC_NAME_MAX")
    videos = dict(
        fine=make_video(folder / "fine.mp4", 8, 176, 144),
        phone=make_video(folder / "phone.mp4", 8, 176, 144, turn=(-90, False)),  # 90° clockwise to show
        cut_mp4=cut_in_half(make_video(whole / "index_first.mp4", 40, 176, 144, options={"movflags": "faststart"},
                                       seed=3), folder / "index_first.mp4"),
        cut_mkv=cut_in_half(make_video(whole / "matroska.mkv", 40, 176, 144, seed=4), folder / "matroska.mkv"),
        wide=make_video(folder / "wide.mp4", 2, 2048, 2),
        long=make_video(folder / ("n" * (name_max - len(".mp4")) + ".mp4"), 8, 176, 144),
    )  # fmt: skip
    (folder / "not_a_video.mp4").mkdir()
    decoded = {kind: sum(1 for _ in VideoDecoder(videos[kind])) for kind in ("cut_mp4", "cut_mkv")}
    output = tmp_path_factory.mktemp("hostile_features")
    status, out, err = extract(inputs, output, folder)
    return dict(videos=videos, decoded=decoded, name_max=name_max, output=output, status=status, out=out, err=err)


def partial_problem(hostile, kind: str) -> str:
    frames = hostile["decoded"][kind]
    if kind == "cut_mp4":
        return f"only {frames} of the 40 frames its container declares could be decoded (a file cut short, or corrupt)"
    return (f"only {frames} of the about 40 frames its duration declares (1.60 s at 25 frames/s) could be decoded "
            "(a file cut short, or corrupt)")  # fmt: skip


def test_each_problem_video_fails_alone_in_one_line(hostile):
    videos, lines = hostile["videos"], hostile["err"].splitlines()
    long_features = videos["long"].stem + "_i3d.npy"
    assert hostile["status"] == 1
    assert sorted(lines) == sorted([
        f"{videos['long']}: not extracted: the file name {long_features} is too long for the file system "
        f"({len(long_features) + 14} bytes with the temporary name of its atomic write; at most {hostile['name_max']})",
        f"{videos['cut_mp4']}: {partial_problem(hostile, 'cut_mp4')}; --accept_partial extracts the frames that decode",
        f"{videos['cut_mkv']}: {partial_problem(hostile, 'cut_mkv')}; --accept_partial extracts the frames that decode",
        f"{videos['wide']}: its 2048x2 frames would resize to 262144x256 (rtfm preset), beyond the 262,144 pixels a "
        "resized frame may have (1024x256: an aspect ratio up to 4:1)",
    ])  # fmt: skip
    assert "| 2                | 0       | 4      | 2        |" in hostile["out"]
    assert sorted(path.name for path in hostile["output"].iterdir()) == [
        "fine_i3d.json", "fine_i3d.npy", "phone_i3d.json", "phone_i3d.npy"]


def test_memory_does_not_follow_the_input_size(hostile, inputs, tmp_path):
    """Under a 4 GiB address-space limit the 2048 × 2 strip (3 GiB a clip, were it resized) is refused in its line
    and the other video is extracted."""
    videos, output = hostile["videos"], tmp_path / "features"
    command = [sys.executable, str(REPO / "tools" / "extract_features.py"), "--videos", str(videos["wide"]),
               str(videos["fine"]), "--output", str(output), "--weights", str(inputs["weights"]), "--num_crops", "1",
               "--no_progress", "--device", "cpu"]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300,
                              preexec_fn=limit_address_space)  # fmt: skip
    assert finished.returncode == 1, finished.stderr[-2000:]
    assert finished.stderr.splitlines() == [line for line in hostile["err"].splitlines() if "2048x2" in line]
    assert (output / "fine_i3d.npy").is_file() and not (output / "wide_i3d.npy").exists()


def test_a_phone_video_is_extracted_upright_and_its_turn_recorded(hostile):
    record = json.loads((hostile["output"] / "phone_i3d.json").read_text())
    assert (record["rotation"], record["mirrored"], record["width"], record["height"]) == (90, False, 144, 176)
    fine = np.load(hostile["output"] / "fine_i3d.npy")
    assert not np.allclose(np.load(hostile["output"] / "phone_i3d.npy"), fine)  # the same pictures, turned


def test_accept_partial_extracts_what_decodes_and_says_so(hostile, inputs, tmp_path):
    output = tmp_path / "features"
    shutil.copytree(hostile["output"], output)
    videos = hostile["videos"]
    status, out, err = extract(inputs, output, videos["cut_mp4"], videos["cut_mkv"], videos["fine"],
                               extra=("--accept_partial",))  # fmt: skip
    assert status == 0
    assert err.splitlines() == [
        f"{videos[kind]}: {partial_problem(hostile, kind)}; extracted the {hostile['decoded'][kind]} frames that "
        "decode (--accept_partial)" for kind in ("cut_mp4", "cut_mkv")
    ]  # fmt: skip
    for kind, stem in (("cut_mp4", "index_first"), ("cut_mkv", "matroska")):
        record = json.loads((output / f"{stem}_i3d.json").read_text())
        assert record["frames"] == hostile["decoded"][kind] and record["partial"] == partial_problem(hostile, kind)
        assert load_features(output / f"{stem}_i3d.npy").shape == (-(-record["frames"] // 16), 1, 2048)


@pytest.mark.parametrize("problem", ["missing weights", "weights of another network", "output is a file"])
def test_bad_arguments_are_one_line_and_write_nothing(inputs, tmp_path, problem):
    output, weights = tmp_path / "features", inputs["weights"]
    if problem == "missing weights":
        weights = tmp_path / "i3d_r50_kinetics.pth"
    elif problem == "weights of another network":
        weights = tmp_path / "s3r.pth"
        torch.save(S3R(64).state_dict(), weights)
    else:
        output.write_text("not a folder")
    arguments = ("--videos", inputs["small"], "--output", output, "--weights", weights, "--num_crops", "1")
    status, out, err = run_tool("extract_features.py", *map(str, arguments))
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"s3r extract: {output if problem == 'output is a file' else weights}: ")
    assert not output.is_dir()


def test_torchrun_two_processes_write_the_same_files(first_run, inputs, tmp_path):
    output = tmp_path / "features"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(REPO / "tools" / "extract_features.py"), "--videos", str(inputs["small"]), str(inputs["large"]),
        "--output", str(output), "--weights", str(inputs["weights"]), "--num_crops", "1", "--batch_size", "2",
        "--no_progress", "--device", "cpu",
    ]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.count("feature extraction") == 1  # one table, from rank 0
    assert "| 2                | 0       | 0      | 3        |" in finished.stdout
    for name in ("small", "large"):
        expected = np.load(first_run["output"] / f"{name}_i3d.npy")
        actual = np.load(output / f"{name}_i3d.npy")
        assert actual.shape == expected.shape and actual.dtype == np.float32
        # Same batches as one process; only the thread count differs, which may change float rounding.
        assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()
        records = [json.loads((folder / f"{name}_i3d.json").read_text()) for folder in (first_run["output"], output)]
        assert records[0] == records[1]


def test_the_extraction_benchmark_names_the_machine_and_measures_every_stage():
    status, out, err = run_tool("benchmark_extraction.py", "--quick", "--frames", "20", "--repeats", "1",
                                "--device", "cpu")
    assert status == 0, err
    assert out.startswith("machine: ") and "thread" in out.splitlines()[0]
    def figure(label: str) -> str:
        return next(line for line in out.splitlines() if line.strip().startswith(label))

    stages = ["decode (frames/s)", "preprocess (frames/s)", "network fp32 (snippets/s)", "ceiling fp32 (GFLOP/s)",
              "one snippet per forward fp32 (ms)", "end to end, this pipeline (snippets/s)",
              "end to end, baseline (snippets/s)"]  # fmt: skip
    if native_bf16(torch.device("cpu")):
        stages += ["network bf16 (snippets/s)", "ceiling bf16 (GFLOP/s)", "one snippet per forward bf16 (ms)",
                   "end to end, this pipeline bf16 (snippets/s)"]  # fmt: skip
    else:
        assert figure("bf16: skipped, this CPU has no bf16 instructions")
    for stage in stages:
        assert float(figure(stage).split()[len(stage.split())]) > 0, figure(stage)
    assert "% of the ceiling" in figure("network fp32 (snippets/s)")
    for ratio in ["end to end / network, fp32", "end to end / the community way, fp32"] + (
            ["network bf16 / best fp32", "end to end / the community way, bf16"] if native_bf16(torch.device("cpu")) else []):
        assert float(figure(ratio).split()[-1].rstrip("x")) > 0, figure(ratio)
    line = figure("features: ")
    assert float(line.split("= ")[1].split()[0]) <= 1e-4, line  # the pipeline's network computes the same features


@pytest.mark.parametrize("option, value, problem", [
    ("--repeats", "0", "--repeats must be an integer at least 1, not 0"),
    ("--batch_size", "0", "--batch_size must be an integer at least 1, not 0"),
    ("--width", "321", "--width must be even (H.264's 4:2:0 chroma halves it), not 321"),
    ("--height", "0", "--height must be an integer at least 2, not 0"),
    ("--frames", "16", "--frames must be an integer at least 17, not 16; the gowtham recipe needs more than 16"),
])
def test_the_extraction_benchmark_refuses_impossible_sizes_in_one_line(capsys, option, value, problem):
    assert run_command("benchmark-extraction", ["--quick", "--device", "cpu", option, value]) == 2
    assert capsys.readouterr().err == f"s3r benchmark-extraction: {problem}\n"


@pytest.mark.parametrize("option, value, problem", [
    ("--repeats", "0", "--repeats must be an integer at least 1, not 0"),
    ("--width", "321", "--width must be even (H.264's 4:2:0 chroma halves it), not 321"),
    ("--height", "0", "--height must be an integer at least 2, not 0"),
    ("--frames", "15", "--frames must be an integer at least 16, not 15; the vadclip recipe makes a row of every 16 "
                       "frames"),
])
def test_the_clip_extraction_benchmark_refuses_impossible_sizes_in_one_line(capsys, option, value, problem):
    assert run_command("benchmark-extraction", ["--backbone", "clip", "--quick", "--device", "cpu", option, value]) == 2
    assert capsys.readouterr().err == f"s3r benchmark-extraction: {problem}\n"


@pytest.mark.parametrize("command, extra", [("benchmark-extraction", []), ("benchmark-live", ["--no_causality"])])
def test_the_benchmarks_refuse_an_exported_runtime_for_a_backbone_that_is_not_exported(capsys, command, extra):
    assert run_command(command, ["--backbone", "clip", "--runtime", "torch", "openvino", *extra]) == 2
    assert capsys.readouterr().err == (f"s3r {command}: --runtime openvino: s3r export exports i3d; --backbone clip "
                                       "is timed in PyTorch alone\n")


@pytest.mark.parametrize("signal_number, status", [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_with_its_status_keeping_whole_files_only(inputs, tmp_path, signal_number, status):
    """The run is stopped once a first video's files are whole (its settings file is written last); what it
    wrote stays whole, and no temporary file is left."""
    videos = [make_video(tmp_path / f"clip{index}.mp4", 33, 64, 48, fps=25, seed=index) for index in range(4)]
    output = tmp_path / "features"
    command = [sys.executable, str(REPO / "tools" / "extract_features.py"), "--videos", *map(str, videos),
               "--output", str(output), "--weights", str(inputs["weights"]), "--num_crops", "1", "--batch_size", "1",
               "--no_progress"]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    while not list(output.glob("*_i3d.json")):
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.02)
    run.send_signal(signal.Signals(signal_number))
    _, err = run.communicate(timeout=120)
    assert run.returncode == status
    assert err.splitlines()[-1] == f"s3r extract: interrupted by {signal.Signals(signal_number).name}"
    done = sorted(path.name for path in output.glob("*_i3d.json"))
    assert done and not list(output.glob(".*.tmp"))
    for name in done:
        assert load_features(output / name.replace(".json", ".npy"), num_crops=1, feature_size=2048).shape[0] == 3
