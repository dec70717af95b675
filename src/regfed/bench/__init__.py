"""Benchmarks behind ``regfed bench``: measured figures, printed, never asserted by tests."""
