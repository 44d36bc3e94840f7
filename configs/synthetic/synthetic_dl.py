"""The bundled synthetic dataset (tools/make_synthetic_dataset.py with its defaults) with a task-aware
dictionary learned at 90 %, as ShanghaiTech's. Small on purpose: ``make demo`` trains on it on a CPU.

The numbers below are those of ``anomaly.data.synthetic.DEFAULT_SPEC`` (tests check they agree); a dataset made
with other sizes needs its own values (``--num_anomalous`` / ``--feature_size`` on the dictionary script).
"""

from configs.base import *  # noqa: F401,F403
from configs.base import dataset_files

dataset = "synthetic"
num_anomalous_train = 36  # the first 36 rows of synthetic.training.csv are anomalous, the other 84 normal
feature_size = 128
num_crops = 10
dictionary_ratio = 90  # round(84 × 90 / 100) = 76 atoms
random_state = 823
init_lr = 0.001
modality = "taskaware"
metric = "AUC"
files = dataset_files(dataset, dictionary_ratio, feature_size)
