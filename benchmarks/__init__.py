"""Benchmarks of prefix_jax (never imported by the package). `make bench` runs `benchmarks.bench`."""
