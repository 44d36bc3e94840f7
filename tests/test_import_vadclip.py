"""``s3r import-features --from vadclip``: VadCLIP's released CLIP features of UCF-Crime and XD-Violence, in the
release's own layout (a file per video and crop, ``<video>__<k>.npy`` of [T, 512]; CSV lists ``path,label`` with the
authors' paths, all ten crops of a training video, one of a test video), become a described dataset that
``s3r learn-dictionary`` and ``s3r train`` run on. Bad or incomplete folders are refused in one line, and nothing
is written."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from anomaly.cli.command import run_command
from anomaly.engine.detector_file import load_detector_file
from tests.conftest import shared_path

AUTHORS = "/home/xbgydx/Desktop"  # where the released lists say the features are
CROPS = 10


@dataclass
class Video:
    video_id: str
    folder: str  # the release's folder of its files, under the download
    label: str
    anomalous: bool
    rows: int
    events: List[Tuple[int, int]] = field(default_factory=list)  # annotated frame ranges, both ends included


UCF_NORMAL = "UCFClipFeatures/Training_Normal_Videos_Anomaly"
UCF_TRAIN = [Video("Abuse001_x264", "UCFClipFeatures/Abuse", "Abuse", True, 6),
             Video("Arrest002_x264", "UCFClipFeatures/Arrest", "Arrest", True, 5),
             *(Video(f"Normal_Videos{number}_x264", UCF_NORMAL, "Normal", False, 4 + number % 3)
               for number in (307, 308, 309))]
UCF_TEST = [Video("Abuse028_x264", "UCFClipFeatures/Abuse", "Abuse", True, 7, [(20, 40), (70, 200)]),
            Video("Normal_Videos_003_x264", "UCFClipFeatures/Testing_Normal_Videos_Anomaly", "Normal", False, 5)]
XD_NORMAL = ("v=abcdEFG__#1", "v=hijk-LM__#00-01-00_00-02-00", "wangted.2008__#01-26-25_01-27-00")
XD_TRAIN = [Video("Bad.Boys.1995__#00-26-51_00-27-53_label_B2-0-0", "XDTrainClipFeatures", "B2-0-0", True, 6),
            Video("Black.Hawk.Down.2001__#01-13-59_01-14-49_label_G-B2-0", "XDTrainClipFeatures", "G-B2-0", True, 5),
            *(Video(f"{name}_label_A", "XDTrainClipFeatures", "A", False, 4 + index)
              for index, name in enumerate(XD_NORMAL))]
XD_TEST = [Video("Braveheart.1995__#00-56-30_00-57-20_label_B1-0-0", "XDTestClipFeatures", "B1-0-0", True, 6,
                 [(10, 30), (50, 60)]),
           Video("v=yZ2wlTAN49g__#00-03-00_00-06-00_label_A", "XDTestClipFeatures", "A", False, 4)]
FLAVOURS = {  # benchmark: (training videos, test videos, the crop the test list names, lists' names, annotations)
    "ucf-crime": (UCF_TRAIN, UCF_TEST, 5, "ucf_CLIP_rgb", "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"),
    "xd-violence": (XD_TRAIN, XD_TEST, 0, "xd_CLIP_rgb", "annotations.txt"),
}


@dataclass
class Release:
    """A download laid out as VadCLIP's, its lists and the official annotations."""

    benchmark: str
    download: Path  # holds UCFClipFeatures/, or XDTrainClipFeatures/ and XDTestClipFeatures/
    train_list: Path
    test_list: Path
    annotations: Path
    crops: Dict[str, np.ndarray]  # video id -> its crops as written, [T, 10, 512]
    test_crop: int

    def crop_file(self, video: Video, crop: int) -> Path:
        return self.download / video.folder / f"{video.video_id}__{crop}.npy"

    @property
    def videos(self) -> Tuple[List[Video], List[Video]]:
        return FLAVOURS[self.benchmark][:2]


def write_list(path: Path, rows: List[Tuple[str, str]]) -> Path:
    path.write_text("path,label\n" + "".join(f"{file},{label}\n" for file, label in rows))
    return path


def make_release(tmp_path: Path, benchmark: str, test_crops: str = "ten", longer: int = 0) -> Release:
    """``test_crops``: "ten" (every crop file of a test video is there) or "one" (only the one its list names);
    ``longer``: rows added to every video."""
    train, test, test_crop, list_name, annotations_name = FLAVOURS[benchmark]
    generator = np.random.default_rng(7)
    download, lists = tmp_path / "download", tmp_path / "VadCLIP" / "list"
    lists.mkdir(parents=True)
    release = Release(benchmark, download, lists / f"{list_name}.csv", lists / f"{list_name}test.csv",
                      tmp_path / annotations_name, {}, test_crop)
    for video in train + test:
        crops = generator.standard_normal((video.rows + longer, CROPS, 512)).astype(np.float32)
        release.crops[video.video_id] = crops
        (download / video.folder).mkdir(parents=True, exist_ok=True)
        for crop in range(CROPS):
            if video in train or test_crops == "ten" or crop == test_crop:
                np.save(release.crop_file(video, crop), crops[:, crop])
    authors = lambda video, crop: f"{AUTHORS}/{video.folder}/{video.video_id}__{crop}.npy"  # noqa: E731
    ordered = [video for video in train if video.anomalous] + [video for video in train if not video.anomalous]
    write_list(release.train_list, [(authors(video, crop), video.label) for video in ordered for crop in range(CROPS)])
    write_list(release.test_list, [(authors(video, test_crop), video.label) for video in test])
    if benchmark == "ucf-crime":  # every test video has a line; -1 -1 for no event
        lines = [f"{video.video_id}.mp4  {video.label}  " + "  ".join(
            f"{start}  {end}" for start, end in (video.events + [(-1, -1)] * 2)[:2]) + "  " for video in test]
    else:  # the violent test videos only
        lines = [f"{video.video_id} " + " ".join(f"{start} {end}" for start, end in video.events)
                 for video in test if video.anomalous]
    release.annotations.write_text("\n".join(lines) + "\n")
    return release


def import_arguments(release: Release, root: Path, *extra: str) -> List[str]:
    return ["imported", "--from", "vadclip", "--benchmark", release.benchmark, "--train_list", str(release.train_list),
            "--test_list", str(release.test_list), "--annotations", str(release.annotations), "--features",
            str(release.download), "--root_path", str(root / "data"), "--dictionary_path", str(root / "dictionary"),
            "--no_progress", *extra]  # fmt: skip


def expected_labels(video: Video) -> List[float]:
    labels = np.zeros(16 * video.rows)
    for start, end in video.events:
        labels[start : end + 1] = 1.0
    return labels.tolist()


@pytest.mark.parametrize("benchmark, test_crops, crops", [
    ("ucf-crime", "ten", list(range(CROPS))),
    ("ucf-crime", "one", [5]),
    ("xd-violence", "one", [0]),
    ("xd-violence", "ten", list(range(CROPS))),
])
def test_the_release_becomes_a_described_dataset_of_clip_features(tmp_path, capsys, benchmark, test_crops, crops):
    release = make_release(tmp_path, benchmark, test_crops)
    assert run_command("import-features", import_arguments(release, tmp_path)) == 0
    out, err = capsys.readouterr()
    root, dataset = tmp_path / "data", tmp_path / "data" / "imported"
    assert out.splitlines() == [
        f"s3r learn-dictionary --dataset imported --root_path {root} --dictionary_path {tmp_path / 'dictionary'}",
        f"s3r train --dataset imported --root_path {root} --dictionary_path {tmp_path / 'dictionary'} --version "
        "imported"]  # fmt: skip
    train, test = release.videos
    one_crop = (f"{release.test_list}: 2 of the 7 videos have only the crop their list names, crop "
                f"{release.test_crop}, not VadCLIP's 10: the dataset keeps crop {release.test_crop} of every video, "
                "training videos too (1 crop)")
    assert (one_crop in err.splitlines()) == (len(crops) == 1)
    for subset, videos in (("train", train), ("test", test)):
        for video in videos:
            features = np.load(dataset / "clip" / subset / f"{video.video_id}_clip.npy")
            assert features.dtype == np.float32
            assert np.array_equal(features, release.crops[video.video_id][:, crops])  # [T, crops, 512], in order
    anomalous = sorted(video.video_id for video in train if video.anomalous)
    normal = sorted(video.video_id for video in train if not video.anomalous)
    assert (dataset / "imported.training.csv").read_text().split() == ["video-id", *anomalous, *normal]
    assert (dataset / "imported.testing.csv").read_text().split() == ["video-id", *(video.video_id for video in test)]
    ground_truth = json.loads((dataset / "imported_ground_truth.testing.json").read_text())
    assert ground_truth == {video.video_id: {"num_frames": 16 * video.rows, "labels": expected_labels(video)}
                            for video in test}
    description = json.loads((dataset / "imported.dataset.json").read_text())
    seed, metric = {"ucf-crime": (49, "AUC"), "xd-violence": (823, "AP")}[benchmark]
    expected = {"format": "s3r-dataset/1", "name": "imported", "num_crops": len(crops), "feature_size": 512,
                "metric": metric, "num_anomalous_train": 2, "dictionary_ratio": 50, "batch_size": 2, "backbone": "clip",
                "preset": "vadclip" if len(crops) == 10 or crops == [0] else None, "frame_rate": "native",
                "random_state": seed}  # the benchmark's ratio and seed; a recipe this project's extraction makes
    assert {field: description.get(field) for field in expected} == expected
    assert sorted(path.name for path in root.iterdir()) == ["imported"]  # no hidden folder left behind


def test_lists_edited_to_the_download_need_no_features_folder(tmp_path, capsys):
    """As VadCLIP's README has it: the lists' paths changed to where the features are."""
    release = make_release(tmp_path, "xd-violence")
    for path in (release.train_list, release.test_list):
        path.write_text(path.read_text().replace(AUTHORS, str(release.download)))
    arguments = import_arguments(release, tmp_path)
    at = arguments.index("--features")
    del arguments[at : at + 2]
    assert run_command("import-features", arguments) == 0
    assert json.loads((tmp_path / "data" / "imported" / "imported.dataset.json").read_text())["num_crops"] == 10


def test_the_features_folder_may_be_the_downloaded_one_or_the_one_above(tmp_path, capsys):
    release = make_release(tmp_path, "ucf-crime")
    arguments = import_arguments(release, tmp_path)
    arguments[arguments.index("--features") + 1] = str(release.download / "UCFClipFeatures")
    assert run_command("import-features", arguments) == 0
    video = UCF_TEST[0]
    features = np.load(tmp_path / "data" / "imported" / "clip" / "test" / f"{video.video_id}_clip.npy")
    assert np.array_equal(features, release.crops[video.video_id])


def test_the_imported_dataset_learns_its_dictionary_and_trains(tmp_path, monkeypatch, capsys):
    """On the layout the release has: the test videos hold only the crop their list names (one crop: quick)."""
    release = make_release(tmp_path, "ucf-crime", "one")
    monkeypatch.chdir(tmp_path)
    assert run_command("import-features", import_arguments(release, tmp_path)) == 0
    folders = ["--root_path", "data", "--dictionary_path", "dictionary"]
    assert run_command("learn-dictionary", ["--dataset", "imported", *folders]) == 0
    assert run_command("train", ["--dataset", "imported", *folders, "--version", "clip", "--max_epoch", "2",
                                 "--evaluate_min_step", "0"]) == 0  # fmt: skip
    detector = load_detector_file(tmp_path / "checkpoint" / "clip" / "imported_s3r_clip.detector.pth")
    assert detector.dataset == "imported" and detector.features.backbone == "clip"
    # Crop 5 (the flipped frame's centre) is not the one crop extraction cuts: no recipe recorded
    assert detector.features.num_crops == 1 and detector.features.preset is None
    assert "AUC" in (tmp_path / "logs" / "clip" / "imported_s3r_clip.score").read_text()


def test_real_ucf_crime_annotations_label_the_test_videos(tmp_path, capsys):
    """The official per-video .mat files of UCF-Crime (../shared) label the test videos of the same names."""
    annotations = shared_path("data", "ucf-crime", "temporal_annotations_mat")
    release = make_release(tmp_path, "ucf-crime", longer=12)  # Abuse028_x264: 19 rows, 304 frames
    arguments = import_arguments(release, tmp_path)
    arguments[arguments.index("--annotations") + 1] = str(annotations)
    assert run_command("import-features", arguments) == 0
    ground_truth = json.loads((tmp_path / "data" / "imported" / "imported_ground_truth.testing.json").read_text())
    abuse = np.array(ground_truth["Abuse028_x264"]["labels"])
    assert len(abuse) == 304 and abuse.sum() == 240 - 165 + 1 and abuse[165] == abuse[240] == 1  # Anno: [165, 240]
    assert not any(ground_truth["Normal_Videos_003_x264"]["labels"])


def refusal(capsys, status: int) -> str:
    err = capsys.readouterr().err
    assert status == 2, err
    return err.splitlines()[-1]


def video_named(video_id: str) -> Video:
    return next(video for videos in FLAVOURS.values() for video in videos[0] + videos[1] if video.video_id == video_id)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def break_release(release: Release, case: str) -> str:
    """Spoil ``release`` as ``case`` says; the refusal expected (after ``s3r import-features: ``)."""
    abuse, arrest, normal = (video_named(name) for name in ("Abuse028_x264", "Arrest002_x264", "Normal_Videos308_x264"))
    if case == "missing crop file":  # a test video with some of its ten crops
        release.crop_file(abuse, 3).unlink()
        return (f"{release.crop_file(abuse, 3)}: missing: video 'Abuse028_x264' ({release.test_list} line 2) has crops "
                "0, 1, 2, 4, 5, 6, 7, 8, 9 of VadCLIP's 10")
    if case == "unequal lengths":
        np.save(release.crop_file(arrest, 4), np.zeros((4, 512), np.float32))
        return (f"{release.crop_file(arrest, 4)}: 4 rows, but {release.crop_file(arrest, 0)} has 5: every crop of "
                "video 'Arrest002_x264' needs a row per 16 frames of the same video")
    if case == "row without its file":
        release.crop_file(normal, 9).unlink()
        return (f"{release.train_list}: line 41: feature file {AUTHORS}/{normal.folder}/Normal_Videos308_x264__9.npy "
                f"not found under {release.download} (by any tail of its path)")
    if case == "wrong header":
        replace_in(release.train_list, "path,label", "file,label")
        return f"{release.train_list}: line 1 must be the header path,label (VadCLIP's feature lists), not file,label"
    if case == "unknown label":
        replace_in(release.train_list, ",Arrest\n", ",Arrested\n")
        return (f"{release.train_list}: line 12: label 'Arrested' is not one of VadCLIP's UCF-Crime labels (Normal "
                "for a normal video, else one of Abuse, Arrest, Arson, Assault, Burglary, Explosion, Fighting, "
                "RoadAccidents, Robbery, Shooting, Shoplifting, Stealing, Vandalism)")
    if case == "test video not annotated":
        replace_in(release.annotations, "Abuse028_x264.mp4  Abuse  20  40  70  200  \n", "")
        return (f"{release.annotations}: has no annotation of the anomalous test video 'Abuse028_x264' "
                f"({release.test_list} line 2, label Abuse)")
    if case == "normal video annotated":
        replace_in(release.annotations, "Normal_Videos_003_x264.mp4  Normal  -1  -1", "Normal_Videos_003_x264.mp4  "
                   "Normal  10  20")
        return (f"{release.annotations}: marks anomalous frames of the normal test video 'Normal_Videos_003_x264' "
                f"({release.test_list} line 3, label Normal)")
    if case == "anomalous video without event":
        replace_in(release.annotations, "Abuse  20  40  70  200", "Abuse  -1  -1  -1  -1")
        return (f"{release.annotations}: marks no anomalous frame of the anomalous test video 'Abuse028_x264' "
                f"({release.test_list} line 2, label Abuse)")
    if case == "wrong feature width":
        np.save(release.crop_file(video_named("Normal_Videos_003_x264"), 0), np.zeros((5, 768), np.float32))
        return (f"{release.crop_file(video_named('Normal_Videos_003_x264'), 0)}: expected 512 channels, found 768 "
                "(shape [5, 768])")
    if case == "not a number":  # found only when the features are read whole, after every other check
        crops = np.load(release.crop_file(abuse, 7))
        crops[2, 9] = np.nan
        np.save(release.crop_file(abuse, 7), crops)
        return f"{release.crop_file(abuse, 7)}: NaN or inf in VadCLIP CLIP features: every value must be finite"
    raise ValueError(case)


CASES = ["missing crop file", "unequal lengths", "row without its file", "wrong header", "unknown label",
         "test video not annotated", "normal video annotated", "anomalous video without event", "wrong feature width",
         "not a number"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_or_incomplete_release_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, case):
    release = make_release(tmp_path, "ucf-crime")
    problem = break_release(release, case)
    assert refusal(capsys, run_command("import-features", import_arguments(release, tmp_path))) == \
        f"s3r import-features: {problem}"
    data = tmp_path / "data"
    assert not data.exists() or list(data.iterdir()) == []  # no dataset, no hidden half-written one


@pytest.mark.parametrize("old, new, line, problem", [
    (",B1-0-0", ",B3-0-0", 2, "label 'B3-0-0' is not one of VadCLIP's XD-Violence labels (A for a normal video, "
                              "else one of B1, B2, B4, B5, B6, G or up to three of them joined by '-' and padded with "
                              "0 (B2-G-0))"),
    (",B1-0-0", ",B4-0-0", 2, "label 'B4-0-0', but the file's name says 'B1-0-0'"),
    ("__0.npy,B1-0-0", "__0.npz,B1-0-0", 2,
     f"'{AUTHORS}/XDTestClipFeatures/Braveheart.1995__#00-56-30_00-57-20_label_B1-0-0__0.npz' is not a VadCLIP "
     "feature file (<video>__<crop>.npy, crop 0 to 9)"),
])
def test_an_xd_violence_test_list_row_that_does_not_hold_is_refused(tmp_path, capsys, old, new, line, problem):
    release = make_release(tmp_path, "xd-violence", "one")
    replace_in(release.test_list, old, new)
    assert refusal(capsys, run_command("import-features", import_arguments(release, tmp_path))) == \
        f"s3r import-features: {release.test_list}: line {line}: {problem}"
    assert not (tmp_path / "data").exists()


def test_an_existing_dataset_of_that_name_is_refused_and_left_as_it_was(tmp_path, capsys):
    release = make_release(tmp_path, "xd-violence", "one")
    assert run_command("import-features", import_arguments(release, tmp_path)) == 0
    dataset = tmp_path / "data" / "imported"
    before = {path: path.read_bytes() for path in dataset.rglob("*") if path.is_file()}
    capsys.readouterr()
    assert refusal(capsys, run_command("import-features", import_arguments(make_release(
        tmp_path / "other", "ucf-crime"), tmp_path))) == (
        f"s3r import-features: {dataset}: dataset 'imported' exists already: import under another name, or remove "
        "this folder to import again")  # fmt: skip
    assert {path: path.read_bytes() for path in dataset.rglob("*") if path.is_file()} == before


def test_a_batch_larger_than_a_class_is_refused(tmp_path, capsys):
    release = make_release(tmp_path, "ucf-crime")
    status = run_command("import-features", import_arguments(release, tmp_path, "--batch_size", "3"))
    assert refusal(capsys, status) == (
        f"s3r import-features: --batch_size 3 needs 3 training videos of each class, but the anomalous class of "
        f"{release.train_list} has 2: --batch_size 2 or less would work (or add videos)")
    assert not (tmp_path / "data").exists()
