"""UCF-Crime with a task-aware dictionary learned at 50 %."""

from configs.base import *  # noqa: F401,F403

dataset = "ucf-crime"
num_anomalous_train = 810
dictionary_ratio = 50
random_state = 49
