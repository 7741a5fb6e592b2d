"""Benchmarks, run on demand (never as timed tests): ``python -m bench`` (see ``__main__``
and docs/performance.md)."""
