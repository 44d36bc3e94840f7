"""Regular features, the task-aware dictionary, the universal and univ-task modalities (spec section 7)."""

import contextlib
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
from munch import Munch
from sklearn.decomposition import MiniBatchDictionaryLearning

from anomaly.data.features import load_features, resample_snippets
from anomaly.dictionary_learning import (
    learn_task_dictionary,
    load_modality_dictionary,
    load_regular_features,
    load_universal_states,
    minimum_videos,
    modality_dictionary,
    number_of_atoms,
    universal_states,
    video_means,
)
from anomaly.cli.command import run_command
from anomaly.config import load_dataset_config
from anomaly.errors import InputError
from tests.conftest import REPO


def normal_means(num_videos=40, channels=64, seed=0):
    """Non-negative video means with a few shared patterns, like averaged I3D features."""
    rng = np.random.default_rng(seed)
    patterns = rng.gamma(2.0, 0.5, (5, channels))
    weights = rng.dirichlet(np.ones(5), num_videos)
    return (weights @ patterns + rng.gamma(1.0, 0.05, (num_videos, channels))).astype(np.float32)


def write_dataset(root, dataset="shanghaitech", lengths=(7, 40, 12, 33, 5, 64), num_anomalous=2, channels=32):
    """Feature files [T, 3, C] and a training list under ``root/<dataset>``; the first rows are anomalous."""
    rng = np.random.default_rng(1)
    folder = root / dataset / "i3d" / "train"
    folder.mkdir(parents=True)
    ids = [f"{'a' if index < num_anomalous else 'n'}{index:02d}" for index in range(len(lengths))]
    for video_id, length in zip(ids, lengths):
        np.save(folder / f"{video_id}_i3d.npy", rng.random((length, 3, channels), dtype=np.float32))
    (root / dataset / f"{dataset}.training.csv").write_text("video-id\n" + "\n".join(ids) + "\n")
    return ids


def shanghaitech_files(root, dictionaries, feature_size=32, ratio=50, max_iter=100):
    """The files of the ShanghaiTech config for these sizes (the names the script and the trainer use)."""
    return load_dataset_config("shanghaitech", root, dictionaries, feature_size=feature_size, dictionary_ratio=ratio,
                               dictionary_max_iter=max_iter).files


def run_script(*args):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = run_command("learn-dictionary", list(args), defaults={"dataset": "shanghaitech"})
    return status, stdout.getvalue(), stderr.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# The task-aware dictionary
# ---------------------------------------------------------------------------------------------------------------


def test_number_of_atoms_follows_the_published_rounding():
    assert number_of_atoms(175, 90) == 158  # ShanghaiTech: 157.5 rounds to even
    assert number_of_atoms(800, 50) == 400  # UCF-Crime
    assert minimum_videos(90) == 2 and minimum_videos(50) == 3


@pytest.mark.parametrize("ratio", [100, 90, 50, 33, 10, 7, 1, 0.5, 0.01])
def test_minimum_videos_is_the_smallest_count_and_ends_for_any_positive_ratio(ratio):
    videos = minimum_videos(ratio)
    assert number_of_atoms(videos, ratio) >= 2 and (videos == 1 or number_of_atoms(videos - 1, ratio) < 2)


@pytest.mark.parametrize("ratio", [0, -5, 101, float("nan")])
def test_a_ratio_outside_0_to_100_percent_is_refused_not_looped_on(ratio):
    message = (f"the dictionary ratio must be a finite number in (0, 100], not {ratio!r}; it is a percentage of the "
               "normal videos")
    with pytest.raises(InputError) as refused:
        minimum_videos(ratio)
    assert str(refused.value) == message
    with pytest.raises(InputError) as refused:
        learn_task_dictionary(normal_means(num_videos=4), ratio=ratio)
    assert str(refused.value) == message


def test_task_dictionary_shape_dtype_and_sparse_codes():
    dictionary = learn_task_dictionary(normal_means(), ratio=50)
    assert dictionary.shape == (20, 64) and dictionary.dtype == np.float32
    # Each channel (a row of the C × S code matrix, a column here) uses at most 2 atoms (OMP, 2 non-zeros).
    assert ((dictionary != 0).sum(axis=0) <= 2).all()
    assert ((dictionary != 0).sum(axis=0) >= 1).mean() > 0.9
    assert np.isfinite(dictionary).all()


def test_task_dictionary_is_deterministic_by_seed():
    means = normal_means(num_videos=20, channels=32)
    first = learn_task_dictionary(means, ratio=50, seed=42, max_iter=30)
    np.testing.assert_array_equal(first, learn_task_dictionary(means, ratio=50, seed=42, max_iter=30))
    assert not np.array_equal(first, learn_task_dictionary(means, ratio=50, seed=7, max_iter=30))


def published_loop(means, ratio, max_iter, batch_size, seed=42):
    """scikit-learn 0.24's ``MiniBatchDictionaryLearning(n_iter=max_iter).fit_transform`` (the published code), by
    hand with today's public API: one RandomState drives the SVD initialisation on all C samples, then ONE shuffle;
    the shuffled samples are cut into batches that are CYCLED, one mini-batch update (``partial_fit``) per batch,
    ``max_iter`` updates in all; then the OMP codes of all samples, transposed to S × C."""
    from sklearn.utils.extmath import randomized_svd

    samples = np.ascontiguousarray(means.T, dtype=np.float64)
    atoms = number_of_atoms(len(means), ratio)
    random_state = np.random.RandomState(seed)
    _, singular_values, components = randomized_svd(samples, atoms, random_state=random_state)
    shuffled = samples.copy()
    random_state.shuffle(shuffled)
    learner = MiniBatchDictionaryLearning(
        n_components=atoms, batch_size=batch_size, dict_init=singular_values[:, np.newaxis] * components,
        shuffle=False, random_state=random_state, transform_algorithm="omp", transform_n_nonzero_coefs=2,
    )
    starts = list(range(0, len(shuffled), batch_size))
    for update in range(max_iter):
        start = starts[update % len(starts)]
        learner.partial_fit(shuffled[start : start + batch_size])
    return learner.transform(samples).T.astype(np.float32)


@pytest.mark.parametrize("max_iter", [1, 4, 100])
def test_max_iter_counts_mini_batch_updates_over_cycled_batches(max_iter):
    """max_iter has scikit-learn 0.24's meaning (mini-batch updates), not today's (epochs): 80 samples in batches
    of 32, 32, 16 are one epoch every 3 updates."""
    means = normal_means(channels=80)
    learned = learn_task_dictionary(means, ratio=50, max_iter=max_iter, batch_size=32)
    np.testing.assert_array_equal(learned, published_loop(means, ratio=50, max_iter=max_iter, batch_size=32))


def test_every_mini_batch_update_changes_the_dictionary():
    """One more update (here the first batch of the second cycle) gives another dictionary: no early stop."""
    means = normal_means(channels=80)
    three, four = (learn_task_dictionary(means, ratio=50, max_iter=n, batch_size=32) for n in (3, 4))
    assert not np.array_equal(three, four)


def test_too_few_normal_videos_is_a_one_line_error(tmp_path):
    source = tmp_path / "regular.pickle"
    with pytest.raises(InputError) as error:
        learn_task_dictionary(normal_means(num_videos=2), ratio=50, source=source)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{source}: 2 normal video(s) at 50 % give 1 atom(s)")
    assert "at least 3 normal videos" in message


# ---------------------------------------------------------------------------------------------------------------
# The script: regular-features pickle, then the dictionary
# ---------------------------------------------------------------------------------------------------------------


def test_script_builds_the_regular_features_pickle_then_the_dictionary(tmp_path):
    ids = write_dataset(tmp_path)
    dictionaries = tmp_path / "dictionary"
    common = ["--root_path", str(tmp_path), "--dictionary_path", str(dictionaries), "--num_anomalous", "2",
              "--ratio", "50", "--feature_size", "32"]
    status, stdout, stderr = run_script(*common)
    assert status == 0, stderr

    pickle_file = shanghaitech_files(tmp_path, dictionaries).regular_features
    assert pickle_file.name == "shanghaitech_regular_features-32dim.training.pickle"
    with open(pickle_file, "rb") as file:
        content = pickle.load(file)
    assert list(content) == ["feature"] and list(content["feature"]) == ids[2:]  # normal videos, list order
    for video_id, video in content["feature"].items():
        assert video.shape == (3, 32, 32) and video.dtype == np.float32
        features = load_features(tmp_path / "shanghaitech" / "i3d" / "train" / f"{video_id}_i3d.npy")
        np.testing.assert_array_equal(video, resample_snippets(features, 32))

    output = shanghaitech_files(tmp_path, dictionaries).task_dictionary
    assert output.name == "shanghaitech_dictionaries.taskaware.omp.100iters.50pct.npy"
    dictionary = np.load(output)
    assert dictionary.shape == (2, 32) and dictionary.dtype == np.float32
    expected = learn_task_dictionary(video_means(load_regular_features(pickle_file)), ratio=50)
    np.testing.assert_array_equal(dictionary, expected)

    # A second run reuses the pickle.
    stamp = pickle_file.stat().st_mtime_ns
    assert run_script(*common)[0] == 0
    assert pickle_file.stat().st_mtime_ns == stamp

    # Debug: one update, its own file name, no pickle written.
    assert run_script(*common, "--debug")[0] == 0
    assert shanghaitech_files(tmp_path, dictionaries, max_iter=1).task_dictionary.is_file()


@pytest.mark.parametrize("option, value, problem", [
    ("--ratio", "0", "--ratio must be an integer in [1, 100], not 0; the atoms are a percentage of the normal videos"),
    ("--ratio", "101", "--ratio must be an integer in [1, 100], not 101; the atoms are a percentage of the normal videos"),
    ("--max_iter", "0", "--max_iter must be an integer at least 1, not 0"),
    ("--quantize_size", "0", "--quantize_size must be an integer at least 1, not 0"),
    ("--feature_size", "0", "--feature_size must be a positive multiple of 32 (the model's GroupNorm runs 8 groups on "
                            "C / 4 channels), not 0"),
    ("--num_anomalous", "-1", "--num_anomalous must be an integer at least 1, not -1"),
    ("--seed", "-1", "--seed must be an integer in [0, 4294967295], not -1"),
    ("--max_iter", "many", "argument --max_iter: invalid int value: 'many' (see s3r learn-dictionary --help)"),
])
def test_script_refuses_impossible_options_before_any_work(tmp_path, option, value, problem):
    write_dataset(tmp_path)
    arguments = {"--root_path": str(tmp_path), "--dictionary_path": str(tmp_path / "d"), "--num_anomalous": "2",
                 "--ratio": "50", "--feature_size": "32", option: value}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = run_command("learn-dictionary", [item for pair in arguments.items() for item in pair],
                             defaults={"dataset": "shanghaitech"})
    assert (status, stderr.getvalue()) == (2, f"s3r learn-dictionary: {problem}\n")
    assert not (tmp_path / "d").exists()


def test_a_dictionary_path_blocked_by_a_file_fails_before_reading_features(tmp_path):
    write_dataset(tmp_path)
    blocker = tmp_path / "d"
    blocker.write_text("keep")
    for features in (tmp_path / "shanghaitech" / "i3d" / "train").iterdir():
        features.write_bytes(b"")  # read first, they would be the error
    status, _, stderr = run_script("--root_path", str(tmp_path), "--dictionary_path", str(blocker),
                                   "--num_anomalous", "2", "--ratio", "50", "--feature_size", "32")
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r learn-dictionary: {blocker}: is a file, so the folder {blocker / 'shanghaitech'} cannot be created")
    assert blocker.read_text() == "keep"


def test_a_reused_regular_features_pickle_must_have_quantize_size_snippets(tmp_path):
    write_dataset(tmp_path)
    common = ["--root_path", str(tmp_path), "--dictionary_path", str(tmp_path / "d"), "--num_anomalous", "2",
              "--ratio", "50", "--feature_size", "32"]
    assert run_script(*common, "--quantize_size", "16")[0] == 0
    pickle_file = shanghaitech_files(tmp_path, tmp_path / "d").regular_features
    status, _, stderr = run_script(*common)  # the default 32 snippets
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"s3r learn-dictionary: {pickle_file}: regular features have 16 snippets per video, but --quantize_size is 32")
    assert "delete it to rebuild" in stderr
    pickle_file.unlink()
    assert run_script(*common)[0] == 0
    assert load_regular_features(pickle_file, 32, 32)


def test_script_reports_a_missing_feature_file(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "shanghaitech" / "i3d" / "train" / "n03_i3d.npy").unlink()
    status, _, stderr = run_script("--root_path", str(tmp_path), "--dictionary_path", str(tmp_path / "d"),
                                   "--num_anomalous", "2", "--ratio", "50", "--feature_size", "32")
    message = stderr.rstrip("\n").split("\n")[-1]  # after the progress bar
    assert status == 2
    assert message == f"s3r learn-dictionary: {tmp_path / 'shanghaitech' / 'i3d' / 'train' / 'n03_i3d.npy'}: feature file not found"


def test_script_reports_too_few_normal_videos(tmp_path):
    write_dataset(tmp_path, lengths=(7, 40, 12, 33), num_anomalous=2)
    status, _, stderr = run_script("--root_path", str(tmp_path), "--dictionary_path", str(tmp_path / "d"),
                                   "--num_anomalous", "2", "--ratio", "50", "--feature_size", "32")
    assert status == 2 and stderr.count("\n") == 1  # before any feature is read
    assert stderr.startswith(f"s3r learn-dictionary: {tmp_path / 'shanghaitech' / 'shanghaitech.training.csv'}: 2 normal video(s) at 50 %")
    assert "needs at least 3 normal videos" in stderr
    assert not (tmp_path / "d").exists()


def test_script_defaults_come_from_the_dataset_config(tmp_path):
    write_dataset(tmp_path)  # 6 rows; the ShanghaiTech config says 63 anomalous
    status, _, stderr = run_script("--root_path", str(tmp_path), "--dictionary_path", str(tmp_path / "d"))
    assert status == 2 and "expected 63 anomalous videos first" in stderr


def test_a_corrupt_pickle_is_an_input_error(tmp_path):
    path = tmp_path / "x.pickle"
    path.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="x.pickle: not a readable pickle"):
        load_regular_features(path)


# ---------------------------------------------------------------------------------------------------------------
# Universal and univ-task
# ---------------------------------------------------------------------------------------------------------------


def test_universal_states_keep_the_most_attended_half_and_the_mean_regular_snippet():
    rng = np.random.default_rng(0)
    regular = [rng.random((3, 8, 16)).astype(np.float32) for _ in range(4)]
    universal = rng.normal(size=(11, 16)).astype(np.float32)
    states = universal_states(regular, universal)
    assert states.shape == (11 // 2 + 1, 16) and states.dtype == np.float32

    snippets = np.concatenate([video.mean(axis=0) for video in regular])
    snippets /= np.linalg.norm(snippets, axis=1, keepdims=True)
    atoms = universal / np.linalg.norm(universal, axis=1, keepdims=True)
    similarity = (snippets @ atoms.T).mean(axis=0)
    best = np.argsort(-similarity)[:5]
    np.testing.assert_allclose(states[:5], universal[best])  # as stored, not normalised
    np.testing.assert_allclose(states[5], snippets.mean(axis=0), rtol=1e-5)


def test_universal_states_map_other_channel_counts_by_pca(tmp_path):
    rng = np.random.default_rng(0)
    regular = [rng.random((2, 4, 8)).astype(np.float32) for _ in range(3)]
    assert universal_states(regular, rng.normal(size=(20, 32))).shape == (11, 8)
    with pytest.raises(InputError, match="u.npy: the universal dictionary \\[4, 32\\] cannot be mapped to 8"):
        universal_states(regular, rng.normal(size=(4, 32)), source=tmp_path / "u.npy")


def test_universal_states_are_cached_and_univ_task_stacks_them_above_the_task_atoms(tmp_path):
    rng = np.random.default_rng(0)
    regular_file = tmp_path / "regular.pickle"
    with open(regular_file, "wb") as file:
        pickle.dump({"feature": {f"v{i}": rng.random((2, 32, 16), dtype=np.float32) for i in range(3)}}, file)
    universal_file = tmp_path / "universal.npy"
    np.save(universal_file, rng.normal(size=(10, 16)).astype(np.float32))
    task_file = tmp_path / "task.npy"
    np.save(task_file, rng.random((4, 16), dtype=np.float32))
    states_file = tmp_path / "cache" / "x_states.universal.npy"

    universal = modality_dictionary("universal", tmp_dict_file=states_file, regular_file=regular_file,
                                    univ_dict_file=universal_file)
    assert universal.shape == (6, 16) and states_file.is_file()
    np.testing.assert_array_equal(load_universal_states(states_file), universal)  # read from the cache

    both = modality_dictionary("univ-task", task_dict_file=task_file, tmp_dict_file=states_file)
    np.testing.assert_array_equal(both, np.vstack((universal, np.load(task_file))))
    np.testing.assert_array_equal(modality_dictionary("taskaware", task_dict_file=task_file), np.load(task_file))

    config = Munch(modality="univ-task", files=Munch(task_dictionary=task_file, universal_states=states_file,
                                                     regular_features=regular_file,
                                                     universal_dictionary=universal_file))
    np.testing.assert_array_equal(load_modality_dictionary(config, feature_size=16), both)


@pytest.mark.parametrize("script", ["data/shanghaitech/shanghaitech_dictionary_learning.py",
                                    "data/ucf-crime/ucf_crime_dictionary_learning.py"])
def test_the_dataset_scripts_run_from_the_repository_root(script):
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--backbone", "--batch_size", "--workers", "--dataset", "--quantize_size", "--max_iter",
                   "--root_path", "--dictionary_path", "--seed", "--debug"):
        assert option in result.stdout


def test_the_modalities_offered_are_the_models_own():
    from anomaly.models import s3r

    assert list(s3r.MODALITIES) == ["taskaware", "universal", "univ-task"]
    with pytest.raises(ValueError, match="modality must be one of " + ", ".join(s3r.MODALITIES) + r"\b"):
        modality_dictionary("both")
