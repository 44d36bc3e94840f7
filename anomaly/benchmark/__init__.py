"""Measuring tools: how fast the fast paths are against the published computation, on the machine at hand.

Not part of training or evaluation: nothing in ``anomaly.engine`` imports from here. ``detector`` times S3R's
training step and evaluation on the synthetic inputs of ``inputs``, ``report`` prints them (``tools/benchmark.py``);
``extraction`` times feature extraction (``tools/benchmark_extraction.py``). The timing itself is
``anomaly.measuring``'s.
"""
