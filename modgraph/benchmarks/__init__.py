"""Benchmarks that reproduce the paper's experiments with modgraph's own machinery (``uci``: Tables 1-2)."""
