"""Settings shared by every dataset config (a config module sets its own values and changes what differs).

File names are built by ``anomaly.layout.dataset_files``; crop counts and metrics are the catalog's
(``anomaly.data.catalog``). Configs import nothing that imports torch (``anomaly.layout`` is plain Python): the
config loader reads them before any model is built.
"""

from anomaly.layout import FRAME_RATES

backbone = "i3d"
feature_size = 2048
init_lr = 0.001
batch_size = 32  # videos per class in a training step (the trainer's default)
frame_rate = FRAME_RATES[0]  # every decoded frame at the video's own rate, 16 to a snippet
modality = "taskaware"
dictionary_max_iter = 100  # mini-batch updates of dictionary learning; part of the dictionary's file name
