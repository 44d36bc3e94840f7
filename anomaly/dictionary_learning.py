"""Dictionaries of normal patterns for S3R's en-Normal module, one implementation for all datasets.

Files, under ``<dictionary_path>/<dataset>/`` (their names are built by ``anomaly.layout.dataset_files``):

- ``<dataset>_regular_features-<C>dim.training.pickle``: ``{"feature": {video_id: float32 [N, 32, C]}}``, every
  normal training video resampled to ``quantize_size`` snippets exactly as the training loader does (the published
  repository needed this file but never shipped the script that makes it).
- ``<dataset>_dictionaries.taskaware.omp.<iters>iters.<R>pct.npy``: the task-aware dictionary, float32 [S, C].
- ``<dataset>_states.universal.npy``: the universal modality's atoms, cached, float32 [K // 2 + 1, C].

Modalities:

- ``taskaware``: the task-aware dictionary (the published setting).
- ``universal``: atoms chosen from a dictionary learned on another dataset (Kinetics-400 in the paper), see
  :func:`universal_states`.
- ``univ-task``: the published code accepted this name but never set a dictionary for it (it crashed). Here it is
  the universal states stacked ON TOP of the task-aware atoms: ``[K // 2 + 1 + S, C]`` (universal rows first).
  en-Normal's softmax attention runs over all atoms, so the video is reconstructed from both sets.
"""

import itertools
import math
import pickle
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from munch import Munch
from tqdm import tqdm

from anomaly.data.arrays import finite_float32
from anomaly.data.datasets import load_dictionary
from anomaly.data.video_lists import split_training_list
from anomaly.data.features import feature_file, feature_folder, load_features, resample_snippets
from anomaly.errors import InputError, check_choice, check_range
from anomaly.files import ensure_folder, save_npy, save_pickle
from anomaly.layout import DICTIONARY_ALGORITHM, TRAINING_SNIPPETS
from anomaly.models.s3r import MODALITIES

PathLike = Union[str, Path]
TRANSFORM_NONZERO_COEFS = 2


# --------------------------------------------------------------------------------------------------------------
# Regular features
# --------------------------------------------------------------------------------------------------------------


def build_regular_features(
    root: PathLike,
    dataset: str,
    video_ids: Sequence[str],
    backbone: str = "i3d",
    quantize_size: int = TRAINING_SNIPPETS,
    num_crops: Optional[int] = None,
    feature_size: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, np.ndarray]:
    """``{video_id: float32 [N, quantize_size, C]}`` of the given (normal) training videos, in list order,
    resampled with :func:`anomaly.data.features.resample_snippets` (the training loader's resampling)."""
    features = {}
    for video_id in tqdm(video_ids, desc=f"regular features ({dataset})", disable=not progress, ncols=100):
        video = load_features(feature_file(feature_folder(root, dataset, backbone, "train"), video_id, backbone), num_crops, feature_size)
        num_crops, feature_size = video.shape[1], video.shape[2]
        features[video_id] = resample_snippets(video, quantize_size)
    return features


def write_regular_features(features: Dict[str, np.ndarray], path: PathLike) -> Path:
    """Pickle ``{"feature": features}`` (the published file's layout)."""
    path = Path(path)
    ensure_folder(path.parent)
    save_pickle({"feature": features}, path)
    return path


# The only globals a regular-features pickle needs: NumPy's array reconstruction (protocols 2-4: _reconstruct,
# ndarray, dtype; protocol 5: _frombuffer), under NumPy 1 (numpy.core) and 2 (numpy._core) names, and for
# protocol 2 the bytes of an array's data (``_codecs.encode(text, "latin1")``, see ``_latin1_bytes``).
REGULAR_FEATURES_GLOBALS = frozenset(
    [(f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
)


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 pickles use it for bytes (latin1 text), and nothing more."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


class _RefusedGlobal(pickle.UnpicklingError):
    """A class or function the regular-features format does not hold, named in a pickle."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays; any other class or function is refused, so a
    crafted file cannot run code (``__reduce__`` payloads need a global such as ``os.system``)."""

    def find_class(self, module: str, name: str):
        if (module, name) in REGULAR_FEATURES_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise _RefusedGlobal(f"refused global '{module}.{name}'")


def load_regular_features(
    path: PathLike, feature_size: Optional[int] = None, quantize_size: Optional[int] = None
) -> Dict[str, np.ndarray]:
    """Read and check a regular-features pickle: float32 ``[N, T, C]`` per video, all of one shape (``C`` equal to
    ``feature_size`` and ``T`` to ``quantize_size`` when given).

    Read with a restricted unpickler (:class:`_ArrayUnpickler`): a file that names any class or function other
    than NumPy's array reconstruction is refused, never run.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "regular-features pickle not found (the dictionary-learning script builds it)")
    try:
        with open(path, "rb") as file:
            content = _ArrayUnpickler(file).load()
    except _RefusedGlobal as error:
        raise InputError(path, f"refused: it is not plain data ({error}); a regular-features pickle holds only "
                         "{'feature': {video_id: array}}, and loading this one could run code") from None
    except pickle.UnpicklingError as error:
        raise InputError(path, f"not a readable pickle ({error})") from None
    except Exception as error:  # unpickling fails in many ways
        raise InputError(path, f"not a readable pickle ({type(error).__name__}: {error})") from None
    features = content.get("feature") if isinstance(content, dict) else None
    if not isinstance(features, dict) or not features:
        raise InputError(path, "expected {'feature': {video_id: [N, T, C] array}} with at least one video")
    shape = None
    for video_id, video in features.items():
        if not isinstance(video, np.ndarray) or video.ndim != 3 or video.dtype.kind != "f":
            raise InputError(path, f"video '{video_id}': expected a float [N, T, C] array")
        if shape is not None and video.shape != shape:
            raise InputError(path, f"video '{video_id}' has shape {list(video.shape)}, others {list(shape)}")
        shape = video.shape
    if feature_size is not None and shape[2] != feature_size:
        raise InputError(path, f"regular features have {shape[2]} channels, expected {feature_size}")
    if quantize_size is not None and shape[1] != quantize_size:
        raise InputError(path, f"regular features have {shape[1]} snippets per video, but --quantize_size is "
                         f"{quantize_size}; delete it to rebuild it")
    return {video_id: finite_float32(video, path, f"the regular features of video '{video_id}'")
            for video_id, video in features.items()}


def video_means(regular_features: Dict[str, np.ndarray]) -> np.ndarray:
    """Each normal video averaged over crops and snippets: ``V × C`` float32 (list order)."""
    return np.stack([video.mean(axis=(0, 1)) for video in regular_features.values()])


# --------------------------------------------------------------------------------------------------------------
# Task-aware dictionary
# --------------------------------------------------------------------------------------------------------------


def number_of_atoms(num_videos: int, ratio: float) -> int:
    """``round(V · R / 100)`` with NumPy's rounding (half to even), as published: 175 videos at 90 % -> 158."""
    return int(np.around(num_videos * ratio / 100.0))


def check_ratio(ratio: float) -> None:
    """The dictionary ratio is a percentage of the normal videos: ``0 < ratio <= 100`` (a one-line InputError
    otherwise).

    Above 100 % there would be more atoms than normal videos, i.e. more components than the V features of the
    C samples: the SVD initialisation pads such a dictionary with zero atoms, which carry no normal pattern.
    """
    check_range(ratio, "the dictionary ratio", above=0, maximum=100, fix="it is a percentage of the normal videos")


def minimum_videos(ratio: float, atoms: int = TRANSFORM_NONZERO_COEFS) -> int:
    """The fewest normal videos that give at least ``atoms`` atoms at ``ratio`` percent (``0 < ratio <= 100``)."""
    check_ratio(ratio)
    # round(V * ratio / 100) >= atoms needs V * ratio / 100 >= atoms - 1/2 (and holds from atoms + 1/2 on): only a
    # few candidates around that bound need trying, however small the ratio.
    videos = max(1, math.floor((atoms - 0.5) * 100.0 / ratio))
    while number_of_atoms(videos, ratio) < atoms:
        videos += 1
    return videos


def _svd_initialisation(samples: np.ndarray, atoms: int, random_state: np.random.RandomState) -> np.ndarray:
    """0.24's initial dictionary: the randomized SVD of all samples (``atoms × V``), padded with zero atoms when
    ``atoms`` exceeds its rank."""
    from sklearn.utils.extmath import randomized_svd

    _, singular_values, components = randomized_svd(samples, atoms, random_state=random_state)
    initial = singular_values[:, np.newaxis] * components
    if len(initial) < atoms:
        initial = np.vstack((initial, np.zeros((atoms - len(initial), samples.shape[1]))))
    return initial


def check_enough_normal_videos(num_videos: int, ratio: float, source: Optional[PathLike], fix: str = "") -> int:
    """The number of atoms that ``num_videos`` normal videos give at ``ratio`` percent, or a one-line InputError
    naming ``source`` when they are fewer than the sparse codes need (``fix``: what to change, in the caller's
    words; by default the number of videos needed)."""
    check_ratio(ratio)
    atoms = number_of_atoms(num_videos, ratio)
    if atoms < TRANSFORM_NONZERO_COEFS:
        fix = fix or f"dictionary learning needs at least {minimum_videos(ratio)} normal videos"
        raise InputError(source, f"{num_videos} normal video(s) at {ratio:g} % give {atoms} atom(s), but the OMP "
                         f"codes need at least {TRANSFORM_NONZERO_COEFS}: {fix}")
    return atoms


def _checked_atoms(means: np.ndarray, ratio: float, source: Optional[PathLike]) -> int:
    """The number of atoms for these normal videos' means (``V × C``), or a one-line InputError naming ``source``
    when there are too few videos for the sparse codes or the means are not finite."""
    atoms = check_enough_normal_videos(means.shape[0], ratio, source)
    if not np.isfinite(means).all():
        raise InputError(source, "the normal videos' mean features are NaN or inf: the features hold NaN or inf, or "
                         "values so large that their sum overflows float32 (rescale them)")
    return atoms


def learn_task_dictionary(
    means: np.ndarray,
    ratio: float,
    max_iter: int = 100,
    batch_size: int = 32,
    seed: Optional[int] = 42,
    source: Optional[PathLike] = None,
    progress: bool = False,
) -> np.ndarray:
    """The task-aware dictionary from the normal videos' means (``V × C``): float32 ``S × C``.

    The data are the TRANSPOSE of the means: C samples of V features. MiniBatchDictionaryLearning learns
    ``S = round(V · ratio / 100)`` components of V features; the "dictionary" S3R uses is the sparse CODE of
    the C samples (OMP, 2 non-zero coefficients each), ``C × S``, transposed to ``S × C``.

    ``max_iter`` counts MINI-BATCH UPDATES, the meaning of ``n_iter`` in scikit-learn 0.24, which the published
    code ran (``n_iter=100``). Today's ``MiniBatchDictionaryLearning`` has no ``n_iter``: its ``max_iter`` counts
    epochs (``max_iter × ceil(C / batch_size)`` updates, 6,400 for C = 2048) and it stops early on its own
    criteria. So we run 0.24's loop with today's building blocks:

    1. one ``RandomState(seed)`` drives everything, in 0.24's order: the SVD initialisation on ALL samples
       (``randomized_svd``, padded with zero atoms when S exceeds its rank), then one shuffle of a copy of
       the samples, then the re-sampling of unused atoms inside the updates;
    2. the shuffled samples are cut into ``batch_size`` batches, cycled, and ``partial_fit`` (exactly one
       mini-batch update each: sparse coding with LARS, alpha 1, then the block-coordinate dictionary update)
       is called ``max_iter`` times on them, with that dictionary as ``dict_init``;
    3. the codes of all samples come from ``transform`` (OMP, 2 non-zeros), as 0.24's ``fit_transform`` did.

    With C = 2048 and batch 32 that is one pass over 64 batches plus 36 more, as in 0.24. Remaining differences
    to 0.24 are numerical details of today's update (the statistics are divided by the batch size, atoms are
    projected to norm <= 1 rather than = 1), so values are close to, not bit-equal with, the published files.
    ``batch_size <= 0`` means V, as published.
    """
    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.utils import gen_batches

    check_range(max_iter, "max_iter", minimum=1, integer=True, fix="it counts mini-batch updates")
    means = np.asarray(means)
    num_videos = means.shape[0]
    atoms = _checked_atoms(means, ratio, source)
    if batch_size <= 0:
        batch_size = num_videos

    samples = np.ascontiguousarray(means.T, dtype=np.float64)  # C samples × V features
    random_state = np.random.RandomState(seed)
    dict_init = _svd_initialisation(samples, atoms, random_state)
    shuffled = samples.copy()
    random_state.shuffle(shuffled)

    learner = MiniBatchDictionaryLearning(
        n_components=atoms,
        batch_size=batch_size,
        dict_init=dict_init,
        shuffle=False,
        random_state=random_state,  # the same generator continues: unused atoms are re-sampled from it
        transform_algorithm=DICTIONARY_ALGORITHM,
        transform_n_nonzero_coefs=TRANSFORM_NONZERO_COEFS,
    )
    batches = itertools.cycle(gen_batches(len(shuffled), batch_size))
    for batch in tqdm(itertools.islice(batches, max_iter), total=max_iter, desc="dictionary learning",
                      disable=not progress, ncols=100):
        learner.partial_fit(shuffled[batch])
    # In this process: OMP with 2 non-zeros codes 2048 samples in well under a second even for 800 videos, while
    # starting joblib's worker processes took 4-7 s (and was no faster once they ran).
    codes = learner.transform(samples)  # C × S, at most 2 non-zeros per row
    return np.ascontiguousarray(codes.T, dtype=np.float32)


# --------------------------------------------------------------------------------------------------------------
# Universal and univ-task
# --------------------------------------------------------------------------------------------------------------


def _softmax(values: np.ndarray) -> np.ndarray:
    exponentials = np.exp(values - values.max())
    return exponentials / exponentials.sum()


def _l2_normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


def universal_states(
    regular_features: Iterable[np.ndarray], universal_dictionary: np.ndarray, source: Optional[PathLike] = None
) -> np.ndarray:
    """The universal modality's atoms: float32 ``[K // 2 + 1, C]``.

    ``regular_features``: the normal videos' ``[N, T, C]`` arrays; ``universal_dictionary``: ``[K, C']``.
    When ``C' != C`` the dictionary is first mapped to C channels by PCA (needs ``K >= C`` and ``C' >= C``).
    Snippets (averaged over crops) and atoms are L2-normalised; the attention of the atoms is the softmax of
    their mean cosine similarity to all regular snippets; the ``K // 2`` most attended atoms are kept as stored
    (after PCA, not normalised), followed by the mean normalised regular snippet.
    """
    snippets = np.concatenate([np.asarray(video).mean(axis=0) for video in regular_features])  # (M·T) × C
    channels = snippets.shape[1]
    memory = np.asarray(universal_dictionary, dtype=np.float32)
    if memory.shape[1] != channels:
        if memory.shape[1] < channels or memory.shape[0] < channels:
            raise InputError(
                source,
                f"the universal dictionary {list(memory.shape)} cannot be mapped to {channels} channels by PCA "
                f"(it needs at least {channels} atoms of at least {channels} channels)",
            )
        from sklearn.decomposition import PCA

        memory = PCA(n_components=channels, svd_solver="full").fit_transform(memory).astype(np.float32)
    normalised_snippets = _l2_normalise(snippets)
    attention = _softmax((normalised_snippets @ _l2_normalise(memory).T).mean(axis=0))
    keep = np.flip(np.argsort(attention))[: len(memory) // 2]
    states = np.vstack((memory[keep], normalised_snippets.mean(axis=0, keepdims=True)))
    return states.astype(np.float32)


def load_universal_states(
    states_file: PathLike,
    regular_file: Optional[PathLike] = None,
    universal_dictionary_file: Optional[PathLike] = None,
    feature_size: Optional[int] = None,
) -> np.ndarray:
    """The cached universal states, computed and cached first (from the regular features and the universal
    dictionary file) when ``states_file`` does not exist."""
    states_file = Path(states_file)
    if states_file.is_file():
        return load_dictionary(states_file, feature_size)
    if regular_file is None or universal_dictionary_file is None:
        raise InputError(states_file, "universal states not found; give the regular features and the universal "
                         "dictionary to compute them")
    universal = load_dictionary(universal_dictionary_file)
    regular = load_regular_features(regular_file, feature_size)
    states = universal_states(regular.values(), universal, source=universal_dictionary_file)
    ensure_folder(states_file.parent)
    save_npy(states, states_file)
    return states


def modality_dictionary(
    modality: str,
    task_dict_file: Optional[PathLike] = None,
    tmp_dict_file: Optional[PathLike] = None,
    regular_file: Optional[PathLike] = None,
    univ_dict_file: Optional[PathLike] = None,
    feature_size: Optional[int] = None,
) -> np.ndarray:
    """The dictionary ``[S, C]`` a modality gives to the model (file arguments named as in the configs).

    ``taskaware``: the task-aware file. ``universal``: the cached universal states (computed first when missing).
    ``univ-task``: universal states stacked above the task-aware atoms.
    """
    check_choice(modality, MODALITIES, "modality")
    parts = []
    if modality in ("universal", "univ-task"):
        if tmp_dict_file is None:
            raise ValueError(f"modality {modality!r} needs tmp_dict_file (the universal states cache)")
        parts.append(load_universal_states(tmp_dict_file, regular_file, univ_dict_file, feature_size))
    if modality in ("taskaware", "univ-task"):
        if task_dict_file is None:
            raise ValueError(f"modality {modality!r} needs task_dict_file")
        parts.append(load_dictionary(task_dict_file, feature_size))
    if len(parts) == 2 and parts[0].shape[1] != parts[1].shape[1]:
        raise InputError(task_dict_file, f"task-aware atoms have {parts[1].shape[1]} channels, universal ones "
                         f"{parts[0].shape[1]}")
    return np.vstack(parts).astype(np.float32)


def load_modality_dictionary(config, feature_size: Optional[int] = None) -> np.ndarray:
    """:func:`modality_dictionary` for a loaded dataset config (``config.load_dataset_config``): uses
    ``config.modality`` and ``config.files.{task_dictionary, universal_states, regular_features,
    universal_dictionary}``."""
    files = config.files
    return modality_dictionary(
        config.modality,
        task_dict_file=files.get("task_dictionary"),
        tmp_dict_file=files.get("universal_states"),
        regular_file=files.get("regular_features"),
        univ_dict_file=files.get("universal_dictionary"),
        feature_size=feature_size,
    )


def learn_dataset_dictionary(
    config: Munch,
    root: PathLike,
    quantize_size: int = TRAINING_SNIPPETS,
    batch_size: int = 32,
    seed: Optional[int] = 42,
    debug: bool = False,
    universal_dictionary: Optional[PathLike] = None,
) -> List[Path]:
    """Learn the task-aware dictionary of a dataset's config (``anomaly.config.load_dataset_config``, whose
    ``dictionary_max_iter`` is the number of updates) from the features (``config.backbone``'s) of its normal training
    videos under ``root``; returns the files written. The regular-features pickle is built first, or reused when it
    holds these videos. ``debug``: at most ``2 × batch_size`` videos and no pickle. With ``universal_dictionary``,
    the universal states too."""
    ratio, files = config.dictionary_ratio, config.files
    normal_ids = split_training_list(files.training_list, config.num_anomalous_train)["normal"]
    if debug:
        normal_ids = normal_ids[: 2 * max(batch_size, 1)]
    check_enough_normal_videos(len(normal_ids), ratio, files.training_list)  # before reading any features
    universal = None if universal_dictionary is None else load_dictionary(universal_dictionary)
    ensure_folder(files.task_dictionary.parent)  # a blocked output fails before any feature is read

    written = []
    regular_file = files.regular_features
    if regular_file.is_file() and not debug:
        regular = load_regular_features(regular_file, config.feature_size, quantize_size)
        if list(regular) != list(normal_ids):
            raise InputError(regular_file, f"its videos are not the normal videos of {files.training_list}; delete "
                             "it to rebuild it")
    else:
        regular = build_regular_features(root, config.dataset, normal_ids, config.backbone, quantize_size,
                                         feature_size=config.feature_size)
        if not debug:
            written.append(write_regular_features(regular, regular_file))
    dictionary = learn_task_dictionary(
        video_means(regular), ratio, max_iter=config.dictionary_max_iter, batch_size=batch_size, seed=seed,
        source=files.training_list if debug else regular_file, progress=True,
    )
    save_npy(dictionary, files.task_dictionary)
    written.append(files.task_dictionary)
    if universal is not None:
        states = universal_states(regular.values(), universal, source=universal_dictionary)
        save_npy(states, files.universal_states)
        written.append(files.universal_states)
    return written
