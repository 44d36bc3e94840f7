"""Per-dataset Python configs; ``config.load_dataset_config(name)`` reads them."""
