"""S3R for weakly supervised video anomaly detection on ten-crop I3D features."""

__version__ = "1.0.0"
