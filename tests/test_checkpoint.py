"""Checkpoints: written atomically, loaded safely, and refused with one clear line when they do not fit."""

import errno
import os
import pickle

import pytest
import torch

from anomaly import files
from anomaly.engine.checkpoint import load_checkpoint, load_model_weights, model_state_of
from anomaly.files import save_torch
from anomaly.errors import InputError
from anomaly.models import S3R


def load_into(model, path):
    load_model_weights(model, model_state_of(load_checkpoint(path), path), path, "S3R(feature_size=64)")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return S3R(64, batch_size=2)


def test_a_saved_state_dict_loads_back(tmp_path, model):
    path = tmp_path / "best.pth"
    save_torch(model.state_dict(), path)
    other = S3R(64, batch_size=2)
    load_into(other, path)
    assert all(torch.equal(other.state_dict()[key], value) for key, value in model.state_dict().items())
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


def test_weights_saved_from_data_parallel_load(tmp_path, model):
    path = tmp_path / "parallel.pth"
    torch.save({f"module.{key}": value for key, value in model.state_dict().items()}, path)
    other = S3R(64, batch_size=2)
    load_into(other, path)  # the "module." prefix of nn.DataParallel is taken off
    assert all(torch.equal(other.state_dict()[key], value) for key, value in model.state_dict().items())


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, model, monkeypatch):
    path = tmp_path / "best.pth"
    save_torch(model.state_dict(), path)
    before = path.read_bytes()

    def disk_full(obj, file):
        file.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.torch, "save", disk_full)
    with pytest.raises(InputError, match="No space left on device.*previous version is intact"):
        save_torch({"weights": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["best.pth"]


class Payload:
    """An arbitrary Python object: unpickling it could run code."""


def test_a_file_needing_arbitrary_unpickling_is_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"weights": torch.zeros(2), "extra": Payload()}, path)
    with pytest.raises(InputError, match="refused: loading it would run arbitrary Python code"):
        load_checkpoint(path)


@pytest.mark.parametrize("cut", [10, 1000])
def test_a_truncated_checkpoint_is_reported_as_corrupt(tmp_path, model, cut):
    path = tmp_path / "cut.pth"
    save_torch(model.state_dict(), path)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(InputError, match="not a readable checkpoint") as raised:
        load_checkpoint(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_plain_pickle_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "scores.pickle"
    path.write_bytes(pickle.dumps({"video": [1, 2, 3]}))
    with pytest.raises(InputError):
        load_into(S3R(64, batch_size=2), path)


def test_an_object_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(InputError, match="not a state_dict"):
        load_into(S3R(64, batch_size=2), path)


def test_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(64, 2).state_dict(), path)
    with pytest.raises(InputError, match="another architecture than S3R\\(feature_size=64\\): parameters .* missing"):
        load_into(S3R(64, batch_size=2), path)


def test_a_checkpoint_of_another_feature_size(tmp_path):
    path = tmp_path / "s3r32.pth"
    torch.save(S3R(32, batch_size=2).state_dict(), path)
    with pytest.raises(InputError, match=r"another size: .* is \[8, 32, 3\] here but \[16, 64, 3\] in S3R\(feature_size=64\)"):
        load_into(S3R(64, batch_size=2), path)


def test_a_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pth")
