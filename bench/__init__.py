"""Benchmarks, run on demand (never as timed tests): ``python -m bench.latency``."""
