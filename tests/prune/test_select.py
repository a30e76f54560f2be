"""The pruning policy: sparsity or threshold, global or per layer, never emptying a layer."""

import math

import pytest
import torch

import modgraph as mg
from modgraph.prune import select_lowest

SCORES = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.8, 0.3, math.nan])
BINS = ["a", "a", "a", "b", "b", "b", "b"]
SIZES = {"a": 3, "b": 4}


def test_global_and_local_sparsity():
    assert select_lowest(SCORES, BINS, SIZES, sparsity=0.5) == [1, 3, 5]  # round(0.5 * 6 scored) lowest
    assert select_lowest(SCORES, BINS, SIZES, sparsity=0.34, scope="local") == [1, 3]
    assert select_lowest(SCORES, BINS, SIZES, sparsity=0.0) == []


def test_thresholds_compare_scores_normalised_by_the_largest():
    assert select_lowest(SCORES, BINS, SIZES, threshold=0.5) == [1, 3, 5]  # below 0.45 of max 0.9
    assert select_lowest(SCORES, BINS, SIZES, threshold=0.5, scope="local") == [1, 3, 5]
    assert select_lowest(SCORES, BINS, SIZES, threshold=0.6, scope="local") == [1, 2, 3, 5]


def test_equal_scores_are_broken_by_position():
    assert select_lowest(torch.ones(4), ["a"] * 4, {"a": 4}, sparsity=0.5) == [0, 1]


def test_requests_that_would_empty_a_layer_name_it_and_the_range():
    with pytest.raises(mg.PruneError, match=r"sparsity 0.9 asks to remove 5 of 6 units, but at most 4 can go "
                                            r"\(every layer keeps one\); valid sparsity: \[0, 0.667\]"):
        select_lowest(SCORES, BINS, {"a": 3, "b": 3}, sparsity=0.9)
    with pytest.raises(mg.PruneError, match="sparsity 0.9 would remove all 3 units of layer 'a'"):
        select_lowest(SCORES, BINS, SIZES, sparsity=0.9, scope="local")
    with pytest.raises(mg.PruneError, match=r"threshold 0.5 would remove all 2 units of layer 'a' \(its highest "
                                            r"normalised score is 0.2\); use a threshold of at most 0.2"):
        select_lowest(torch.tensor([0.2, 0.1, 1.0]), ["a", "a", "b"], {"a": 2, "b": 1}, threshold=0.5)
    assert select_lowest(torch.tensor([0.2, 0.1, 1.0]), ["a", "a", "b"], {"a": 2, "b": 1}, threshold=0.6,
                         scope="local") == [1]


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 1.0}, r"sparsity must be a number in \[0, 1\), got 1.0"),
    ({"sparsity": -0.1}, r"sparsity must be a number in \[0, 1\), got -0.1"),
    ({"threshold": 1.5}, r"threshold must be a number in \[0, 1\], got 1.5"),
    ({}, "give exactly one of sparsity"),
    ({"sparsity": 0.5, "threshold": 0.5}, "give exactly one of sparsity"),
    ({"sparsity": 0.5, "scope": "layer"}, "scope must be 'global' or 'local'"),
])
def test_bad_requests(kwargs, message):
    with pytest.raises(mg.PruneError, match=message):
        select_lowest(SCORES, BINS, SIZES, **kwargs)
