"""Benchmarks: lamina side by side with the frameworks a user would pick instead (`make bench`)."""
