"""Datasets defined by data: a description file under ``<root>/<name>/`` makes ``--dataset <name>`` work in every
tool, exactly as a built-in dataset, with no change to the package; a malformed or contradicting description, or a
name that is not a plain name or is a built-in one, is refused in one line."""

import json
import shutil

import numpy as np
import pytest

from anomaly.cli.command import run_command
from anomaly.config import load_dataset_config
from anomaly.data.description import DatasetDescription, read_description, write_description
from anomaly.engine.detector_file import load_detector_file
from anomaly.errors import InputError
from tests.conftest import FEATURE_SIZE

NAME = "my-cameras"


@pytest.fixture
def described(workspace, tmp_path):
    """The synthetic workspace's features, lists and ground truth copied under another name, described by hand, as
    features of another network would be (backbone "clip": ``clip/{train,test}/<id>_clip.npy``)."""
    root = tmp_path / "data"
    source = workspace / "data" / "synthetic"
    target = root / NAME
    for features in (source / "i3d").rglob("*_i3d.npy"):
        copy = target / "clip" / features.parent.name / features.name.replace("_i3d.npy", "_clip.npy")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(features, copy)
    for suffix in (".training.csv", ".testing.csv", "_ground_truth.testing.json"):
        shutil.copy(source / f"synthetic{suffix}", target / f"{NAME}{suffix}")
    spec = json.loads((source / "synthetic.spec.json").read_text())
    description = {
        "format": "s3r-dataset/1", "name": NAME, "backbone": "clip", "feature_size": FEATURE_SIZE, "num_crops": 10,
        "preset": None, "frame_rate": "native", "metric": "AUC", "num_anomalous_train": spec["num_train_anomalous"],
        "dictionary_ratio": 90, "batch_size": 8, "random_state": 823,
    }
    (target / f"{NAME}.dataset.json").write_text(json.dumps(description, indent=2))
    return tmp_path


def test_a_dataset_described_by_hand_learns_trains_and_evaluates(described, monkeypatch, capsys):
    monkeypatch.chdir(described)
    assert run_command("learn-dictionary", ["--dataset", NAME]) == 0
    options = ["--dataset", NAME, "--version", "mine"]
    assert run_command("train", [*options, "--max_epoch", "2", "--evaluate_min_step", "0"]) == 0
    score = (described / "logs" / "mine" / f"{NAME}_s3r_clip.score").read_text()
    assert "batch_size: 8" in score  # the description's batch size and backbone are the trainer's defaults
    detector = load_detector_file(described / "checkpoint" / "mine" / f"{NAME}_s3r_clip.detector.pth")
    assert detector.dataset == NAME and detector.features.num_crops == 10 and detector.features.preset is None
    assert detector.features.backbone == "clip"
    capsys.readouterr()
    checkpoint = f"checkpoint/mine/{NAME}_s3r_clip_best.pth"
    assert run_command("train", [*options, "--inference", "--resume", checkpoint]) == 0
    assert f"{NAME}" in capsys.readouterr().out
    assert json.loads((described / "output" / NAME / "metrics.json").read_text())["dataset"] == NAME
    assert run_command("summarize", ["logs/mine", "--output_dir", "output/summary"]) == 0
    assert NAME in (described / "output" / "summary" / "runs_summary.csv").read_text()


def test_the_config_of_a_described_dataset_has_every_field_of_a_built_in_one(described, workspace):
    built_in = load_dataset_config("synthetic", workspace / "data")
    mine = load_dataset_config(NAME, described / "data")
    assert set(mine) == set(built_in)
    assert (mine.num_crops, mine.feature_size, mine.metric, mine.batch_size) == (10, FEATURE_SIZE, "AUC", 8)
    assert mine.files.training_list == described / "data" / NAME / f"{NAME}.training.csv"


def description_file(described):
    return described / "data" / NAME / f"{NAME}.dataset.json"


def edit_description(described, **changes):
    path = description_file(described)
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize("changes, problem", [
    (dict(num_crops=7), "num_crops must be one of 10, 5, 1, not 7"),
    (dict(metric="F1"), "metric must be one of AUC, AP, not 'F1'"),
    (dict(batch_size=0), "batch_size must be an integer at least 1, not 0"),
    (dict(dictionary_ratio=150), "dictionary_ratio must be an integer in [1, 100], not 150"),
    (dict(dictionary_ratio=12.5), "dictionary_ratio must be an integer in [1, 100], not 12.5"),
    (dict(backbone="i3d_rgb"), "'i3d_rgb' is not a backbone name: use letters, digits, '-' and '.', starting with a "
                               "letter or digit (no '_', which separates the parts of run file names, and no '/')"),
    (dict(preset="fast"), "preset must be one of rtfm, gowtham, vadclip, not 'fast'; or null for features not made "
                          "by s3r extract"),
    (dict(frames="all"), "frames must be one of mean, middle, not 'all'; or null"),
    (dict(weights_sha256="abc"), "weights_sha256 must be 64 lowercase hexadecimal digits or null, not 'abc'"),
    (dict(colour="blue"), "unknown field(s) colour; the fields are name, num_crops, feature_size, metric, "
                          "num_anomalous_train, dictionary_ratio, batch_size, backbone, preset, frames, "
                          "weights_sha256, frame_rate, random_state"),
    (dict(name="other"), "describes the dataset 'other', not 'my-cameras' (its folder's name)"),
    (dict(format="v2"), "not a dataset description: expected a JSON object with \"format\": \"s3r-dataset/1\""),
    (dict(feature_size=[1, 2]), "feature_size must be a single value, not list"),
])
def test_a_malformed_description_is_refused_in_one_line(described, changes, problem):
    path = edit_description(described, **changes)
    with pytest.raises(InputError) as refused:
        load_dataset_config(NAME, described / "data")
    assert str(refused.value) == f"{path}: {problem}"


def test_a_description_saved_with_a_byte_order_mark_reads_as_without(described):
    path = description_file(described)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_dataset_config(NAME, described / "data").batch_size == 8


def test_a_description_that_is_not_json_is_refused(described):
    path = description_file(described)
    path.write_text("{ name: mine")
    with pytest.raises(InputError, match=f"^{path}: not a readable dataset description \\("):
        load_dataset_config(NAME, described / "data")


@pytest.mark.parametrize("changes, problem", [
    (dict(num_crops=5), "declares 5 crops of 32 channels, but {features} holds 10 crops of 32: correct the "
                        "description or the features"),
    (dict(feature_size=64), "declares 10 crops of 64 channels, but {features} holds 10 crops of 32: correct the "
                            "description or the features"),
])
def test_a_description_that_contradicts_its_features_is_refused_before_training(described, changes, problem, capsys):
    path = edit_description(described, **changes)
    first = (described / "data" / NAME / f"{NAME}.training.csv").read_text().split()[1]
    features = described / "data" / NAME / "clip" / "train" / f"{first}_clip.npy"
    status = run_command("train", ["--dataset", NAME, "--root_path", str(described / "data"), "--version", "x",
                                   "--log_path", str(described / "logs"), "--checkpoint_path", str(described / "c")])
    assert status == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"s3r train: {path}: " + problem.format(features=features)
    assert not (described / "logs").exists() and not (described / "c").exists()


@pytest.mark.parametrize("name, problem", [
    ("../x", "'../x' is not a dataset name"),
    ("my_cameras", "'my_cameras' is not a dataset name"),
    ("nowhere", "unknown dataset 'nowhere': neither built in (shanghaitech, ucf-crime, xd-violence, synthetic, "
                "xd-violence-synthetic) nor described by {root}/nowhere/nowhere.dataset.json (s3r make-dataset "
                "writes one)"),
])
def test_a_dataset_name_that_is_not_a_plain_name_or_is_unknown_is_refused(tmp_path, capsys, name, problem):
    assert run_command("learn-dictionary", ["--dataset", name, "--root_path", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"s3r learn-dictionary: {problem.format(root=tmp_path)}")


def test_a_description_cannot_take_a_built_in_name(tmp_path):
    with pytest.raises(InputError, match="'shanghaitech' is a built-in dataset; a described dataset needs another name"):
        write_description(DatasetDescription("shanghaitech", 10, 2048, "AUC", 63, 90, 32), tmp_path)


def test_a_written_description_reads_back_the_same(tmp_path):
    description = DatasetDescription(NAME, 1, 2048, "AP", 3, 90, 3, preset="gowtham", random_state=5)
    write_description(description, tmp_path)
    assert read_description(tmp_path, NAME) == description
    assert np.array_equal(json.loads((tmp_path / NAME / f"{NAME}.dataset.json").read_text())["num_crops"], 1)
