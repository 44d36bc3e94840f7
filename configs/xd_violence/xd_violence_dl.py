"""XD-Violence (audio-visual violence; evaluated by average precision) with a task-aware dictionary at 50 %.

The published S3R code accepts this dataset name but ships no config for it; the counts follow the official
training split (1,905 violent videos listed first, then 2,049 non-violent ones).
"""

from configs.base import *  # noqa: F401,F403
from configs.base import dataset_files

dataset = "xd-violence"
num_anomalous_train = 1905
dictionary_ratio = 50
num_crops = 5  # the RTFM release of XD-Violence I3D features has five crops per snippet
random_state = 823
metric = "AP"
files = dataset_files(dataset, dictionary_ratio)
