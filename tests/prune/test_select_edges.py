"""Boundary cases of the pruning policy, counted by hand."""

import torch

from modgraph.prune import select_lowest


def test_a_score_exactly_at_the_threshold_is_kept():
    """"Below the threshold" is strict: 0.5 / 1.0 is not below 0.5, and the top item is never below 1.0."""
    scores = torch.tensor([1.0, 0.5, 0.25, 0.5])
    bins, sizes = ["a"] * 4, {"a": 4}
    assert select_lowest(scores, bins, sizes, threshold=0.5) == [2]
    assert select_lowest(scores, bins, sizes, threshold=1.0) == [1, 2, 3]
    assert select_lowest(scores, bins, sizes, threshold=0.25) == []
    assert select_lowest(scores, bins, sizes, threshold=0.5, scope="local") == [2]


def test_local_ties_are_broken_by_position_in_every_bin():
    ones, bins, sizes = torch.ones(6), ["a"] * 3 + ["b"] * 3, {"a": 3, "b": 3}
    assert select_lowest(ones, bins, sizes, sparsity=0.34, scope="local") == [0, 3]  # round(0.34 * 3) = 1 each


def test_local_counts_are_fractions_of_the_scored_items_of_a_bin():
    """Two of bin a's four items are scored: sparsity 0.5 removes round(0.5 * 2) = 1 of them, not 2."""
    nan = float("nan")
    scores = torch.tensor([0.2, 0.1, nan, nan, 0.3, 0.4])
    bins, sizes = ["a"] * 4 + ["b"] * 2, {"a": 4, "b": 2}
    assert select_lowest(scores, bins, sizes, sparsity=0.5, scope="local") == [1, 4]
    assert select_lowest(scores, bins, sizes, sparsity=0.5) == [0, 1]  # round(0.5 * 4 scored) = 2 globally
