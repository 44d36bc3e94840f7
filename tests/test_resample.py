"""Training videos are resampled to 32 snippets exactly as the published loader's cv2.resize(INTER_LINEAR)."""

import numpy as np
import pytest

from anomaly.data import resample_snippets
from tests.conftest import assert_close_to_scale, shared_path


@pytest.mark.parity
@pytest.mark.parametrize("length", [5, 20, 32, 57, 200])
def test_resampling_equals_the_published_loader(length):
    cases = np.load(shared_path("reference", "resample_to_32.npz"))
    resampled = resample_snippets(cases[f"input_T{length}"], 32)
    assert resampled.dtype == np.float32
    expected = cases[f"output_T{length}"]
    assert float(expected.std()) > 0  # a real signal, not a constant
    # Linear interpolation: two-term weighted sums, a few roundings of the values' scale.
    assert_close_to_scale(resampled, expected, name=f"T={length}")


def test_resampling_a_single_snippet_repeats_it():
    features = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    resampled = resample_snippets(features, 4)
    assert resampled.shape == (2, 4, 3)
    assert (resampled == features.transpose(1, 0, 2)).all()


def test_resampling_to_the_same_length_is_the_identity_up_to_layout():
    features = np.random.default_rng(0).random((32, 3, 5), dtype=np.float32)
    np.testing.assert_array_equal(resample_snippets(features, 32), features.transpose(1, 0, 2))
