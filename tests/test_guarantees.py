"""The README's promises ("Resuming and failures") tried as a hostile or careless user would: never code from a
data file, never a silent wrong number, never a clobbered run, names are names, one line instead of a traceback,
memory linear in a video's length."""

import os
import pickle

import numpy as np
import pytest

from anomaly.dictionary_learning import load_regular_features
from anomaly.errors import InputError


# ---------------------------------------------------------------------------------------------------------------
# 1. No code runs from a data file
# ---------------------------------------------------------------------------------------------------------------


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_regular_features_pickles_of_every_protocol_load(tmp_path, protocol):
    features = {"video_a": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "video_b": np.ones((2, 3, 4))}
    path = tmp_path / "regular.pickle"
    with open(path, "wb") as file:
        pickle.dump({"feature": features}, file, protocol=protocol)
    loaded = load_regular_features(path, feature_size=4, quantize_size=3)
    assert list(loaded) == ["video_a", "video_b"]
    np.testing.assert_array_equal(loaded["video_a"], features["video_a"])
    assert loaded["video_b"].dtype == np.float32


@pytest.mark.parametrize("where", ["top", "inside"])
def test_a_pickle_that_would_run_a_command_is_refused_without_a_trace(tmp_path, where):
    marker = tmp_path / "command-ran"
    payload = RunsACommand(marker)
    content = payload if where == "top" else {"feature": {"video": np.zeros((1, 2, 3), np.float32), "x": payload}}
    path = tmp_path / "regular.pickle"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(InputError, match="refused: it is not plain data.*posix.system|refused: it is not plain data"):
        load_regular_features(path)
    assert not marker.exists()


def test_float64_regular_features_beyond_float32_are_refused(tmp_path):
    path = tmp_path / "regular.pickle"
    path.write_bytes(pickle.dumps({"feature": {"video": np.full((1, 2, 3), 1e39)}}))
    with pytest.raises(InputError, match="finite, but beyond float32's range"):
        load_regular_features(path)
