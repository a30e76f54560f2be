"""modgraph."""
