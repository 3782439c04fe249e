"""Benchmarks that need a large dataset: run with `make bench`, never in the test suite."""
