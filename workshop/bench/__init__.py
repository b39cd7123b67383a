"""Benchmarks (not tests): timings and memory against reference runs in the same process, written as JSON; each module runs with ``python -m`` and ``--help``."""
