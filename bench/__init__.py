"""Benchmarks (not tests, never run by CI): `uv run python bench/run.py --help`."""
