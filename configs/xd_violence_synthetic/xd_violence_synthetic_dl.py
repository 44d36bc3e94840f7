"""The XD-Violence-shaped synthetic dataset (``tools/make_synthetic_dataset.py --shape xd-violence``): five crops,
official-style names and class balance, evaluated by AP (see ``anomaly.data.catalog``), with a task-aware
dictionary at 50 % as the XD-Violence config.

``num_anomalous_train = None``: read from ``<root>/xd-violence-synthetic/xd-violence-synthetic.spec.json`` (38 of
79 with the defaults). ``feature_size`` is ``anomaly.data.synthetic.XD_VIOLENCE_SPEC``'s.
"""

from configs.base import *  # noqa: F401,F403

dataset = "xd-violence-synthetic"
num_anomalous_train = None  # read from the generated dataset's spec file
feature_size = 128
dictionary_ratio = 50  # round(41 × 50 / 100) = 20 atoms
random_state = 823
