"""Ten-crop I3D ResNet-50 features of videos: the network, decoding, the two preprocessing recipes, the pipeline."""

from anomaly.extraction.extractor import (
    PRECISIONS,
    ExtractionSettings,
    FeatureExtractor,
    RunSummary,
    feature_path,
    list_videos,
    read_record,
    run_extraction,
)
from anomaly.extraction.network import FEATURE_SIZE, CropBox, I3DResNet50, cut_crops, load_i3d
from anomaly.extraction.preprocess import NUM_CROPS, PRESETS, ClipReader, Preset
from anomaly.extraction.video import VideoInfo, decode_frames, probe

__all__ = [
    "FEATURE_SIZE",
    "NUM_CROPS",
    "PRECISIONS",
    "PRESETS",
    "ClipReader",
    "CropBox",
    "ExtractionSettings",
    "FeatureExtractor",
    "I3DResNet50",
    "Preset",
    "RunSummary",
    "VideoInfo",
    "cut_crops",
    "decode_frames",
    "feature_path",
    "list_videos",
    "load_i3d",
    "probe",
    "read_record",
    "run_extraction",
]
