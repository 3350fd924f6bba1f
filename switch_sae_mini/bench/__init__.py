"""Benchmarks (not tests): training-step throughput against the FLOP lower bound and peers (train_step.py),
activation harvesting (harvest.py) and the distributed per-rank summary (distributed.py). Run them through the
command line: ``python -m switch_sae_mini bench`` / ``bench-harvest``.
"""
