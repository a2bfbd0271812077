"""Benchmarks of pytgi itself: `python -m pytgi.bench.core_bench` (`make bench`).

See docs/benchmarks.md for the scenarios, the noise control and the latest figures.
"""
