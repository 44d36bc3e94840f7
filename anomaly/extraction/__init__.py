"""Ten-crop I3D ResNet-50 features of videos: the network, decoding, the two preprocessing recipes, the pipeline."""

from anomaly.extraction.extractor import (
    BACKBONE,
    ExtractionPlan,
    ExtractionSettings,
    FeatureExtractor,
    FeatureOptions,
    RunSummary,
    VideoResult,
    features_of,
    list_videos,
    plan_extraction,
    recorded_recipe,
    run_extraction,
    run_plan,
    settings_path,
)
from anomaly.extraction.network import FEATURE_SIZE, CropBox, I3DResNet50, cut_crops, load_i3d
from anomaly.extraction.preprocess import MAX_RESIZED_PIXELS, PRESETS, ClipReader, Preset
from anomaly.extraction.video import Orientation, VideoDecoder, VideoInfo, decode_frames, probe

__all__ = [
    "BACKBONE",
    "FEATURE_SIZE",
    "MAX_RESIZED_PIXELS",
    "PRESETS",
    "ClipReader",
    "CropBox",
    "ExtractionPlan",
    "ExtractionSettings",
    "FeatureExtractor",
    "FeatureOptions",
    "I3DResNet50",
    "Orientation",
    "Preset",
    "RunSummary",
    "VideoDecoder",
    "VideoInfo",
    "VideoResult",
    "cut_crops",
    "decode_frames",
    "features_of",
    "list_videos",
    "load_i3d",
    "plan_extraction",
    "probe",
    "recorded_recipe",
    "run_extraction",
    "run_plan",
    "settings_path",
]
