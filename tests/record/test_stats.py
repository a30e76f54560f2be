"""RunningStats: chunked, grown, flushed and shifted accumulation all equal a direct computation."""

import numpy as np
import pytest
import torch

from modgraph.record import RunningStats

from .test_recorder import check


def feed(rs: RunningStats, batches):
    for b in batches:
        rs.update(b)
    return rs.summary()


@pytest.mark.parametrize("max_rows", [1, 3, 64])
def test_batches_larger_than_the_accumulators_go_in_as_chunks(max_rows):
    torch.manual_seed(0)
    batches = [torch.rand(n, 4, 3) for n in (5, 2, 7, 1, 9)]
    rs = RunningStats((4, 3), 0.3)
    rs.max_rows = max_rows
    check(feed(rs, batches), torch.cat(batches), 0.3)
    assert rs.rows == min(max_rows, 9)


def test_accumulators_grow_to_the_largest_batch_and_keep_what_they_hold():
    torch.manual_seed(1)
    batches = [torch.rand(n, 2, 5) for n in (1, 6, 3, 11, 2)]
    rs = RunningStats((2, 5), 0.5)
    stats = feed(rs, batches)
    assert rs.rows == 11 and rs.lo.shape == (11, 10)
    check(stats, torch.cat(batches), 0.5)


def test_long_epochs_flush_into_float64_totals():
    torch.manual_seed(2)
    batches = [torch.rand(n, 3, 2) for n in (4, 4, 3, 4, 1, 4, 4)]
    rs = RunningStats((3, 2), 0.2)
    rs.FLUSH = 2  # flush every two additions per row
    stats = feed(rs, batches)
    assert rs.flushed and rs.totals.dtype == torch.float64
    check(stats, torch.cat(batches), 0.2)
    rs.reset()  # the next epoch starts from nothing
    assert not rs.flushed and rs.count == 0
    check(feed(rs, batches[:2]), torch.cat(batches[:2]), 0.2)


def test_a_tiny_spread_next_to_a_large_mean_keeps_its_std():
    # E[w^2] - E[w]^2 in float32 would lose the spread entirely; the shifted sums keep it
    torch.manual_seed(3)
    batches = [0.9 + 1e-4 * torch.randn(50, 2, 2) for _ in range(40)]
    stats = feed(RunningStats((2, 2), 0.1), batches)
    ref = torch.cat(batches).double().std(0, correction=0)
    torch.testing.assert_close(stats.std.double(), ref, rtol=1e-3, atol=0.0)


def test_an_empty_batch_adds_nothing():
    rs = RunningStats((2,), 0.1)
    rs.update(torch.empty(0, 2))
    assert rs.count == 0 and torch.isnan(rs.summary().mean).all()
    rs.update(torch.tensor([[0.05, 0.5]]))
    stats = rs.summary()
    assert stats.count == 1 and stats.under.tolist() == [1.0, 0.0]


def test_a_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"expected weights \[N, 2, 3\], got \(4, 3, 2\)"):
        RunningStats((2, 3), 0.1).update(torch.rand(4, 3, 2))


@pytest.mark.parametrize("dims", [(0, 2, 1), (0, 3, 1, 2), (0, 2, 3, 1)])
def test_permuted_views_are_accumulated_in_memory_order_and_summarised_in_shape(dims):
    # the fused neuron kernel hands the recorder [B, in, out] as a transposed view: it goes in without a copy, and
    # the summary comes back in the declared shape, equal to the statistics of the contiguous batches
    torch.manual_seed(4)
    stored = [torch.rand(n, *(2, 3, 4)[:len(dims) - 1]) for n in (5, 3, 7)]
    views = [t.permute(*dims) for t in stored]
    rs = RunningStats(tuple(views[0].shape[1:]), 0.4)
    rs.max_rows = 4  # chunks too
    stats = feed(rs, views)
    assert rs.order == tuple(sorted(range(len(dims) - 1), key=lambda d: dims[d + 1]))
    check(stats, torch.cat([v.contiguous() for v in views]), 0.4)
    assert all(t.shape == views[0].shape[1:] and t.is_contiguous() for t in (stats.mean, stats.std, stats.under))
    # a later batch in another layout is copied into the first one's order: still the right statistics
    extra = views[0].contiguous()
    rs.update(extra)
    check(rs.summary(), torch.cat([*(v.contiguous() for v in views), extra]), 0.4)


@pytest.mark.parametrize("transposed", [False, True])
def test_a_single_sample_epoch_is_held_aside_and_is_its_own_statistics(transposed):
    # a graph gate in full-batch training: one [1, E, H] batch per epoch; nothing is accumulated for it, and its
    # summary is exact (mean and extremes equal the weights, no spread); the accumulators stay clean for the next
    torch.manual_seed(5)
    w = torch.rand(1, 4, 3)
    batch = w.transpose(1, 2).contiguous().transpose(1, 2) if transposed else w  # a permuted view when transposed
    rs = RunningStats((4, 3), 0.4)
    rs.update(batch)
    assert rs._held and not rs._dirty and rs.rows == 0  # held, not added
    stats = rs.summary()
    assert stats.count == 1 and torch.equal(stats.mean, w[0]) and torch.equal(stats.std, torch.zeros(4, 3))
    assert torch.equal(stats.min, w[0]) and torch.equal(stats.max, w[0])
    assert torch.equal(stats.under, (w[0] < 0.4).float())
    expected = w[0].clone()
    batch.mul_(0.0)  # the held copy is the recorder's own: changing the caller's tensor changes nothing
    assert torch.equal(rs.summary().mean, expected)
    rs.reset()
    more = [torch.rand(n, 4, 3) for n in (3, 2)]
    check(feed(rs, more), torch.cat(more), 0.4)  # the next epoch: exact, from clean accumulators


def test_a_held_single_sample_is_added_when_another_batch_follows():
    torch.manual_seed(6)
    batches = [torch.rand(n, 2, 5) for n in (1, 1, 4, 1)]
    rs = RunningStats((2, 5), 0.5)
    check(feed(rs, batches), torch.cat(batches), 0.5)
    assert not rs._held and rs.count == 7


@pytest.mark.parametrize("held", [False, True])
def test_a_weight_equal_to_the_threshold_is_not_under_it(held):
    """``under`` counts ``w < t`` strictly (a gate with threshold ``t`` keeps ``w >= t``): a weight exactly at ``t``
    is not under it, the nearest float32 below ``t`` is; in a batch of several samples and in a held single sample."""
    t = 0.25
    at = torch.tensor(t)
    below, above = torch.nextafter(at, torch.tensor(0.0)), torch.nextafter(at, torch.tensor(1.0))
    first = torch.stack([at, below, above, torch.tensor(0.0)])
    second = torch.stack([at, at, below, torch.tensor(1.0)])
    rs = RunningStats((4,), t)
    if held:  # one single-sample batch: held aside, its summary computed from it alone
        rs.update(first[None])
        assert rs._held
        expected = [0.0, 1.0, 0.0, 1.0]
    else:
        rs.update(torch.stack([first, second]))
        assert not rs._held
        expected = [0.0, 0.5, 0.5, 0.5]  # by hand: how many of the two samples are strictly below 0.25, over 2
    assert rs.summary().under.tolist() == expected


def test_a_second_long_epoch_does_not_carry_the_first_ones_totals():
    # both epochs flush into the float64 totals: the second must start them from zero
    torch.manual_seed(7)
    first = [torch.rand(n, 3) for n in (4, 4, 4, 4)]
    second = [0.5 + torch.rand(n, 3) for n in (4, 2, 4, 4, 3)]
    rs = RunningStats((3,), 0.7)
    rs.FLUSH = 2
    check(feed(rs, first), torch.cat(first), 0.7)
    rs.reset()
    stats = feed(rs, second)
    assert rs.flushed
    check(stats, torch.cat(second), 0.7)


def test_batches_smaller_than_the_accumulators_count_towards_the_flush():
    # after a batch of 4 (4 accumulator rows), every single sample is one more addition into row 0: with FLUSH = 3
    # the float32 sums must have moved into the float64 totals before row 0 holds a 4th addition
    torch.manual_seed(8)
    batches = [torch.rand(4, 2)] + [torch.rand(1, 2) for _ in range(5)]
    rs = RunningStats((2,), 0.5)
    rs.FLUSH = 3
    for b in batches:
        rs.update(b)
        assert rs.pending <= rs.FLUSH
    assert rs.flushed
    check(rs.summary(), torch.cat(batches), 0.5)


def test_the_shift_is_the_epochs_own_after_a_reset():
    # an epoch around 0.1 then one with a tiny spread around 0.9: a shift left over from the first epoch would lose
    # the second one's spread to cancellation, as the unshifted E[w^2] - E[w]^2 does
    torch.manual_seed(9)
    rs = RunningStats((2, 2), 0.5)
    feed(rs, [0.1 * torch.rand(50, 2, 2) for _ in range(3)])
    rs.reset()
    batches = [0.9 + 1e-4 * torch.randn(50, 2, 2) for _ in range(40)]
    stats = feed(rs, batches)
    ref = torch.cat(batches).double().std(0, correction=0)
    torch.testing.assert_close(stats.std.double(), ref, rtol=1e-3, atol=0.0)


def test_constant_weights_have_zero_spread_not_nan():
    # seven equal samples: their float32 mean (the shift) may differ from them by an ulp, and the shifted sums then
    # round to a tiny negative variance; the std must still be exactly 0 (torch's, of constant samples)
    torch.manual_seed(10)
    x = torch.rand(500)
    w = x[None].expand(7, -1).contiguous()
    stats = feed(RunningStats((500,), 0.5), [w])
    assert torch.equal(stats.std, w.std(0, correction=0))  # all zeros
    torch.testing.assert_close(stats.mean, x, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_are_summarised_in_float32(dtype):
    # bfloat16 / float16 weights are exact in float32: the shift and the differences w - c are taken there, not in
    # the weights' own precision (where w - c would round)
    torch.manual_seed(11)
    batches = [torch.rand(n, 3, 4).to(dtype) for n in (5, 3, 6)]
    check(feed(RunningStats((3, 4), 0.4), batches), torch.cat(batches), 0.4)


def test_an_unsupported_accumulator_dtype_is_named():
    with pytest.raises(ValueError, match=r"dtype must be torch.float32 or torch.float64, got torch.float16"):
        RunningStats((2,), 0.1, dtype=torch.float16)


def test_a_gate_wider_than_the_row_budget_still_gets_one_accumulator_row(monkeypatch):
    # ROW_BUDGET numbers per accumulator: a gate of more entries than that still gets one row (as several chunks)
    monkeypatch.setattr(RunningStats, "ROW_BUDGET", 8)
    torch.manual_seed(13)
    batches = [torch.rand(n, 3, 4) for n in (3, 2)]
    rs = RunningStats((3, 4), 0.5)
    stats = feed(rs, batches)
    assert rs.rows == 1
    check(stats, torch.cat(batches), 0.5)


def test_more_than_2_to_the_24_samples_unflushed_are_counted_exactly():
    """2^24 + 2^22 samples of one entry, 2^24 + 1 of them under the threshold, in chunks of a million rows: never
    flushed (20 additions per row), but a float32 sum over the rows cannot hold 2^24 + 1, so ``under`` would be
    off by one unit in the last place. The summary moves such an epoch into the float64 totals first: the fraction
    is the correctly rounded one."""
    n, under = (1 << 24) + (1 << 22), (1 << 24) + 1
    w = torch.full((n, 1), 0.5)
    w[:under] = 0.05
    rs = RunningStats((1,), 0.1)
    rs.update(w)
    assert not rs.flushed and rs.rows == rs.max_rows == 1 << 20
    stats = rs.summary()
    assert stats.count == n
    assert stats.under.item() == torch.tensor(under / n, dtype=torch.float32).item()
    assert stats.min.item() == pytest.approx(0.05) and stats.max.item() == 0.5
    assert stats.mean.item() == pytest.approx((under * 0.05 + (n - under) * 0.5) / n, rel=1e-6)


@pytest.mark.parametrize("args, error, message", [
    ((3, 0.1), TypeError, r"RunningStats: shape must be a tuple of sizes .*got 3"),
    (((-2, 3), 0.1), ValueError, r"RunningStats: shape\[0\] must be a non-negative integer \(a size\), got -2"),
    (((2.5, 3), 0.1), ValueError, r"shape\[0\] must be a non-negative integer \(a size\), got 2.5"),
    (((True, 3), 0.1), ValueError, r"shape\[0\] must be a non-negative integer \(a size\), got True"),
    (((2,), float("nan")), ValueError, r"RunningStats: threshold must be a number in \[0, 1\], got nan"),
    (((2,), 5), ValueError, r"RunningStats: threshold must be a number in \[0, 1\], got 5"),
    (((2,), "0.1"), ValueError, r"RunningStats: threshold must be a number in \[0, 1\], got '0.1'"),
    (((2,), None), ValueError, r"RunningStats: threshold must be a number in \[0, 1\], got None"),
    (((2,), 0.1, "gpu"), ValueError, r"RunningStats: device must be a torch.device such as 'cpu' .*got 'gpu'"),
])
def test_bad_constructor_arguments_are_named(args, error, message):
    with pytest.raises(error, match=message):
        RunningStats(*args)


@pytest.mark.parametrize("weights, error, message", [
    ([[1.0, 2.0]], TypeError, r"RunningStats.update: expected the weights as a torch.Tensor \[N, 2\], got list"),
    (np.zeros((1, 2)), TypeError, r"RunningStats.update: expected the weights as a torch.Tensor \[N, 2\], got ndarray"),
    (torch.ones(2, 2, dtype=torch.complex64), TypeError, r"weights must be real numbers, got torch.complex64"),
    (torch.ones(2, 2, device="meta"), ValueError,
     r"RunningStats.update: weights on meta, but the statistics live on cpu; make a RunningStats\(\.\.\., "
     r"device='meta'\)"),
])
def test_weights_update_cannot_add_are_named_and_nothing_is_added(weights, error, message):
    rs = RunningStats([np.int64(2)], 0.5, "cpu")  # valid arguments: taken as before
    assert rs.shape == (2,) and rs.threshold == 0.5 and rs.device == torch.device("cpu")
    with pytest.raises(error, match=message):
        rs.update(weights)
    assert rs.count == 0
    w = torch.tensor([[0.2, 0.7], [0.4, 0.9]])
    rs.update(w)  # valid weights still go in, unchanged
    check(rs.summary(), w, 0.5)
