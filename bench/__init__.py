"""Veil's benchmarks: `make bench` (python -m bench). Each module prints its own figures."""
