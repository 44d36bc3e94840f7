"""Ground truth and video lists from the datasets' own annotations (anomaly.data.ground_truth, tools/)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from anomaly.data.ground_truth import (
    build_ground_truth,
    ground_truth_json,
    read_ucf_crime_mat,
    read_ucf_crime_txt,
    read_xd_violence_annotations,
    write_ground_truth,
)
from anomaly.data.video_lists import make_video_list
from anomaly.errors import InputError
from tests.conftest import run_tool, shared_path


def format_ucf_crime_txt_line(video_id: str, event_class: str, ranges) -> str:
    """One line of the official UCF-Crime test annotation file (two ranges, ``-1 -1`` padding)."""
    numbers = [number for pair in ranges for number in pair] + [-1, -1] * (2 - len(ranges))
    return "  ".join([f"{video_id}.mp4", event_class] + [str(number) for number in numbers])


def shared(*parts: str) -> Path:
    """A file under ../shared/data, or skip (see shared_path)."""
    return shared_path("data", *parts)


def write_features(folder: Path, lengths: dict) -> Path:
    """Tiny feature files [T, 1, 1]: the builders only read T from the header."""
    folder.mkdir(parents=True, exist_ok=True)
    for video_id, length in lengths.items():
        np.save(folder / f"{video_id}_i3d.npy", np.zeros((length, 1, 1), dtype=np.float32))
    return folder


def write_list(path: Path, video_ids) -> Path:
    path.write_text("video-id\n" + "\n".join(video_ids) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# ShanghaiTech
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shanghaitech_features(tmp_path_factory):
    """Feature files of the real lengths (T = num_frames / 16) for the test split, and one-snippet training files
    (the official mask folder also holds the anomalous training videos' masks)."""
    reference = json.loads(shared("shanghaitech", "shanghaitech_ground_truth.testing.json").read_text())
    root = tmp_path_factory.mktemp("shanghaitech") / "i3d"
    write_features(root / "test", {video: entry["num_frames"] // 16 for video, entry in reference.items()})
    training = shared("shanghaitech", "shanghaitech.training.csv").read_text().split()[1:]
    write_features(root / "train", {video: 1 for video in training})
    return root


def test_shanghaitech_json_is_reproduced_byte_for_byte(shanghaitech_features, tmp_path):
    output = tmp_path / "gt.json"
    status, stdout, stderr = run_tool(
        "make_ground_truth.py",
        "--dataset", "shanghaitech",
        "--annotations", str(shared("shanghaitech", "test_frame_mask")),
        "--features", str(shanghaitech_features / "test"),
        "--list", str(shared("shanghaitech", "shanghaitech.testing.csv")),
        "--output", str(output),
    )
    assert status == 0, stderr
    assert output.read_bytes() == shared("shanghaitech", "shanghaitech_ground_truth.testing.json").read_bytes()


def test_shanghaitech_lists_are_reproduced_from_the_masks(shanghaitech_features, tmp_path):
    masks = shared("shanghaitech", "test_frame_mask")
    for subset, published in (("train", "shanghaitech.training.csv"), ("test", "shanghaitech.testing.csv")):
        output = tmp_path / f"{subset}.csv"
        video_ids, num_anomalous = make_video_list("shanghaitech", shanghaitech_features / subset, output, masks)
        assert output.read_text() == shared("shanghaitech", published).read_text()
        assert num_anomalous == {"train": 63, "test": 44}[subset]


def test_masks_are_padded_with_their_last_label_and_missing_masks_are_normal(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "ends_anomalous.npy", np.array([0, 0, 1, 1], dtype=np.uint8))
    np.save(masks / "ends_normal.npy", np.array([1, 0, 0], dtype=np.uint8))
    features = write_features(tmp_path / "test", {"ends_anomalous": 1, "ends_normal": 1, "no_mask": 2})
    labels = build_ground_truth("shanghaitech", masks, features, ["ends_anomalous", "ends_normal", "no_mask"])
    assert list(labels) == ["ends_anomalous", "ends_normal", "no_mask"]
    np.testing.assert_array_equal(labels["ends_anomalous"], [0, 0] + [1] * 14)
    np.testing.assert_array_equal(labels["ends_normal"], [1] + [0] * 15)
    np.testing.assert_array_equal(labels["no_mask"], np.zeros(32))


def test_a_mask_longer_than_the_features_is_cut_unless_an_event_starts_past_the_end(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "long.npy", np.array([0] * 10 + [1] * 10, dtype=np.uint8))  # 20 frames, one snippet = 16
    features = write_features(tmp_path / "test", {"long": 1})
    np.testing.assert_array_equal(build_ground_truth("shanghaitech", masks, features)["long"], [0] * 10 + [1] * 6)
    np.save(masks / "long.npy", np.array([0] * 17 + [1] * 3, dtype=np.uint8))
    with pytest.raises(InputError, match=r"long\.npy: video 'long': an anomalous event starts at frame 17, past"):
        build_ground_truth("shanghaitech", masks, features)


def test_a_mask_of_a_video_without_features_is_an_error(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "ghost.npy", np.array([0, 1], dtype=np.uint8))
    features = write_features(tmp_path / "i3d" / "test", {"real": 1})
    with pytest.raises(InputError) as error:
        build_ground_truth("shanghaitech", masks, features)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(masks / "ghost.npy") + ": ")
    assert "'ghost'" in message and "no feature file" in message
    # The same mask is fine once the video has features in the sibling (training) folder.
    write_features(tmp_path / "i3d" / "train", {"ghost": 3})
    assert list(build_ground_truth("shanghaitech", masks, features)) == ["real"]


# ---------------------------------------------------------------------------------------------------------------
# UCF-Crime
# ---------------------------------------------------------------------------------------------------------------


def test_ucf_crime_txt_parser_on_a_hand_written_sample(tmp_path):
    text = tmp_path / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    text.write_text(
        "Arson011_x264.mp4  Arson  150  420  680  1267\n"
        "Burglary005_x264.mp4  Burglary  4710  5040  -1  -1\n"
        "\n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n"
    )
    assert read_ucf_crime_txt(text) == {
        "Arson011_x264": [(150, 420), (680, 1267)],
        "Burglary005_x264": [(4710, 5040)],
        "Normal_Videos_003_x264": [],
    }


def test_ucf_crime_ranges_include_the_end_frame_and_are_cut_at_num_frames(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_text("a.mp4  Abuse  3  5  30  100\nb.mp4  Normal  -1  -1  -1  -1\n")
    features = write_features(tmp_path / "test", {"a": 2, "b": 1})
    labels = build_ground_truth("ucf-crime", text, features, ["a", "b"])
    expected = np.zeros(32)
    expected[3:6] = 1  # frames 3, 4, 5
    expected[30:] = 1  # 30 .. 100, cut at num_frames = 32
    np.testing.assert_array_equal(labels["a"], expected)
    np.testing.assert_array_equal(labels["b"], np.zeros(16))


def test_ucf_crime_mat_files_of_any_integer_dtype(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "mat"
    folder.mkdir()
    for video_id, anno in (
        ("u8", np.array([[200, 255]], dtype=np.uint8)),  # 255 + 1 must not wrap around
        ("u16", np.array([[10, 20], [300, 310]], dtype=np.uint16)),
        ("normal", np.array([[-1, -1]], dtype=np.int16)),
    ):
        record = {"VideoName": f"{video_id}.mp4", "Anno": anno, "EventName": "Event"}
        savemat(folder / f"{video_id}.mat", {"Annotation_file": record})
    assert read_ucf_crime_mat(folder / "u8.mat") == ("u8", [(200, 255)])
    assert read_ucf_crime_mat(folder / "u16.mat") == ("u16", [(10, 20), (300, 310)])
    assert read_ucf_crime_mat(folder / "normal.mat") == ("normal", [])
    features = write_features(tmp_path / "test", {"u8": 16, "u16": 20, "normal": 4})
    labels = build_ground_truth("ucf-crime", folder, features, ["u8", "u16", "normal"])
    assert labels["u8"].sum() == 56 and labels["u8"][200] == 1 and labels["u8"][199] == 0
    assert labels["u16"].sum() == 11 + 11
    assert labels["normal"].sum() == 0


def test_ucf_crime_txt_and_mat_folder_give_the_same_json_on_the_real_annotations(tmp_path):
    folder = shared("ucf-crime", "temporal_annotations_mat")
    test_ids = shared("ucf-crime", "ucf-crime.testing.csv").read_text().split()[1:]
    lines, lengths = [], {}
    for index, video_id in enumerate(test_ids):
        _, ranges = read_ucf_crime_mat(folder / f"{video_id}.mat")
        event_class = "Normal" if not ranges else video_id.split("0")[0]  # e.g. Abuse; the parser ignores it
        lines.append(format_ucf_crime_txt_line(video_id, event_class, ranges))
        last = max([end for _, end in ranges], default=100)
        # Every third annotated video ends inside its last event, to exercise the cut at num_frames.
        cut = ranges and index % 3 == 0 and ranges[-1][1] - ranges[-1][0] >= 16
        lengths[video_id] = (last // 16) if cut else math.ceil((last + 1) / 16) + 1
    text = tmp_path / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    text.write_text("\n".join(lines) + "\n")
    features = write_features(tmp_path / "test", lengths)
    from_mat = build_ground_truth("ucf-crime", folder, features, test_ids)
    from_txt = build_ground_truth("ucf-crime", text, features, test_ids)
    assert ground_truth_json(from_mat) == ground_truth_json(from_txt)
    assert len(from_mat) == 290
    assert sum(labels.any() for labels in from_mat.values()) == 140
    assert any(labels[-1] == 1 for labels in from_mat.values())  # some events were cut at the end


# ---------------------------------------------------------------------------------------------------------------
# XD-Violence
# ---------------------------------------------------------------------------------------------------------------


def test_xd_violence_annotations(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_text(
        "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6 0 20 40 45 60 1000\n"
        "v=abc__#1_label_B4-0-0.mp4 5 5\n"
    )
    assert read_xd_violence_annotations(text) == {
        "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6": [(0, 20), (40, 45), (60, 1000)],
        "v=abc__#1_label_B4-0-0": [(5, 5)],
    }
    ids = ["Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", "v=abc__#1_label_B4-0-0", "calm__#1_label_A"]
    features = write_features(tmp_path / "test", {ids[0]: 5, ids[1]: 1, ids[2]: 2})
    labels = build_ground_truth("xd-violence", text, features, ids)
    assert labels[ids[0]].sum() == 21 + 6 + 20  # the last range is cut at 80 frames
    np.testing.assert_array_equal(np.flatnonzero(labels[ids[1]]), [5])
    assert labels[ids[2]].sum() == 0


# ---------------------------------------------------------------------------------------------------------------
# Json format and lists
# ---------------------------------------------------------------------------------------------------------------


def test_json_format(tmp_path):
    path = write_ground_truth({"b": np.array([0, 1.0]), "a": np.array([1, 0, 0])}, tmp_path / "gt.json")
    assert path.read_text() == '{"b": {"num_frames": 2, "labels": [0.0, 1.0]}, ' \
                               '"a": {"num_frames": 3, "labels": [1.0, 0.0, 0.0]}}'


def test_video_lists_put_anomalous_videos_first(tmp_path):
    features = write_features(
        tmp_path / "ucf", {"Normal_Videos001_x264": 1, "Abuse002_x264": 1, "Normal_Videos_003_x264": 1,
                           "Abuse001_x264": 1}
    )
    ids, num_anomalous = make_video_list("ucf-crime", features, tmp_path / "ucf.csv")
    assert ids == ["Abuse001_x264", "Abuse002_x264", "Normal_Videos001_x264", "Normal_Videos_003_x264"]
    assert num_anomalous == 2
    assert (tmp_path / "ucf.csv").read_text().splitlines()[0] == "video-id"

    features = write_features(tmp_path / "xd", {"a__#1_label_A": 1, "b__#1_label_B1-0-0": 1})
    assert make_video_list("xd-violence", features, tmp_path / "xd.csv") == (
        ["b__#1_label_B1-0-0", "a__#1_label_A"], 1)

    features = write_features(tmp_path / "st", {"01_001": 1, "01_0014": 1, "02_0002": 1})
    (tmp_path / "anomalous.txt").write_text("video-id\n02_0002\n01_0014\n")
    assert make_video_list("shanghaitech", features, tmp_path / "st.csv", tmp_path / "anomalous.txt") == (
        ["01_0014", "02_0002", "01_001"], 2)
    status, stdout, stderr = run_tool("make_video_lists.py", "--dataset", "shanghaitech", "--features", str(features),
                      "--output", str(tmp_path / "x.csv"))
    assert status == 2 and "--anomalous" in stderr


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line naming the file
# ---------------------------------------------------------------------------------------------------------------


def one_line_error(callable_, *args) -> str:
    with pytest.raises(InputError) as error:
        callable_(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_annotation_for_a_video_without_features(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_text("a.mp4  Abuse  3  5  -1  -1\nmissing.mp4  Abuse  1  2  -1  -1\n")
    features = write_features(tmp_path / "test", {"a": 2})
    message = one_line_error(build_ground_truth, "ucf-crime", text, features, ["a"])
    assert message.startswith(f"{text}: ") and "'missing'" in message and "no feature file" in message


def test_an_annotation_starting_past_the_end_of_the_video(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_text("a.mp4  Abuse  3  5  40  50\n")
    features = write_features(tmp_path / "test", {"a": 2})
    message = one_line_error(build_ground_truth, "ucf-crime", text, features, ["a"])
    assert message.startswith(f"{text}: video 'a': annotation [40, 50] starts past the video's end")
    assert "num_frames = 32" in message


def test_a_list_naming_a_missing_feature_file(tmp_path):
    features = write_features(tmp_path / "test", {"a": 2})
    test_list = write_list(tmp_path / "test.csv", ["a", "b"])
    text = tmp_path / "annotations.txt"
    text.write_text("a.mp4  Abuse  3  5  -1  -1\n")
    status, stdout, stderr = run_tool("make_ground_truth.py", "--dataset", "ucf-crime", "--annotations", str(text),
                      "--features", str(features), "--list", str(test_list), "--output", str(tmp_path / "gt.json"))
    assert status == 2 and stdout == ""
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"s3r ground-truth: {features / 'b_i3d.npy'}: ")
    assert "not found" in stderr and str(test_list) in stderr
    assert not (tmp_path / "gt.json").exists()


@pytest.mark.parametrize(
    "line, problem",
    [
        ("a.mp4  Abuse  3  5  -1", "expected 'Name.mp4 Class start1 end1 start2 end2', found 5 fields"),
        ("a.mp4  Abuse  3  five  -1  -1", "frame numbers must be integers"),
        ("a.mp4  Abuse  9  5  -1  -1", "invalid frame range [9, 5]"),
    ],
)
def test_a_malformed_ucf_crime_line(tmp_path, line, problem):
    text = tmp_path / "annotations.txt"
    text.write_text("b.mp4  Normal  -1  -1  -1  -1\n" + line + "\n")
    message = one_line_error(read_ucf_crime_txt, text)
    assert message.startswith(f"{text}: line 2: ") and problem in message


def test_a_malformed_xd_violence_line(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_text("video_label_B1 10 20 30\n")
    message = one_line_error(read_xd_violence_annotations, text)
    assert message.startswith(f"{text}: line 1: ") and "start/end pairs" in message


def test_non_utf8_annotation_texts_are_one_line_errors(tmp_path):
    text = tmp_path / "annotations.txt"
    text.write_bytes("a.mp4  Abuse  3  5  -1  -1\nb\u00e9.mp4  Abuse  1  2  -1  -1\n".encode("latin-1"))
    message = one_line_error(read_ucf_crime_txt, text)
    assert message.startswith(f"{text}: not UTF-8 text") and "line 2" in message
    message = one_line_error(read_xd_violence_annotations, text)
    assert message.startswith(f"{text}: not UTF-8 text")

    features = write_features(tmp_path / "st", {"01_001": 1, "b\u00e9": 1})
    ids = tmp_path / "anomalous.txt"
    ids.write_bytes("b\u00e9\n".encode("latin-1"))
    status, stdout, stderr = run_tool("make_video_lists.py", "--dataset", "shanghaitech", "--features", str(features),
                      "--anomalous", str(ids), "--output", str(tmp_path / "st.csv"))
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r video-lists: {ids}: not UTF-8 text")
    assert not (tmp_path / "st.csv").exists()


def test_listed_anomalous_ids_need_feature_files_and_a_list_needs_an_anomalous_video(tmp_path):
    features = write_features(tmp_path / "i3d" / "train", {"01_001": 1, "01_002": 1, "02_001": 1})
    write_features(tmp_path / "i3d" / "test", {"03_001": 1})
    ids = tmp_path / "anomalous.txt"
    output = tmp_path / "st.csv"

    # Ids of the other split (features in a sibling folder) are fine: one file may serve both lists.
    ids.write_text("01_002\n03_001\n")
    assert make_video_list("shanghaitech", features, output, ids) == (["01_002", "01_001", "02_001"], 1)

    ids.write_text("03_001\n" + "".join(f"9{index}_001\n" for index in range(7)))
    output.unlink()
    status, stdout, stderr = run_tool("make_video_lists.py", "--dataset", "shanghaitech", "--features", str(features),
                      "--anomalous", str(ids), "--output", str(output))
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r video-lists: {ids}: 7 listed video(s) have no feature file in {features}")
    assert "'90_001', '91_001', '92_001', '93_001', '94_001' and 2 more" in stderr
    assert not output.exists()

    ids.write_text("03_001\n")  # only the other split's videos: none of these is anomalous
    message = one_line_error(make_video_list, "shanghaitech", features, output, ids)
    assert message.startswith(f"{ids}: no video of {features} is anomalous")
    masks = tmp_path / "masks"
    masks.mkdir()
    np.save(masks / "01_001.npy", np.zeros(16))
    message = one_line_error(make_video_list, "shanghaitech", features, output, masks)
    assert message.startswith(f"{masks}: no video of {features} is anomalous")
    normal = write_features(tmp_path / "ucf", {"Normal_Videos001_x264": 1})
    message = one_line_error(make_video_list, "ucf-crime", normal, output)
    assert message.startswith(f"{normal}: no video is anomalous") and "'Normal'" in message
    assert not output.exists()


def test_an_output_folder_blocked_by_a_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "somefile"
    blocker.write_text("keep")
    features = write_features(tmp_path / "ucf", {"Abuse001_x264": 2, "Normal_Videos001_x264": 2})
    status, stdout, stderr = run_tool("make_video_lists.py", "--dataset", "ucf-crime", "--features", str(features),
                      "--output", str(blocker / "x.csv"))
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r video-lists: {blocker}: is a file, not a folder")

    text = tmp_path / "annotations.txt"
    text.write_text("Abuse001_x264.mp4  Abuse  3  5  -1  -1\n")
    status, stdout, stderr = run_tool("make_ground_truth.py", "--dataset", "ucf-crime", "--annotations", str(text),
                      "--features", str(features), "--output", str(blocker / "deeper" / "gt.json"))
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r ground-truth: {blocker}: is a file, so the folder {blocker / 'deeper'} cannot be created")
    with pytest.raises(InputError, match="is a file"):
        write_ground_truth({"a": np.zeros(2)}, blocker / "gt.json")
    assert blocker.read_text() == "keep"


def test_a_features_folder_without_feature_files_is_a_one_line_error(tmp_path):
    features = tmp_path / "empty"
    features.mkdir()
    (features / "notes.txt").write_text("no features yet")
    status, stdout, stderr = run_tool("make_video_lists.py", "--dataset", "ucf-crime", "--features", str(features),
                                      "--output", str(tmp_path / "x.csv"))
    assert (status, stderr) == (2, f"s3r video-lists: {features}: no '*_i3d.npy' feature files in this folder\n")
