"""Helpers of the published scripts, kept under their published names for code that imports them."""

from anomaly.engine.training_state import seed_everything

fixation = seed_everything  # the published name: it seeds (fixes) every random generator of a run

__all__ = ["fixation", "seed_everything"]
