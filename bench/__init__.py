"""Benchmarks that print ratios against the plain tools (`python -m bench.<name>`)."""
