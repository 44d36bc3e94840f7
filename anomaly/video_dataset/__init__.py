"""A trainable dataset from folders of the user's videos: features, lists, ground truth aligned with the features,
a description file and the dictionary (``s3r make-dataset``)."""
