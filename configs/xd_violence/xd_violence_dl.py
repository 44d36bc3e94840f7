"""XD-Violence (audio-visual violence; five crops, evaluated by average precision: see anomaly.data.catalog) with
a task-aware dictionary at 50 %.

The published S3R code accepts this dataset name but ships no config for it; the counts follow the official
training split (1,905 violent videos listed first, then 2,049 non-violent ones).
"""

from configs.base import *  # noqa: F401,F403

dataset = "xd-violence"
num_anomalous_train = 1905
dictionary_ratio = 50
random_state = 823
