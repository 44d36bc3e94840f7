"""Small helpers of the command-line tools: seeding and describing the environment."""

import random

import numpy as np
import torch


def fixation(seed: int) -> None:
    """Seed every random generator the run uses (Python, NumPy, torch on CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
