"""Training videos are resampled to 32 snippets exactly as the published loader's cv2.resize(INTER_LINEAR)."""

import numpy as np
import pytest

from anomaly.data import resample_snippets
from tests.conftest import shared_path


@pytest.mark.parametrize("length", [5, 20, 32, 57, 200])
def test_resampling_equals_the_published_loader(length):
    cases = np.load(shared_path("reference", "resample_to_32.npz"))
    resampled = resample_snippets(cases[f"input_T{length}"], 32)
    assert resampled.dtype == np.float32
    np.testing.assert_allclose(resampled, cases[f"output_T{length}"], rtol=1e-5, atol=1e-6)


def test_resampling_a_single_snippet_repeats_it():
    features = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    resampled = resample_snippets(features, 4)
    assert resampled.shape == (2, 4, 3)
    assert (resampled == features.transpose(1, 0, 2)).all()


def test_resampling_to_the_same_length_is_the_identity_up_to_layout():
    features = np.random.default_rng(0).random((32, 3, 5), dtype=np.float32)
    np.testing.assert_array_equal(resample_snippets(features, 32), features.transpose(1, 0, 2))
