"""Test doubles (fake servers) used by the unit tests and benchmarks."""
