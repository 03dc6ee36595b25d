"""Throughput benchmarks of workqueue against its peers; run ``benchmarks/compare.py``."""
