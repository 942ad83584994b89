"""Benchmarks: `./dev bench [NAME...]` runs them and writes docs/PERFORMANCE.md."""
