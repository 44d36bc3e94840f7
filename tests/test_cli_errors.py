"""Bad input to the train/eval script: one line saying what and where, exit status 2, no output file written.

Every case runs the script in-process on a private copy of a small synthetic dataset and checks, after the
failure, that the log, checkpoint and output folders hold nothing.
"""

import json

import numpy as np
import pytest
import torch

from anomaly.models import S3R
from tests.conftest import FEATURE_SIZE, SCRIPT, cli_arguments, data_file, first_video, run_failing


def dictionary_file(copy):
    return next((copy / "dictionary" / "synthetic").glob("*taskaware*.npy"))


def test_an_unknown_dataset_is_refused_in_one_line(copy, capsys, monkeypatch):
    message = run_failing(copy, capsys, monkeypatch, "--dataset", "imagenet")
    assert message.startswith("s3r train: unknown dataset 'imagenet': neither built in (shanghaitech, ")


def test_missing_training_list(copy, capsys, monkeypatch):
    data_file(copy, "synthetic.training.csv").unlink()
    message = run_failing(copy, capsys, monkeypatch)
    assert "synthetic.training.csv: video list not found" in message


def test_missing_dictionary(copy, capsys, monkeypatch):
    path = dictionary_file(copy)
    path.unlink()
    assert f"{path}: dictionary file not found" in run_failing(copy, capsys, monkeypatch)


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda path: path.write_bytes(b""), "not a readable .npy file"),
        (lambda path: path.write_bytes(path.read_bytes()[:-64]), "not a readable .npy file"),
        (lambda path: np.save(path, np.zeros((4, 10, FEATURE_SIZE), dtype=np.int32)), "must be floating point"),
        (lambda path: np.save(path, np.zeros((4, FEATURE_SIZE), dtype=np.float32)), "expected a [T, N, C] array"),
        (lambda path: np.save(path, np.zeros((4, 5, FEATURE_SIZE), dtype=np.float32)), "expected 10 crops, found 5"),
        (lambda path: np.save(path, np.full((4, 10, FEATURE_SIZE), np.nan, dtype=np.float32)), "NaN or inf"),
    ],
    ids=["empty", "truncated", "integer", "rank", "crops", "nan"],
)
@pytest.mark.parametrize("subset", ["train", "test"])
def test_broken_feature_files(copy, capsys, monkeypatch, subset, damage, problem):
    _, path = first_video(copy, subset)
    damage(path)
    message = run_failing(copy, capsys, monkeypatch)
    assert str(path) in message and problem in message


def test_feature_size_different_from_the_model(copy, capsys, monkeypatch):
    message = run_failing(copy, capsys, monkeypatch, "--feature_size", "64")
    assert "dictionary atoms have 32 channels but the features have 64" in message


def test_dictionary_of_another_width(copy, capsys, monkeypatch):
    np.save(dictionary_file(copy), np.ones((7, 64), dtype=np.float32))
    assert "dictionary atoms have 64 channels but the features have 32" in run_failing(copy, capsys, monkeypatch)


def test_non_finite_dictionary(copy, capsys, monkeypatch):
    atoms = np.load(dictionary_file(copy))
    atoms[0, 0] = np.inf
    np.save(dictionary_file(copy), atoms)
    assert "NaN or inf in the dictionary" in run_failing(copy, capsys, monkeypatch)


def test_video_listed_twice(copy, capsys, monkeypatch):
    listing = data_file(copy, "synthetic.testing.csv")
    lines = listing.read_text().splitlines()
    listing.write_text("\n".join(lines + [lines[3]]) + "\n")
    assert f"video '{lines[3]}' is listed twice" in run_failing(copy, capsys, monkeypatch)


def test_list_naming_a_missing_feature_file(copy, capsys, monkeypatch):
    _, path = first_video(copy, "train")
    path.unlink()
    assert f"{path}: feature file not found" in run_failing(copy, capsys, monkeypatch)


def test_ground_truth_missing_a_test_video(copy, capsys, monkeypatch):
    video_id, _ = first_video(copy, "test")
    ground_truth = data_file(copy, "synthetic_ground_truth.testing.json")
    database = json.loads(ground_truth.read_text())
    del database[video_id]
    ground_truth.write_text(json.dumps(database))
    assert f"no ground truth for test video '{video_id}'" in run_failing(copy, capsys, monkeypatch)


def test_ground_truth_with_the_wrong_number_of_frames(copy, capsys, monkeypatch):
    video_id, _ = first_video(copy, "test")
    ground_truth = data_file(copy, "synthetic_ground_truth.testing.json")
    database = json.loads(ground_truth.read_text())
    database[video_id]["labels"] = database[video_id]["labels"] + [0.0] * 16
    database[video_id]["num_frames"] += 16
    ground_truth.write_text(json.dumps(database))
    assert f"video '{video_id}' has num_frames" in run_failing(copy, capsys, monkeypatch)


def test_training_split_smaller_than_the_batch(copy, capsys, monkeypatch):
    message = run_failing(copy, capsys, monkeypatch, "--batch_size", "40")
    assert "fewer than --batch_size 40: lower --batch_size to at most 36" in message


@pytest.mark.parametrize("folder", ["--log_path", "--checkpoint_path"])
def test_unwritable_output_folder(copy, capsys, monkeypatch, folder):
    blocker = copy / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    message = run_failing(copy, capsys, monkeypatch, folder, str(blocker / "runs"))
    assert f"{blocker}: is a file" in message


def test_unwritable_inference_output(copy, capsys, monkeypatch):
    checkpoint = copy / "model.pth"
    torch.save(S3R(FEATURE_SIZE).state_dict(), checkpoint)
    (copy / "output").write_text("a file where the output folder should be")
    monkeypatch.chdir(copy)
    status = SCRIPT.main(cli_arguments(copy, "bad", "--inference", "--resume", str(checkpoint)))
    assert status == 2 and "output: is a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make_checkpoint,problem",
    [
        (lambda path: torch.save(torch.nn.Linear(FEATURE_SIZE, 1).state_dict(), path), "another architecture"),
        (lambda path: torch.save(S3R(64).state_dict(), path), "another size"),
        (lambda path: torch.save(S3R(64).state_dict(), path), "(check --feature_size)"),
        (lambda path: torch.save([torch.zeros(2)], path), "not a state_dict"),
        (lambda path: path.write_bytes(b"PK\x03\x04 this is not a checkpoint"), "not a readable checkpoint"),
        (lambda path: path.write_text("garbage\n"), "not a readable checkpoint: truncated, corrupt"),
    ],
    ids=["architecture", "size", "size-hint", "not-a-state-dict", "corrupt", "text"],
)
@pytest.mark.parametrize("inference", [True, False], ids=["inference", "training"])
def test_unusable_checkpoints(copy, capsys, monkeypatch, make_checkpoint, problem, inference):
    checkpoint = copy / "model.pth"
    make_checkpoint(checkpoint)
    extra = ["--resume", str(checkpoint)] + (["--inference"] if inference else [])
    message = run_failing(copy, capsys, monkeypatch, *extra)
    assert str(checkpoint) in message and problem in message


@pytest.mark.parametrize(
    "device,problem",
    [
        pytest.param(
            "cuda", "--device cuda: no CUDA device is available here (use --device cpu)",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
        ("gpu0", "--device gpu0: not a torch device (cpu, cuda, cuda:1, ...)"),
        ("meta", "--device meta: training runs on cpu or cuda, not meta"),
    ],
)
def test_unusable_device(copy, capsys, monkeypatch, device, problem):
    assert run_failing(copy, capsys, monkeypatch, "--device", device) == f"s3r train: {problem}"


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_ground_truth_with_a_single_class(copy, capsys, monkeypatch, label):
    ground_truth = data_file(copy, "synthetic_ground_truth.testing.json")
    database = json.loads(ground_truth.read_text())
    for entry in database.values():
        entry["labels"] = [label] * entry["num_frames"]
    ground_truth.write_text(json.dumps(database))
    assert "frame-level AUC needs anomalous and normal frames" in run_failing(copy, capsys, monkeypatch)


def test_ground_truth_labels_must_be_0_or_1(copy, capsys, monkeypatch):
    video_id, _ = first_video(copy, "test")
    ground_truth = data_file(copy, "synthetic_ground_truth.testing.json")
    database = json.loads(ground_truth.read_text())
    database[video_id]["labels"] = [2.0 * label for label in database[video_id]["labels"]]
    ground_truth.write_text(json.dumps(database))
    assert f"video '{video_id}' has frame labels other than 0 and 1" in run_failing(copy, capsys, monkeypatch)


@pytest.mark.parametrize("option, value, problem", [
    ("--plot_freq", "0", "--plot_freq must be an integer at least 1, not 0"),
    ("--lr", "-1", "--lr must be a finite number at least 0, not -1.0; 0 takes the config's init_lr"),
    ("--batch_size", "0", "--batch_size must be an integer at least 1, not 0"),
    ("--dropout", "1", "--dropout must be a finite number in [0, 1), not 1.0"),
    ("--seed", "-2", "--seed must be an integer in [-1, 4294967295], not -2; -1 takes the dataset config's seed"),
    ("--seed", "4294967296", "--seed must be an integer in [-1, 4294967295], not 4294967296; -1 takes the dataset "
                             "config's seed"),
    ("--batch_size", "two", "argument --batch_size: invalid int value: 'two' (see s3r train --help)"),
])
def test_impossible_option_values_are_usage_errors(copy, capsys, monkeypatch, option, value, problem):
    assert run_failing(copy, capsys, monkeypatch, option, value) == f"s3r train: {problem}"


def test_a_training_state_does_not_resume_on_other_training_videos(copy, capsys, monkeypatch):
    monkeypatch.chdir(copy)
    first_run = ["--max_epoch", "1", "--log_path", str(copy / "first"), "--checkpoint_path", str(copy / "first")]
    assert SCRIPT.main(cli_arguments(copy, "first", *first_run)) == 0
    capsys.readouterr()
    listing = data_file(copy, "synthetic.training.csv")
    listing.write_text("\n".join(listing.read_text().splitlines()[:-1]) + "\n")  # one normal video fewer
    state = copy / "first" / "first" / "synthetic_s3r_i3d.state"
    message = run_failing(copy, capsys, monkeypatch, "--resume", str(state))
    assert str(state) in message and "belongs to another run setup" in message and "training videos" in message


def test_a_run_without_evaluations_says_there_is_no_best_checkpoint(copy, capsys, monkeypatch):
    monkeypatch.chdir(copy)
    assert SCRIPT.main(cli_arguments(copy, "short", "--max_epoch", "2", "--evaluate_min_step", "5")) == 0
    output = capsys.readouterr().out
    assert "No evaluation ran" in output and "Best checkpoint:" not in output
    assert (copy / "checkpoint" / "short" / "synthetic_s3r_i3d.state").is_file()
    assert not (copy / "checkpoint" / "short" / "synthetic_s3r_i3d_best.pth").exists()
