"""Benchmarks and load generators (run as modules, e.g. python -m loadtest.bench_ca)."""
