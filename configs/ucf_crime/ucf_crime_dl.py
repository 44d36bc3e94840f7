"""UCF-Crime with a task-aware dictionary learned at 50 %."""

from configs.base import *  # noqa: F401,F403
from configs.base import dataset_files

dataset = "ucf-crime"
num_anomalous_train = 810
dictionary_ratio = 50
random_state = 49
files = dataset_files(dataset, dictionary_ratio)
