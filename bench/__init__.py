"""Benchmarks behind ``make bench``. Each ``bench/bench_*.py`` exposes ``run(scale) -> list[dict]``."""
