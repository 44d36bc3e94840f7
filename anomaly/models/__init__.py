"""Modules of the S3R detector; tensor shapes are written B (videos) N (crops) T (snippets) C (channels)."""

from anomaly.models.aggregate import Aggregate, NonLocalBlock1D
from anomaly.models.kernel_choice import KernelChoice
from anomaly.models.s3r import S3R, GlobalStatistics, PackedScorer, deNormal, enNormal

__all__ = ["Aggregate", "NonLocalBlock1D", "KernelChoice", "S3R", "GlobalStatistics", "PackedScorer", "deNormal", "enNormal"]
