"""ShanghaiTech (weakly supervised split of Zhong et al.) with a task-aware dictionary learned at 90 %."""

from configs.base import *  # noqa: F401,F403
from configs.base import dataset_files

dataset = "shanghaitech"
num_anomalous_train = 63
dictionary_ratio = 90
random_state = 823
files = dataset_files(dataset, dictionary_ratio)
