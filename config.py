"""Dataset configs for the published workflow (``from config import load_dataset_config``); the loader lives in
the package, ``anomaly.config``."""

from anomaly.config import load_dataset_config

__all__ = ["load_dataset_config"]
