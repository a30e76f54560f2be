"""Tests for modgraph.functional.regularizers: hand computations, hand-derived gradients, batching."""

import pytest
import torch

from modgraph.functional import smoothing_group_lasso, weight_decay, weight_elimination


def smooth_norm_reference(t, a):
    """f(t) from Wang et al. 2018, for a python float t >= 0."""
    return t if t >= a else -(t**4) / (8 * a**3) + 3 * t**2 / (4 * a) + 3 * a / 8


# ----------------------------------------------------------------------------------------------------
# values


def test_weight_decay_values():
    assert weight_decay(torch.tensor([1.0, -2.0])).item() == 5.0
    assert weight_decay([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]).item() == 14.0
    lin = torch.nn.Linear(3, 2)
    expected = (lin.weight**2).sum() + (lin.bias**2).sum()
    torch.testing.assert_close(weight_decay(lin.parameters()), expected)


def test_weight_elimination_values():
    # (1/1)/(1+1) + (9/1)/(1+9) = 0.5 + 0.9
    torch.testing.assert_close(weight_elimination(torch.tensor([1.0, -3.0])), torch.tensor(1.4))
    # w0 = 2: w=2 -> 1/2, w=0 -> 0, w=-4 -> 4/5
    torch.testing.assert_close(weight_elimination([torch.tensor([2.0, 0.0]), torch.tensor([-4.0])], w0=2.0),
                               torch.tensor(1.3))


def test_smoothing_group_lasso_values():
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.3, 0.4]])  # row norms 5, 0, 0.5
    a = 1.0
    expected = 5.0 + 3 * a / 8 + (-(0.5**4) / 8 + 3 * 0.25 / 4 + 3 / 8)
    torch.testing.assert_close(smoothing_group_lasso(w, dim=1, a=a), torch.tensor(expected))
    # default dim=-1 groups the rows of [out, in]; dim=0 groups the columns
    torch.testing.assert_close(smoothing_group_lasso(w, a=a), torch.tensor(expected))
    col_norms = [float(torch.tensor([3.0, 0.0, 0.3]).norm()), float(torch.tensor([4.0, 0.0, 0.4]).norm())]
    expected_cols = sum(smooth_norm_reference(t, a) for t in col_norms)
    torch.testing.assert_close(smoothing_group_lasso(w, dim=0, a=a), torch.tensor(expected_cols))


def test_smoothing_group_lasso_equals_group_lasso_above_a():
    w = torch.randn(6, 5, dtype=torch.float64) + 3.0  # every row norm well above a
    torch.testing.assert_close(smoothing_group_lasso(w, a=0.1), w.norm(dim=1).sum())


def test_smoothing_group_lasso_conv_groups():
    w = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    expected = sum(smooth_norm_reference(float(w[o].norm()), 2.0) for o in range(4))
    torch.testing.assert_close(smoothing_group_lasso(w, dim=(1, 2, 3), a=2.0),
                               torch.tensor(expected, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------------
# gradients


def test_gradients_against_hand_formulas():
    w = torch.tensor([[0.5, -1.5], [2.0, 0.1]], dtype=torch.float64, requires_grad=True)
    weight_decay(w).backward()
    torch.testing.assert_close(w.grad, 2 * w.detach())

    w.grad = None
    w0 = 1.5
    weight_elimination(w, w0=w0).backward()
    r = (w.detach() / w0) ** 2
    torch.testing.assert_close(w.grad, 2 * w.detach() / w0**2 / (1 + r) ** 2)

    # rows: norm ~1.58 (>= a) and ~2.002 (>= a) with a=1.8 -> one row each side
    a = 1.8
    w.grad = None
    smoothing_group_lasso(w, a=a).backward()
    wd = w.detach()
    t = wd.norm(dim=1, keepdim=True)
    inside = wd * (3 / (2 * a) - t**2 / (2 * a**3))
    outside = wd / t
    assert (t[0] < a) and (t[1] >= a)
    torch.testing.assert_close(w.grad, torch.where(t < a, inside, outside))


def test_gradcheck_float64():
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: weight_decay(x), (w,))
    assert torch.autograd.gradcheck(lambda x: weight_elimination(x, w0=0.7), (w,))
    # a=2 puts some row norms below a and some above
    norms = w.detach().norm(dim=1)
    assert torch.autograd.gradcheck(lambda x: smoothing_group_lasso(x, a=float(norms.median())), (w,))
    batched = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: smoothing_group_lasso(x, a=1.5, batch_dims=1), (batched,))


def test_smoothing_is_c1_at_a_and_finite_at_zero():
    a = 0.3
    direction = torch.tensor([0.6, 0.8], dtype=torch.float64)  # unit vector

    def value_and_slope(t):
        w = (t * direction).requires_grad_()
        v = smoothing_group_lasso(w, dim=0, a=a)
        (g,) = torch.autograd.grad(v, w)
        return v.item(), float(g @ direction)  # directional derivative = f'(t)

    eps = 1e-7
    v_below, d_below = value_and_slope(a - eps)
    v_at, d_at = value_and_slope(a)
    v_above, d_above = value_and_slope(a + eps)
    assert v_at == pytest.approx(a)
    assert v_below == pytest.approx(a, abs=1e-6) and v_above == pytest.approx(a, abs=1e-6)
    assert d_at == pytest.approx(1.0) and d_above == pytest.approx(1.0)
    assert d_below == pytest.approx(1.0, abs=1e-5)

    w = torch.zeros(3, 4, requires_grad=True)
    v = smoothing_group_lasso(w, a=a)
    v.backward()
    assert v.item() == pytest.approx(3 * 3 * a / 8)
    assert torch.isfinite(w.grad).all() and (w.grad == 0).all()


# ----------------------------------------------------------------------------------------------------
# batching: an ensemble of K models trained together


def test_batched_equals_per_model_loop():
    K = 4
    weights = torch.randn(K, 5, 3, dtype=torch.float64)
    biases = torch.randn(K, 5, dtype=torch.float64)
    out = smoothing_group_lasso(weights, a=1.2, batch_dims=1)
    assert out.shape == (K,)
    torch.testing.assert_close(out, torch.stack([smoothing_group_lasso(weights[k], a=1.2) for k in range(K)]))

    out = weight_decay([weights, biases], batch_dims=1)
    assert out.shape == (K,)
    torch.testing.assert_close(out, torch.stack([weight_decay([weights[k], biases[k]]) for k in range(K)]))

    out = weight_elimination([weights, biases], w0=0.5, batch_dims=1)
    torch.testing.assert_close(
        out, torch.stack([weight_elimination([weights[k], biases[k]], w0=0.5) for k in range(K)])
    )
    # two batch dims
    w2 = weights.view(2, 2, 5, 3)
    torch.testing.assert_close(smoothing_group_lasso(w2, a=1.2, batch_dims=2).flatten(),
                               smoothing_group_lasso(weights, a=1.2, batch_dims=1))


def test_batched_gradients_are_per_model():
    weights = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    smoothing_group_lasso(weights, a=1.0, batch_dims=1)[1].backward()
    assert (weights.grad[0] == 0).all() and (weights.grad[2] == 0).all()
    assert (weights.grad[1] != 0).any()


# ----------------------------------------------------------------------------------------------------
# errors


def test_errors():
    w = torch.randn(3, 4)
    with pytest.raises(ValueError, match="w0 must be a number > 0, got 0"):
        weight_elimination(w, w0=0)
    with pytest.raises(ValueError, match="w0 must be a number > 0, got -1.0"):
        weight_elimination(w, w0=-1.0)
    with pytest.raises(ValueError, match="a must be a finite number > 0, got 0.0"):
        smoothing_group_lasso(w, a=0.0)
    with pytest.raises(ValueError, match="expected at least one weight tensor, got none"):
        weight_decay([])
    with pytest.raises(ValueError, match=r"dim=\(0,\) includes batch dimension 0 \(batch_dims=1\)"):
        smoothing_group_lasso(torch.randn(2, 3, 4), dim=0, batch_dims=1)
    with pytest.raises(ValueError, match=r"dim=5 is out of range for weight of shape \(3, 4\)"):
        smoothing_group_lasso(w, dim=5)
    with pytest.raises(ValueError, match=r"weight 1 has batch shape \(3,\), expected \(2,\)"):
        weight_decay([torch.randn(2, 4), torch.randn(3, 4)], batch_dims=1)
    with pytest.raises(ValueError, match="batch_dims must be a non-negative integer, got -1"):
        weight_decay(w, batch_dims=-1)
    with pytest.raises(ValueError, match=r"weight 0 has shape \(3, 4\), fewer than batch_dims=3 dims"):
        weight_elimination(w, batch_dims=3)
    with pytest.raises(TypeError, match="weight 1 is a list, expected a torch.Tensor"):
        weight_decay([w, [1.0]])


# ----------------------------------------------------------------------------------------------------
# added by the mutation audit


def test_a_weight_with_only_batch_dims_is_one_value_per_model():
    """A per-model scalar (shape [K] with batch_dims=1) is a valid weight: model k's penalty includes its square."""
    w, s = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, -1.0]]), torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(weight_decay([w, s], batch_dims=1), torch.tensor([1 + 4 + 1.0, 9 + 4.0, 1 + 9.0]))
    # w0 = 1: each term is w^2 / (1 + w^2)
    torch.testing.assert_close(weight_elimination(s, batch_dims=1), torch.tensor([0.5, 0.8, 0.9]))


def test_smoothing_group_lasso_accepts_every_negative_dim():
    """dim=-ndim is in range (it is dim 0): the groups are the columns."""
    w = torch.tensor([[3.0, 0.0], [4.0, 0.0]])  # column norms 5 and 0
    a = 1.0
    expected = torch.tensor(5.0 + 3 * a / 8)
    torch.testing.assert_close(smoothing_group_lasso(w, dim=-2, a=a), expected)
    torch.testing.assert_close(smoothing_group_lasso(w, dim=(-2,), a=a), expected)
    with pytest.raises(ValueError, match=r"dim=-3 is out of range for weight of shape \(2, 2\)"):
        smoothing_group_lasso(w, dim=-3)


# ----------------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize("fn", [weight_decay, weight_elimination])
def test_a_module_dict_or_non_iterable_is_named(fn):
    lin = torch.nn.Linear(3, 2)
    name = fn.__name__
    # before: TypeError "'Linear' object is not iterable"; a state_dict gave "weight 0 is a str"
    with pytest.raises(TypeError, match=rf"{name}: expected a tensor or an iterable of tensors, got the module Linear; "
                                        r"pass its .parameters\(\)"):
        fn(lin)
    with pytest.raises(TypeError, match=rf"{name}: .* got a dict \(a state_dict\?\); pass its .values\(\)"):
        fn(lin.state_dict())
    for value in (None, 3.0):
        with pytest.raises(TypeError, match=rf"{name}: expected a tensor or an iterable of tensors, got "
                                            rf"{type(value).__name__}"):
            fn(value)
    assert fn(lin.parameters()) == fn(list(lin.parameters()))


def test_smoothing_group_lasso_takes_one_tensor_and_integer_dims():
    w = torch.randn(2, 3)
    # before: ValueError "too many values to unpack (expected 1)"
    with pytest.raises(TypeError, match=r"smoothing_group_lasso: expected one weight tensor, got list; call it once "
                                        r"per weight and add the results"):
        smoothing_group_lasso([w, w])
    # before: dim="rows" was read letter by letter ("dim='r' is out of range"); None: "'NoneType' object is not
    # iterable"
    for dim in ("rows", None, 1.0):
        with pytest.raises(ValueError, match=r"smoothing_group_lasso: dim must be an integer or a tuple of integers, "
                                             r"got "):
            smoothing_group_lasso(w, dim=dim)
    # before: torch's RuntimeError "dim 1 appears multiple times in the list of dims"
    with pytest.raises(ValueError, match=r"smoothing_group_lasso: dim=\(1, -1\) names dimension 1 twice"):
        smoothing_group_lasso(w, dim=(1, -1))
    assert smoothing_group_lasso(w, dim=[0, 1]) == smoothing_group_lasso(w, dim=(0, 1))


@pytest.mark.parametrize("dim", [True, (True,), (1, False)])
def test_smoothing_group_lasso_bool_dim_is_not_an_integer(dim):
    # was "dim=True is out of range" (a bool is not a dimension)
    with pytest.raises(ValueError, match=r"smoothing_group_lasso: dim must be an integer or a tuple of integers, got"):
        smoothing_group_lasso(torch.randn(2, 3), dim=dim)
