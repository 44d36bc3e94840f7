"""Features of videos: the backbones (ten-crop I3D ResNet-50, the published features; CLIP ViT-B/16), decoding,
the preprocessing recipes, the pipeline."""

from anomaly.extraction.backbones import BACKBONES, Backbone, FeatureNetwork, backbone_of
from anomaly.extraction.extractor import (
    ExtractionPlan,
    ExtractionSettings,
    FeatureOptions,
    RunSummary,
    VideoResult,
    features_of,
    file_sha256,
    list_videos,
    plan_extraction,
    recorded_recipe,
    run_extraction,
    run_plan,
    settings_path,
)
from anomaly.extraction.network import FEATURE_SIZE, CropBox, I3DExtractor, I3DResNet50, cut_crops, load_i3d
from anomaly.extraction.preprocess import MAX_RESIZED_PIXELS, PRESETS, ClipReader, Preset
from anomaly.extraction.video import Orientation, VideoDecoder, VideoInfo, decode_frames, probe

__all__ = [
    "BACKBONES",
    "Backbone",
    "FEATURE_SIZE",
    "MAX_RESIZED_PIXELS",
    "PRESETS",
    "ClipReader",
    "CropBox",
    "ExtractionPlan",
    "ExtractionSettings",
    "FeatureNetwork",
    "FeatureOptions",
    "I3DExtractor",
    "I3DResNet50",
    "Orientation",
    "Preset",
    "RunSummary",
    "VideoDecoder",
    "VideoInfo",
    "VideoResult",
    "backbone_of",
    "cut_crops",
    "decode_frames",
    "features_of",
    "file_sha256",
    "list_videos",
    "load_i3d",
    "plan_extraction",
    "probe",
    "recorded_recipe",
    "run_extraction",
    "run_plan",
    "settings_path",
]
