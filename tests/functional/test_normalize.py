"""Tests for modgraph.functional.normalize against per-group dense references and the entmax package."""

import entmax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modgraph.functional import (
    NORMALIZERS,
    normalize,
    segment_softmax,
    segment_sparsemax,
    sparsemax,
    threshold,
)

DENSE = {
    "sigmoid": lambda z: torch.sigmoid(z),
    "softmax": lambda z: torch.softmax(z, dim=0),
    "sparsemax": lambda z: entmax.sparsemax(z, dim=0),
}


def per_group_reference(scores, index, num_segments, kind):
    """Plain loop: normalise the rows of each group with the dense reference (entmax for sparsemax)."""
    out = torch.zeros_like(scores)
    for g in range(num_segments):
        mask = index == g
        if mask.any():
            out[mask] = DENSE[kind](scores[mask])
    return out


def random_segments(num_edges, num_segments, heads=None, seed=0, scale=1.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    shape = (num_edges,) if heads is None else (num_edges, heads)
    scores = scale * torch.randn(shape, generator=gen, dtype=dtype)
    index = torch.randint(0, num_segments, (num_edges,), generator=gen)
    return scores, index


def group_sums(p, index, num_segments):
    return torch.zeros((num_segments,) + p.shape[1:], dtype=p.dtype).index_add_(0, index, p)


# ----------------------------------------------------------------------------------------------------
# dense


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_dense_sparsemax_matches_entmax(dim):
    z = torch.randn(5, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sparsemax(z, dim=dim), entmax.sparsemax(z, dim=dim))
    torch.testing.assert_close(normalize(z, "sparsemax", dim=dim), entmax.sparsemax(z, dim=dim))


def test_dense_sparsemax_hand_example_and_exact_zeros():
    p = sparsemax(torch.tensor([0.5, 0.3, -1.0]))
    torch.testing.assert_close(p, torch.tensor([0.6, 0.4, 0.0]))
    assert p[2].item() == 0.0  # exactly zero, not merely small
    torch.testing.assert_close(sparsemax(torch.tensor([2.0, 1.0, -1.0])), torch.tensor([1.0, 0.0, 0.0]))


def test_dense_softmax_and_sigmoid():
    z = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(normalize(z, "softmax", dim=0), torch.softmax(z, dim=0))
    s = normalize(100 * z, "sigmoid")
    torch.testing.assert_close(s, torch.sigmoid(100 * z))
    s = normalize(z, "sigmoid")
    assert ((s > 0) & (s < 1)).all()


def test_dense_temperature_divides_scores():
    z = torch.randn(3, 5, dtype=torch.float64)
    for kind in NORMALIZERS:
        torch.testing.assert_close(normalize(z, kind, temperature=0.25), normalize(4 * z, kind))


def test_dense_sparsemax_edge_shapes():
    assert sparsemax(torch.zeros(3, 0)).shape == (3, 0)
    assert sparsemax(torch.zeros(0, 4)).shape == (0, 4)
    assert sparsemax(torch.tensor(3.0)).item() == 1.0
    # ties: equal scores share the mass equally
    p = sparsemax(torch.tensor([1.0, 1.0, 1.0, -5.0]))
    torch.testing.assert_close(p, torch.tensor([1 / 3] * 3 + [0.0]))


# ----------------------------------------------------------------------------------------------------
# segment vs dense reference


@pytest.mark.parametrize("kind", NORMALIZERS)
@pytest.mark.parametrize("heads", [None, 3])
def test_segment_matches_per_group_dense(kind, heads):
    scores, index = random_segments(40, 7, heads=heads, seed=2, scale=0.7)
    num_segments = 9  # segments 7 and 8 are empty
    expected = per_group_reference(scores, index, num_segments, kind)
    out = normalize(scores, kind, index=index, num_segments=num_segments)
    torch.testing.assert_close(out, expected)
    if kind != "sigmoid":
        sums = group_sums(out, index, num_segments)
        present = torch.bincount(index, minlength=num_segments) > 0
        torch.testing.assert_close(sums[present], torch.ones_like(sums[present]))


def test_segment_functions_match_normalize():
    scores, index = random_segments(30, 5, heads=2, seed=3)
    torch.testing.assert_close(segment_sparsemax(scores, index), normalize(scores, "sparsemax", index=index))
    torch.testing.assert_close(segment_softmax(scores, index), normalize(scores, "softmax", index=index))
    # the dense dim plays no role once an index is given
    by_last = normalize(scores, "sparsemax", index=index, dim=-1)
    torch.testing.assert_close(by_last, normalize(scores, "sparsemax", index=index, dim=0))


def test_segment_sparsemax_matches_entmax_many_segments_float32():
    # large float32 scores over many segments: the cross-segment cumsum must not lose precision
    scores, index = random_segments(3000, 400, heads=2, seed=4, scale=50.0, dtype=torch.float32)
    scores = scores + 1e4 * index.unsqueeze(1).float()  # very different offsets per segment
    out = segment_sparsemax(scores, index)
    torch.testing.assert_close(out, per_group_reference(scores, index, 400, "sparsemax"), atol=1e-5, rtol=0)


def test_segment_sparsemax_hand_example_exact_zeros_and_size_one_segments():
    scores = torch.tensor([0.5, 0.3, -1.0, 7.0, -3.0])
    index = torch.tensor([0, 0, 0, 1, 2])
    p = segment_sparsemax(scores, index)
    torch.testing.assert_close(p, torch.tensor([0.6, 0.4, 0.0, 1.0, 1.0]))
    assert p[2].item() == 0.0
    # heads are independent
    two = torch.stack([scores, -scores], dim=1)
    torch.testing.assert_close(segment_sparsemax(two, index)[:, 0], p)
    torch.testing.assert_close(segment_sparsemax(two, index)[:, 1], segment_sparsemax(-scores, index))


def test_segment_sparsemax_ties():
    scores = torch.tensor([2.0, 2.0, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    index = torch.tensor([0, 1, 0, 0, 1, 1, 0, 2])
    p = segment_sparsemax(scores, index)
    torch.testing.assert_close(p, per_group_reference(scores, index, 3, "sparsemax"))
    torch.testing.assert_close(p[[0, 2]], torch.tensor([0.5, 0.5]))  # tied maxima share the mass


def test_segment_empty_input():
    scores = torch.zeros(0, 4)
    index = torch.zeros(0, dtype=torch.long)
    for kind in NORMALIZERS:
        out = normalize(scores, kind, index=index)
        assert out.shape == (0, 4)
    assert segment_sparsemax(torch.zeros(0), index, num_segments=3).shape == (0,)
    assert segment_softmax(torch.zeros(0), index).shape == (0,)


def test_segment_sparsemax_out_of_order_index_and_input_unchanged():
    scores = torch.tensor([[0.1, 3.0], [0.2, 0.0], [0.3, 0.1], [0.25, 0.2]])
    index = torch.tensor([1, 0, 1, 0])
    before = scores.clone()
    out = segment_sparsemax(scores, index)
    torch.testing.assert_close(out, per_group_reference(scores, index, 2, "sparsemax"))
    torch.testing.assert_close(scores, before)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "all -inf"])
@pytest.mark.parametrize("first", [True, False])
def test_segment_sparsemax_keeps_a_non_finite_segment_to_itself(bad, first):
    """A NaN, +inf or all--inf segment is NaN (as under softmax); the other segments, before or after it in the
    global cumulative sums, are exactly what they are without it."""
    scores, index = random_segments(30, 6, heads=2, seed=11, dtype=torch.float32)
    g = 0 if first else 5
    rows = (index == g).nonzero().squeeze(1)
    if bad == "all -inf":
        scores[rows] = float("-inf")
    else:
        scores[rows[0], 1] = bad
    p = segment_sparsemax(scores, index, num_segments=6)
    good = index != g
    assert p[~good][:, 1].isnan().all() and not p[good].isnan().any()
    torch.testing.assert_close(p[good], per_group_reference(scores[good], index[good], 6, "sparsemax"))
    torch.testing.assert_close(group_sums(p[good], index[good], 6)[torch.arange(6) != g],
                               torch.ones(5, 2))
    assert segment_softmax(scores, index, num_segments=6)[~good][:, 1].isnan().all()  # the same contract


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dense_sparsemax_half_precision_is_computed_in_float32(dtype):
    z = 0.01 * torch.randn(300, generator=torch.Generator().manual_seed(1))
    p = sparsemax(z.to(dtype))
    assert p.dtype == dtype
    assert abs(p.float().sum().item() - 1) < 2e-3  # in half precision throughout: 1.0108 for bfloat16
    reference = entmax.sparsemax(z.to(dtype).float(), dim=0)
    torch.testing.assert_close(p.float(), reference, atol=1e-4, rtol=0)  # float32 rounding at the support's edge
    segment = segment_sparsemax(z.to(dtype), torch.zeros(300, dtype=torch.long))  # computed in float64
    torch.testing.assert_close(p.float(), segment.float(), atol=1e-4, rtol=0)


def test_sparsemax_under_vmap_equals_a_loop_values_and_gradients():
    """The functorch rules (one call on the stacked tensors) against one call per member."""
    scores, index = random_segments(20, 5, heads=2, seed=12, scale=0.5)
    stacked = torch.stack([scores, -scores, 2 * scores]).requires_grad_()  # (K, E, H)
    up = torch.randn(3, 20, 2, dtype=torch.float64)
    for fn in (lambda z: segment_sparsemax(z, index, num_segments=6), lambda z: sparsemax(z, dim=0),
               lambda z: sparsemax(z, dim=-1)):
        out = torch.vmap(fn)(stacked)
        ref = torch.stack([fn(z) for z in stacked.unbind(0)])
        torch.testing.assert_close(out, ref)
        (a,) = torch.autograd.grad((out * up).sum(), stacked)
        (b,) = torch.autograd.grad((ref * up).sum(), stacked)
        torch.testing.assert_close(a, b)
    z = torch.tensor([0.5, 0.3, -1.0])
    torch.testing.assert_close(torch.func.grad(lambda v: sparsemax(v)[0])(z), torch.tensor([0.5, -0.5, 0.0]))


# ----------------------------------------------------------------------------------------------------
# gradients


def test_gradcheck_dense_sparsemax():
    z = (0.3 * torch.randn(4, 6, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: sparsemax(x, dim=-1), (z,))
    assert torch.autograd.gradcheck(lambda x: sparsemax(x, dim=0), (z,))


@pytest.mark.parametrize("heads", [None, 3])
def test_gradcheck_segment_sparsemax(heads):
    scores, index = random_segments(20, 4, heads=heads, seed=5, scale=0.3)
    scores.requires_grad_()
    # support of several entries in most groups, so the Jacobian is not trivially zero
    assert (segment_sparsemax(scores, index) > 0).sum() > 4 + 4
    assert torch.autograd.gradcheck(lambda x: segment_sparsemax(x, index, num_segments=5), (scores,))


@pytest.mark.parametrize("heads", [None, 2])
def test_gradcheck_segment_softmax(heads):
    scores, index = random_segments(15, 4, heads=heads, seed=6)
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, index), (scores,))


def test_segment_sparsemax_gradient_matches_entmax_autograd():
    scores, index = random_segments(25, 4, heads=2, seed=7, scale=0.4)
    upstream = torch.randn_like(scores)
    ours = scores.clone().requires_grad_()
    (segment_sparsemax(ours, index) * upstream).sum().backward()
    ref = scores.clone().requires_grad_()
    (per_group_reference(ref, index, 4, "sparsemax") * upstream).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad)


# ----------------------------------------------------------------------------------------------------
# threshold


def test_threshold_exact_zeros_and_zero_gradient():
    w = torch.tensor([0.05, 0.1, 0.3, 0.55], requires_grad=True)
    out = threshold(w, 0.1)
    assert out.tolist() == pytest.approx([0.0, 0.1, 0.3, 0.55])
    assert out[0].item() == 0.0
    out.backward(torch.tensor([7.0, 1.0, 2.0, 3.0]))
    assert w.grad.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_threshold_none_or_zero_is_identity():
    w = torch.rand(5)
    assert threshold(w, None) is w
    assert threshold(w, 0) is w
    assert threshold(w, 0.0) is w


def test_threshold_after_sparsemax_cuts_small_nonzero_weights():
    z = torch.tensor([0.5, 0.45, 0.0, -2.0], dtype=torch.float64, requires_grad=True)
    p = sparsemax(z)  # [0.5167, 0.4667, 0.0167, 0]: three in the support
    p.retain_grad()
    w = threshold(p, 0.3)
    assert (w == 0).tolist() == [False, False, True, True]
    w.sum().backward()
    assert p.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


# ----------------------------------------------------------------------------------------------------
# errors


def test_errors():
    z = torch.randn(4)
    index = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"unknown kind 'relu'.*sigmoid, softmax, sparsemax"):
        normalize(z, "relu")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        normalize(z, "softmax", temperature=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got -1.0"):
        normalize(z, "softmax", temperature=-1.0)
    with pytest.raises(ValueError, match=r"dim=2 is out of range for scores of shape \(4,\)"):
        normalize(z, "softmax", dim=2)
    with pytest.raises(ValueError, match="index has 3 entries but scores has shape"):
        normalize(z, "softmax", index=index[:3])
    with pytest.raises(ValueError, match="index holds segment 1 but num_segments=1"):
        segment_sparsemax(z, index, num_segments=1)
    with pytest.raises(ValueError, match="index must be non-negative, got minimum -1"):
        segment_softmax(z, torch.tensor([0, -1, 1, 1]))
    with pytest.raises(ValueError, match=r"expected a 1-D index \[E\]"):
        segment_sparsemax(z, index.view(2, 2))
    with pytest.raises(ValueError, match="num_segments was given without an index"):
        normalize(z, "softmax", num_segments=3)
    with pytest.raises(ValueError, match=r"threshold\(\): threshold must be a number in \[0, 1\], got 1.5 "
                                         r"\(None for no threshold\)"):
        threshold(z, 1.5)
    with pytest.raises(ValueError, match=r"threshold\(\): threshold must be a number in \[0, 1\], got -0.1 "
                                         r"\(None for no threshold\)"):
        threshold(z, -0.1)
    with pytest.raises(TypeError, match="expected index of dtype torch.long"):
        segment_sparsemax(z, index.int())
    with pytest.raises(TypeError, match="expected floating-point scores"):
        sparsemax(torch.tensor([1, 2]))


# ----------------------------------------------------------------------------------------------------
# property: segment sparsemax is the Euclidean projection onto each segment's simplex


@st.composite
def segment_inputs(draw):
    num_edges = draw(st.integers(0, 25))
    num_segments = draw(st.integers(1, 6))
    heads = draw(st.sampled_from([None, 1, 3]))
    width = 1 if heads is None else heads
    # a small grid of values makes ties frequent
    values = st.one_of(st.floats(-3, 3, allow_nan=False), st.sampled_from([0.0, 0.5, 1.0, -1.0]))
    flat = draw(st.lists(values, min_size=num_edges * width, max_size=num_edges * width))
    index = draw(st.lists(st.integers(0, num_segments - 1), min_size=num_edges, max_size=num_edges))
    shape = (num_edges,) if heads is None else (num_edges, heads)
    scores = torch.tensor(flat, dtype=torch.float64).reshape(shape)
    return scores, torch.tensor(index, dtype=torch.long), num_segments


@settings(max_examples=150, deadline=None)
@given(segment_inputs())
def test_property_segment_sparsemax_is_simplex_projection(data):
    scores, index, num_segments = data
    p = segment_sparsemax(scores, index, num_segments=num_segments)
    assert p.shape == scores.shape
    assert (p >= 0).all()
    present = torch.bincount(index, minlength=num_segments) > 0
    sums = group_sums(p, index, num_segments)
    torch.testing.assert_close(sums[present], torch.ones_like(sums[present]))
    # KKT: p = relu(z - tau) with one tau per (segment, head): z_i - p_i = tau on the support,
    # and z_i <= tau off it.
    width = 1 if scores.dim() == 1 else scores.size(1)
    p2, z2 = p.reshape(len(index), width), scores.reshape(len(index), width)
    for g in range(num_segments):
        for h in range(p2.size(1)):
            pg, zg = p2[index == g, h], z2[index == g, h]
            if pg.numel() == 0:
                continue
            support = pg > 0
            assert support.any()
            taus = zg[support] - pg[support]
            torch.testing.assert_close(taus, taus[:1].expand_as(taus), atol=1e-9, rtol=0)
            assert (zg[~support] <= taus[0] + 1e-9).all()


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_sigmoid_is_torch_sigmoid_bit_for_bit_whatever_the_layouts(layout):
    """The sigmoid runs on a flat view of contiguous scores (so its backward pass gets a contiguous gradient): the
    values, the output's shape and the gradients are exactly torch.sigmoid's, for a strided upstream gradient too."""
    torch.manual_seed(0)
    base = torch.randn(7, 5, 3, dtype=torch.float64)
    z = base if layout == "contiguous" else base.transpose(0, 2)
    upstream = torch.randn(z.shape[0], z.shape[2], z.shape[1], dtype=torch.float64).transpose(1, 2)  # strided
    ours, theirs = z.clone().requires_grad_(), z.clone().requires_grad_()
    w = normalize(ours, "sigmoid")
    assert w.shape == z.shape and torch.equal(w, torch.sigmoid(z))
    w.backward(upstream)
    torch.sigmoid(theirs).backward(upstream)
    assert torch.equal(ours.grad, theirs.grad)


def test_a_dense_row_with_a_nan_or_an_infinity_is_nan_as_under_softmax():
    """Such a row used to fail inside torch (an index of -1); the other rows stay exact."""
    nan, inf = float("nan"), float("inf")
    z = torch.tensor([[nan, 1.0, 0.0], [0.5, 1.0, -3.0], [inf, 1.0, 0.0], [-inf, -inf, -inf]])
    p = normalize(z, "sparsemax")
    assert torch.isnan(p[[0, 2, 3]]).all() and torch.isnan(torch.softmax(z, -1)[[0, 2, 3]]).all()
    torch.testing.assert_close(p[1], torch.tensor([0.25, 0.75, 0.0]))


def test_dense_sparsemax_is_exact_far_from_zero():
    """Scores far from zero in float32 (the same float32 numbers in float64 as the reference): exact only because
    the row's maximum is subtracted before the cumulative sums, which would otherwise round at 1e4's ulp (1e-3)."""
    torch.manual_seed(0)
    z = torch.randn(16, 8) + 1e4
    torch.testing.assert_close(sparsemax(z), sparsemax(z.double()).float(), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------------
# added by the mutation audit: boundaries and paths the tests above did not reach


def test_threshold_one_is_a_valid_threshold_that_keeps_only_weights_of_one():
    """[0, 1] is closed: a threshold of exactly 1 is accepted and keeps only the weights equal to 1."""
    from modgraph.functional.normalize import threshold_problem

    assert threshold_problem(1) is None and threshold_problem(1.0) is None and threshold_problem(0) is None
    w = torch.tensor([0.2, 1.0, 0.999])
    assert threshold(w, 1.0).tolist() == [0.0, 1.0, 0.0]


def test_booleans_are_neither_thresholds_nor_temperatures():
    """True == 1 in python, but a bool is rejected as a threshold and as a temperature (a config typo otherwise)."""
    z = torch.tensor([0.2, 1.0])
    with pytest.raises(ValueError, match="threshold must be a number in \\[0, 1\\], got True"):
        threshold(z, True)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got True"):
        normalize(z, "softmax", temperature=True)


def test_segment_functions_reject_integer_scores():
    index = torch.tensor([0, 0])
    with pytest.raises(TypeError, match="segment_sparsemax: expected floating-point scores"):
        segment_sparsemax(torch.tensor([1, 2]), index)
    with pytest.raises(TypeError, match="segment_softmax: expected floating-point scores"):
        segment_softmax(torch.tensor([1, 2]), index)


def test_zero_segments_for_an_empty_index():
    """An empty graph has no segments: num_segments=0 is valid with an empty index (and only then)."""
    empty = torch.zeros(0, dtype=torch.long)
    assert segment_sparsemax(torch.zeros(0), empty, num_segments=0).shape == (0,)
    for kind in NORMALIZERS:
        assert normalize(torch.zeros(0, 2), kind, index=empty, num_segments=0).shape == (0, 2)
    with pytest.raises(ValueError, match="index holds segment 0 but num_segments=0"):
        segment_sparsemax(torch.zeros(1), torch.zeros(1, dtype=torch.long), num_segments=0)


@pytest.mark.parametrize("kind", NORMALIZERS)
def test_segment_temperature_divides_scores(kind):
    """The temperature applies on the segment path too (the per-group reference on scores / T)."""
    scores, index = random_segments(30, 5, heads=2, seed=13)
    expected = per_group_reference(scores / 0.3, index, 5, kind)
    torch.testing.assert_close(normalize(scores, kind, index=index, temperature=0.3), expected)
    torch.testing.assert_close(normalize(scores, kind, index=index, temperature=2.5),
                               per_group_reference(scores / 2.5, index, 5, kind))


def test_segment_sparsemax_under_vmap_keeps_members_apart_when_every_segment_is_used():
    """Under vmap member k's segments are renumbered k * N + g: with segments 0 and N - 1 both present, members must
    not share a segment (each member's output is its own sparsemax, summing to 1 per segment)."""
    scores, index = random_segments(24, 4, heads=2, seed=14, scale=0.5)
    index[:4] = torch.tensor([0, 0, 3, 3])  # the first and the last segment are present
    num_segments = 4
    assert int(index.max()) == num_segments - 1 and int(index.min()) == 0
    stacked = torch.stack([scores, scores.flip(0), -scores])  # (K, E, H)
    out = torch.vmap(lambda z: segment_sparsemax(z, index, num_segments=num_segments))(stacked)
    for k in range(3):
        torch.testing.assert_close(out[k], per_group_reference(stacked[k], index, num_segments, "sparsemax"))
        torch.testing.assert_close(group_sums(out[k], index, num_segments), torch.ones(num_segments, 2,
                                                                                       dtype=out.dtype))


def test_segment_sparsemax_float32_support_is_exact_after_a_long_cumulative_sum():
    """The cumulative sums run over all segments: in float32 a late segment sits 2e4 from zero, where an ulp is 2e-3,
    and its support test would round. Each two-entry segment [0, -1 + e] has, by hand, tau = (-1 + e - 1) / 2 and the
    weights [1 - e / 2, e / 2] (the second entry is in the support for any e > 0)."""
    gen = torch.Generator().manual_seed(0)
    fill = -torch.rand(40000, generator=gen)  # segment 0: non-integer scores in (-1, 0]
    e = torch.tensor([1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3] * 4) * torch.linspace(0.5, 1.5, 24)
    scores = torch.cat([fill, torch.stack([torch.zeros(24), -1 + e], 1).flatten()])
    index = torch.cat([torch.zeros(40000, dtype=torch.long), 1 + torch.arange(24).repeat_interleave(2)])
    p = segment_sparsemax(scores, index)
    assert p.dtype == torch.float32
    expected = torch.stack([1 - e / 2, e / 2], 1).flatten()
    torch.testing.assert_close(p[40000:], expected, atol=1e-6, rtol=0)


def test_threshold_keeps_a_nan_weight_nan():
    # NaN >= t is false, so a where(w >= t, w, 0) would hide a NaN segment as zeros; a NaN is not below t either
    w = torch.tensor([float("nan"), 0.05, 0.5])
    out = threshold(w, 0.1)
    assert torch.isnan(out[0]) and out[1] == 0 and out[2] == 0.5
    scores = torch.tensor([0.0, float("nan"), 1.0])  # a NaN segment comes out NaN, thresholded or not
    assert torch.isnan(threshold(normalize(scores, "softmax", index=torch.tensor([0, 0, 0])), 0.1)).all()


@pytest.mark.parametrize("dim", [1.5, 1.0, "0", None, True])
def test_a_dim_that_is_not_an_integer_is_named(dim):
    # before: "'<=' not supported between instances of 'int' and 'str'", torch's movedim/softmax signature errors,
    # or True taken as dim 1
    for fn in (lambda: normalize(torch.randn(4, 3), "softmax", dim=dim), lambda: sparsemax(torch.randn(4, 3), dim=dim)):
        with pytest.raises(ValueError, match=r"(normalize|sparsemax): dim must be an integer \(a dimension of the "
                                             r"scores\), got "):
            fn()


@pytest.mark.parametrize("weights", [[0.1, 0.5], (0.1,)])
def test_threshold_of_weights_that_are_not_a_tensor_is_named(weights):
    # before: AttributeError "'list' object has no attribute 'masked_fill'"
    with pytest.raises(TypeError, match=r"threshold\(\): expected weights to be a torch.Tensor, got "):
        threshold(weights, 0.3)


@pytest.mark.parametrize("kind", ["softmax", "sparsemax", "sigmoid"])
def test_segment_validation_reads_the_index_range_once(kind):
    """The graph gates validate their segment index at every forward; on a GPU each read of a value waits for the
    device, so the minimum and maximum are read together."""
    from ..helpers import TensorCalls

    scores, index = torch.randn(6, 2), torch.tensor([0, 0, 1, 2, 2, 2])
    with TensorCalls("item", "__int__", "__float__", "__bool__", "tolist", "__index__") as calls:
        normalize(scores, kind, index=index, num_segments=3)
    # sparsemax reads one more value: whether any score is NaN (a segment holding one is NaN throughout)
    assert calls.total() == 1 + (kind == "sparsemax") and calls.counts["tolist"] == 1, calls.counts
