"""The bundled synthetic dataset (tools/make_synthetic_dataset.py) with a task-aware dictionary learned at 90 %,
as ShanghaiTech's. Small on purpose: ``make demo`` trains on it on a CPU.

``num_anomalous_train = None``: the number of anomalous rows at the top of the training list is read from the
generated dataset's ``<root>/synthetic/synthetic.spec.json``
(``anomaly.data.synthetic.num_anomalous_training_videos``), so a dataset made with other counts needs no edit
here; the config loader and the dictionary script both do this. ``feature_size`` and ``num_crops`` are those of
``anomaly.data.synthetic.DEFAULT_SPEC`` and the catalog (tests check they agree); a dataset made with another
``--feature_size`` needs ``--feature_size`` on the dictionary script and the trainer too.
"""

from configs.base import *  # noqa: F401,F403

dataset = "synthetic"
num_anomalous_train = None  # read from data/synthetic/synthetic.spec.json (36 of 120 with the defaults)
feature_size = 128
dictionary_ratio = 90  # round(84 × 90 / 100) = 76 atoms
random_state = 823
