"""Training at scale: neighbour-sampled mini-batches and multi-process data parallelism."""
