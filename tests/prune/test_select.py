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


@pytest.mark.parametrize("scores, bins, sizes, amount, error, message", [
    ([0.9, 0.1], ["a", "a"], {"a": 2}, {"sparsity": 0.5}, TypeError,  # AttributeError 'detach' before
     r"^select_lowest: scores must be a tensor \[N\], one score per item, got list$"),
    (torch.rand(2, 2), ["a", "a"], {"a": 4}, {"sparsity": 0.5}, mg.PruneError,  # a torch RuntimeError before
     r"^select_lowest: scores must be a tensor \[N\], one score per item, got shape \(2, 2\)$"),
    (SCORES, BINS[:5], SIZES, {"sparsity": 0.5}, mg.PruneError,  # IndexError before
     r"^select_lowest: bins must give the bin of every score, one per item: got 5 bins for 7 scores$"),
    (SCORES, BINS + ["b"], SIZES, {"sparsity": 0.5}, mg.PruneError,  # the extra bin ignored before
     r"^select_lowest: bins must give the bin of every score, one per item: got 8 bins for 7 scores$"),
    (SCORES, "aaabbbb", SIZES, {"sparsity": 0.5}, TypeError,  # one bin per character before
     r"^select_lowest: bins must be a list, the bin of every score, got str$"),
    (SCORES, [["a"]] * 3 + [["b"]] * 4, SIZES, {"sparsity": 0.5}, TypeError,
     r"^select_lowest: bins\[0\] is list \['a'\]; a bin is a name \(hashable\)$"),
    (SCORES, BINS, {"a": 3}, {"sparsity": 0.5}, mg.PruneError,  # KeyError 'b' before
     r"^select_lowest: sizes has no entry for bin 'b' \(of item 3\); it needs the number of items of every bin$"),
    (SCORES, BINS, {"a": 3}, {"threshold": 0.5, "scope": "local"}, mg.PruneError,
     r"^select_lowest: sizes has no entry for bin 'b' \(of item 3\)"),
    (SCORES, BINS, [3, 4], {"sparsity": 0.5}, TypeError,
     r"^select_lowest: sizes must be a dict bin -> number of items, got list$"),
    (SCORES, BINS, {"a": 0, "b": 4}, {"sparsity": 0.5}, mg.PruneError,  # layer 'a' skipped, silently, before
     r"^select_lowest: sizes\['a'\] must be an integer >= 3 \(the bin's number of items; 3 of them are scored\), "
     r"got 0$"),
    (SCORES, BINS, {"a": 3.5, "b": 4}, {"sparsity": 0.5}, mg.PruneError,
     r"^select_lowest: sizes\['a'\] must be an integer >= 3 .*, got 3\.5$"),
    (torch.tensor([1.0, math.inf, 3.0]), ["a"] * 3, {"a": 3}, {"threshold": 0.5}, mg.PruneError,  # [0, 2] before
     r"^select_lowest: scores must be finite numbers \(NaN: not scored\), got inf at position 1 \(1 infinite in "
     r"all\)$"),
])
def test_items_that_do_not_fit_are_named(scores, bins, sizes, amount, error, message):
    with pytest.raises(error, match=message):
        select_lowest(scores, bins, sizes, **amount)


def test_valid_items_of_other_kinds_give_the_same_positions():
    assert select_lowest(SCORES, tuple(BINS), {"a": 3, "b": 4}, sparsity=0.5) == [1, 3, 5]
    assert select_lowest(SCORES, BINS, {"a": 3, "b": 3}, sparsity=0.5) == [1, 3, 5]  # the unscored item uncounted
    assert select_lowest(torch.tensor([3, 1, 2]), ["a"] * 3, {"a": 3}, sparsity=0.5) == [1, 2]  # integer scores
    with pytest.raises(mg.PruneError, match=r"^select_lowest: scores must be finite .*, got -inf at position 0"):
        select_lowest(torch.tensor([-math.inf, 1.0]), ["a", "a"], {"a": 2}, sparsity=0.5)
