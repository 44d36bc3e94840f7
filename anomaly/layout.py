"""The published layout: the fixed sizes behind the features and the name of every file a dataset or run has.

Defined once here, imported everywhere else; this module imports nothing heavy (no torch), so configs, option
parsers and the data layer may use it, the model's feature-size rule too (``check_feature_size``). Names are
relative: lists, ground truth and features to the ``--root_path`` folder, dictionaries and regular features to the
``--dictionary_path`` folder, run files to the version folders.
"""

from typing import Dict, Optional, Tuple

from anomaly.errors import InputError

FRAMES_PER_SNIPPET = 16  # frames of video behind one snippet (one I3D clip)
TRAINING_SNIPPETS = 32  # snippets every training video is resampled to (the published quantize_size)
DICTIONARY_ALGORITHM = "omp"  # the sparse coding of dictionary learning; part of the dictionary's file name
UNIVERSAL_DICTIONARY_DATA = "kinetics400"  # the dataset a universal dictionary is learned on
NUM_CROPS = (10, 5, 1)  # crops per snippet: the published ten, the first five (XD-Violence), the centre one
# The feature networks (anomaly.extraction.backbones.BACKBONES), I3D the default, and the frame recipes each takes
# (anomaly.extraction.preprocess.PRESETS), its default first.
BACKBONE_PRESETS = {"i3d": ("rtfm", "gowtham"), "clip": ("vadclip",)}
BACKBONE_NAMES = tuple(BACKBONE_PRESETS)
BACKBONE_FEATURE_SIZES = {"i3d": 2048, "clip": 512}  # channels of each network's features
PRESET_NAMES = tuple(preset for presets in BACKBONE_PRESETS.values() for preset in presets)
FRAME_READINGS = ("mean", "middle")  # how a per-frame network's 16 frames become a snippet's row (--clip_frames)
FRAME_RATES = ("native",)  # how features treat a video's frame rate: every decoded frame, 16 to a snippet
MAX_SEED = 2**32 - 1  # the largest seed NumPy's RandomState (np.random.seed, scikit-learn's random_state) takes
DETECTOR_SUFFIX = ".detector.pth"  # <run stem>.detector.pth: a trained detector, self-described
EXPORT_MANIFEST = "manifest.json"  # in a folder of s3r export: what its models compute (anomaly.deploy.manifest)


def crops_text(count: int) -> str:
    """'1 crop', '10 crops': a crop count as every message and page words it."""
    return f"{count} crop{'s' if count != 1 else ''}"


def check_feature_size(feature_size: int, name: str = "feature_size") -> int:
    """``feature_size`` unchanged when S3R can take it: a positive multiple of 32, since its temporal block
    (``anomaly.models.aggregate.Aggregate``) normalises ``C / 4`` channels in 8 groups. The one place this rule is
    checked; a one-line InputError naming ``name`` (e.g. the option) otherwise."""
    if isinstance(feature_size, bool) or not isinstance(feature_size, int) or feature_size < 32 or feature_size % 32:
        raise InputError(None, f"{name} must be a positive multiple of 32 (the model's GroupNorm runs 8 groups on C / 4 "
                         f"channels), not {feature_size!r}")
    return feature_size


def feature_file_name(video_id: str, backbone: str) -> str:
    """``<video_id>_<backbone>.npy``: a video's features, as in the RTFM release and as extraction writes them."""
    return f"{video_id}_{backbone}.npy"


def video_id_of_feature_file(file_name: str, backbone: str) -> Optional[str]:
    """The video id of a feature file's name (``feature_file_name``), or None for another file."""
    suffix = feature_file_name("", backbone)
    return file_name[: -len(suffix)] or None if file_name.endswith(suffix) else None


def description_file_name(dataset: str) -> str:
    """``<dataset>.dataset.json``: a dataset defined by data (``anomaly.data.description``), in its folder."""
    return f"{dataset}.dataset.json"


def dataset_files(dataset: str, dictionary_ratio: int, feature_size: int, dictionary_max_iter: int,
                  backbone: str = "i3d") -> dict:  # fmt: skip
    """The published file names of a dataset laid out as in the RTFM feature release. The dictionaries (and the
    regular features and states they are learned from) are of one backbone's features: another backbone's than
    I3D go in a folder of their own, ``<dataset>/<backbone>/``, so that learning them never replaces I3D's."""
    iterations = f"{DICTIONARY_ALGORITHM}.{dictionary_max_iter}iters"
    universal = UNIVERSAL_DICTIONARY_DATA
    own = "" if backbone == "i3d" else f"{backbone}/"
    return dict(
        data_file_train=f"{dataset}/{dataset}.training.csv",
        data_file_test=f"{dataset}/{dataset}.testing.csv",
        ann_file_test=f"{dataset}/{dataset}_ground_truth.testing.json",
        task_dict_file=f"{dataset}/{own}{dataset}_dictionaries.taskaware.{iterations}.{dictionary_ratio}pct.npy",
        univ_dict_file=f"{universal}/{own}{universal}_dictionaries.universal.{iterations}.npy",
        tmp_dict_file=f"{dataset}/{own}{dataset}_states.universal.npy",
        regular_file=f"{dataset}/{own}{dataset}_regular_features-{feature_size}dim.training.pickle",
    )


def run_stem(dataset: str, model_name: str, backbone: str) -> str:
    """``<dataset>_<model>_<backbone>``: the stem of a run's checkpoint, state, score, log and curve files."""
    return f"{dataset}_{model_name}_{backbone}"


def dataset_of_run_stem(stem: str) -> str:
    """The dataset of a run file's stem (``run_stem``): dataset names hold no '_' (``anomaly.data.catalog``)."""
    return stem.partition("_")[0]


def exported_model_files(model: str) -> Dict[str, Tuple[str, ...]]:
    """The files of an exported model (``features``, ``scorer``) in a folder of s3r export, per format: ONNX, and
    OpenVINO IR (the graph, then its weights)."""
    return {"onnx": (f"{model}.onnx",), "openvino": (f"{model}.xml", f"{model}.bin")}
