"""ShanghaiTech (weakly supervised split of Zhong et al.) with a task-aware dictionary learned at 90 %."""

from configs.base import *  # noqa: F401,F403

dataset = "shanghaitech"
num_anomalous_train = 63
dictionary_ratio = 90
random_state = 823
