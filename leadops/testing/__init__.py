"""Test doubles at the HTTP boundary (fake providers), shared by tests and benchmarks."""
