"""XD-Violence end to end on the generated XD-Violence-shaped dataset: generate (5 crops, official-style names,
the official class balance), learn the dictionary, train a few steps, infer; AP is the metric and both APs are
printed and written."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from anomaly.cli.command import run_command
from anomaly.config import load_dataset_config
from anomaly.data.synthetic import XD_VIOLENCE_SPEC, make_synthetic_dataset

NAME = "xd-violence-synthetic"
OFFICIAL_NAME = re.compile(r"^[\w.]+__#\d\d-\d\d-\d\d_\d\d-\d\d-\d\d_label_(A|(B[12456]|G)(-(B[12456]|G|0)){2})$")
SMALL = ("--feature_size", "32", "--num_train_anomalous", "6", "--num_train_normal", "6", "--num_test_anomalous",
         "4", "--num_test_normal", "3", "--median_length", "20", "--max_length", "60")


def test_the_preset_has_the_official_crops_and_class_balance():
    spec = XD_VIOLENCE_SPEC
    assert spec.num_crops == 5 and spec.shape == "xd-violence"
    training_share = spec.num_train_anomalous / (spec.num_train_anomalous + spec.num_train_normal)
    assert training_share == pytest.approx(1905 / 3954, abs=0.01)
    assert spec.num_test_anomalous / (spec.num_test_anomalous + spec.num_test_normal) == pytest.approx(500 / 800)
    assert min(spec.num_train_anomalous, spec.num_train_normal) >= 32  # one training batch of each class


def test_names_say_the_label_as_the_official_lists(tmp_path):
    info = make_synthetic_dataset(tmp_path, NAME, replace(XD_VIOLENCE_SPEC, feature_size=32, num_train_anomalous=3,
                                                          num_train_normal=3, num_test_anomalous=3, num_test_normal=3,
                                                          median_length=10, max_length=20))
    ground_truth = json.loads(info["ground_truth"].read_text())
    assert info["testing_ids"] == sorted(info["testing_ids"])  # name order, as the official test list
    for video_id in info["testing_ids"]:
        assert OFFICIAL_NAME.match(video_id), video_id
        assert video_id.endswith("_label_A") == (not any(ground_truth[video_id]["labels"]))
    assert all(not video_id.endswith("_label_A") for video_id in info["training_ids"][:3])
    assert all(video_id.endswith("_label_A") for video_id in info["training_ids"][3:])
    features = np.load(info["base"] / "i3d" / "test" / f"{info['testing_ids'][0]}_i3d.npy")
    assert features.shape[1:] == (5, 32)
    config = load_dataset_config(NAME, tmp_path)
    assert config.metric == "AP" and config.num_crops == 5 and config.num_anomalous_train == 3
    assert config.feature_size == XD_VIOLENCE_SPEC.feature_size


def test_generate_learn_train_and_infer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # every tool reads and writes data/, dictionary/, logs/, ... here
    assert run_command("synthetic", ["--shape", "xd-violence", *SMALL]) == 0
    assert run_command("learn-dictionary", ["--dataset", NAME, "--feature_size", "32"]) == 0
    options = ["--dataset", NAME, "--feature_size", "32", "--version", "xd", "--batch_size", "4"]
    assert run_command("train", [*options, "--max_epoch", "3", "--evaluate_min_step", "0"]) == 0
    assert (tmp_path / "logs" / "xd" / f"{NAME}_s3r_i3d.curve.csv").read_text().startswith("step,loss,AP,best\n")
    capsys.readouterr()
    checkpoint = f"checkpoint/xd/{NAME}_s3r_i3d_best.pth"
    assert run_command("train", [*options, "--inference", "--resume", checkpoint]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\|\s+Dataset\s+\|.*\|\s+AP \(%\)\s+\|", printed)  # the published table, with AP as its metric
    output = tmp_path / "output" / NAME
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["metric"] == "AP" and metrics["value"] == pytest.approx(metrics["ap_stepwise"], abs=1e-12)
    for label, key in (("AP step-wise", "ap_stepwise"), ("AP trapezoidal", "ap_trapezoidal")):
        row = re.search(re.escape(label) + r"[^|]*\|\s*([\d.]+)\s*\|", printed)
        assert row and float(row.group(1)) == pytest.approx(metrics[key] * 100, abs=5e-4)
    violent = [line for line in (tmp_path / "data" / NAME / f"{NAME}.testing.csv").read_text().split()[1:]
               if not line.endswith("_label_A")]
    assert sorted(path.stem for path in (output / "score_curves").glob("*.png")) == sorted(violent)
    assert metrics["anomalous_videos"] == len(violent) == 4
