r"""Weight penalties compared in the UCI experiments: weight decay, weight elimination, smoothing group lasso.

Each function returns the *unscaled* penalty :math:`R(w)`; the caller adds :math:`\lambda R(w)` to the loss.

Every function takes ``batch_dims``: the number of leading dimensions that index an ensemble of models
trained together (e.g. ``K`` stacked copies of an ``nn.Linear`` weight, shape ``[K, out, in]``). The penalty
is summed over all other dimensions, so the result has the shape of those leading dimensions: a scalar for
``batch_dims=0``, ``[K]`` for ``batch_dims=1``. Summing that result gives the penalty of the whole ensemble,
and ``result[k]`` is exactly the penalty of model ``k`` alone.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch
from torch import Tensor

from .. import checks

__all__ = ["smoothing_group_lasso", "weight_decay", "weight_elimination"]


def _as_tensor_list(weights: Tensor | Iterable[Tensor], batch_dims: int, where: str) -> list[Tensor]:
    batch_dims = checks.integer(f"{where}: batch_dims", batch_dims, least=0)
    if isinstance(weights, torch.nn.Module):
        raise TypeError(f"{where}: expected a tensor or an iterable of tensors, got the module "
                        f"{type(weights).__name__}; pass its .parameters() (or the weights to penalise)")
    if isinstance(weights, dict):
        raise TypeError(f"{where}: expected a tensor or an iterable of tensors, got a dict (a state_dict?); pass "
                        f"its .values() or the module's .parameters()")
    if not isinstance(weights, (Tensor, Iterable)):
        raise TypeError(f"{where}: expected a tensor or an iterable of tensors, got {type(weights).__name__}")
    tensors = [weights] if isinstance(weights, Tensor) else list(weights)
    if not tensors:
        raise ValueError(f"{where}: expected at least one weight tensor, got none")
    for i, w in enumerate(tensors):
        if not isinstance(w, Tensor):
            raise TypeError(f"{where}: weight {i} is a {type(w).__name__}, expected a torch.Tensor")
        if w.dim() < batch_dims:
            raise ValueError(
                f"{where}: weight {i} has shape {tuple(w.shape)}, fewer than batch_dims={batch_dims} dims"
            )
    batch_shape = tensors[0].shape[:batch_dims]
    for i, w in enumerate(tensors[1:], start=1):
        if w.shape[:batch_dims] != batch_shape:
            raise ValueError(
                f"{where}: weight {i} has batch shape {tuple(w.shape[:batch_dims])}, expected "
                f"{tuple(batch_shape)} like weight 0 (the first batch_dims={batch_dims} dims must agree)"
            )
    return tensors


def _sum_per_model(terms: Iterable[Tensor], batch_dims: int) -> Tensor:
    """Sum every tensor over all but its first ``batch_dims`` dims, then sum the tensors."""
    return sum(t.reshape(*t.shape[:batch_dims], -1).sum(dim=-1) for t in terms)


def weight_decay(weights: Tensor | Iterable[Tensor], batch_dims: int = 0) -> Tensor:
    r"""The L2 penalty (weight decay): the plain sum of squares of all weights.

    .. math::
        R(w) = \sum_i w_i^2, \qquad \frac{\partial R}{\partial w_i} = 2 w_i.

    Convention: there is no factor :math:`\tfrac12`, and the coefficient :math:`\lambda` is applied by the
    caller (``loss + lam * weight_decay(...)``). Hence ``lam`` here equals ``weight_decay / 2`` of
    :class:`torch.optim.SGD`, whose update adds :math:`\lambda_{\text{SGD}} w` to the gradient.

    Args:
        weights (Tensor or iterable of Tensor): one tensor or several (e.g. ``model.parameters()``).
        batch_dims (int, optional): number of leading ensemble dimensions kept in the result; they must
            agree across tensors. (default: ``0``)

    Shapes:
        - **input:** each weight ``(*B, *)`` with ``len(B) = batch_dims``
        - **output:** ``(*B)``; a scalar when ``batch_dims=0``

    Example:
        >>> weight_decay([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])])
        tensor(14.)
    """
    tensors = _as_tensor_list(weights, batch_dims, "weight_decay")
    return _sum_per_model((w.square() for w in tensors), batch_dims)


def weight_elimination(weights: Tensor | Iterable[Tensor], w0: float = 1.0, batch_dims: int = 0) -> Tensor:
    r"""Weight elimination penalty (Weigend, Rumelhart & Huberman, 1991).

    .. math::
        R(w) = \sum_i \frac{w_i^2 / w_0^2}{1 + w_i^2 / w_0^2}, \qquad
        \frac{\partial R}{\partial w_i} = \frac{2 w_i / w_0^2}{(1 + w_i^2 / w_0^2)^2}.

    Each term is about :math:`w_i^2 / w_0^2` (weight decay) for :math:`|w_i| \ll w_0` and saturates at 1
    for :math:`|w_i| \gg w_0`, so the penalty counts the weights larger than the scale :math:`w_0`. The
    coefficient :math:`\lambda` is applied by the caller.

    Args:
        weights (Tensor or iterable of Tensor): one tensor or several (e.g. ``model.parameters()``).
        w0 (float, optional): scale :math:`w_0 > 0`. (default: ``1.0``)
        batch_dims (int, optional): number of leading ensemble dimensions kept in the result; they must
            agree across tensors. (default: ``0``)

    Shapes:
        - **input:** each weight ``(*B, *)`` with ``len(B) = batch_dims``
        - **output:** ``(*B)``; a scalar when ``batch_dims=0``

    Example:
        >>> weight_elimination(torch.tensor([1.0, -3.0]), w0=1.0)
        tensor(1.4000)
    """
    w0 = checks.number("weight_elimination: w0", w0, low=0, low_open=True, finite=False)
    tensors = _as_tensor_list(weights, batch_dims, "weight_elimination")

    def term(w: Tensor) -> Tensor:
        r = (w / w0).square()
        return r / (1 + r)

    return _sum_per_model((term(w) for w in tensors), batch_dims)


def smoothing_group_lasso(
    weight: Tensor, dim: int | tuple[int, ...] = -1, a: float = 0.1, batch_dims: int = 0
) -> Tensor:
    r"""Group lasso with the norm smoothed near zero (Wang, Xu, Yang & Zurada, IEEE TNNLS 2018).

    The weight is split into groups :math:`w_g`: the entries along ``dim`` form one group, and every
    other (non-batch) index names a group. For an ``nn.Linear`` weight ``[out, in]`` with ``dim=-1`` the
    groups are the rows, i.e. the incoming weights of each hidden neuron. The penalty is

    .. math::
        R(w) = \sum_g f(\lVert w_g \rVert_2), \qquad
        f(t) = \begin{cases} t & t \ge a \\
                             -\dfrac{t^4}{8 a^3} + \dfrac{3 t^2}{4 a} + \dfrac{3 a}{8} & t < a \end{cases}

    :math:`f` is continuously differentiable: :math:`f(a) = a`, :math:`f'(a) = 1`, :math:`f'(0) = 0`,
    :math:`f(0) = 3a/8`. Below :math:`a` it is a polynomial in :math:`s = \lVert w_g \rVert^2`, which is how
    it is computed, so the gradient :math:`\nabla_{w_g} R = f'(t)\, w_g / t` is finite everywhere and is
    :math:`(3/(2a) - t^2/(2a^3))\, w_g` below :math:`a` (0 at :math:`w_g = 0`, no NaN) and
    :math:`w_g / \lVert w_g \rVert` above. The coefficient :math:`\lambda` is applied by the caller.

    Args:
        weight (Tensor): the weight tensor.
        dim (int or tuple of int, optional): dimension(s) whose entries form one group; none of them may
            be a batch dimension. ``-1`` groups the rows of ``[out, in]`` and of ``[K, out, in]``; use
            ``(1, 2, 3)`` for the output filters of a conv weight ``[out, in, kh, kw]``. (default: ``-1``)
        a (float, optional): smoothing radius :math:`a > 0`. (default: ``0.1``)
        batch_dims (int, optional): number of leading ensemble dimensions kept in the result.
            (default: ``0``)

    Shapes:
        - **input:** weight ``(*B, *)`` with ``len(B) = batch_dims``, e.g. ``(out, in)`` or ``(K, out, in)``
        - **output:** ``(*B)``; a scalar when ``batch_dims=0``, ``(K)`` for an ensemble of ``K`` models

    Example:
        >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # row norms 5 and 0
        >>> smoothing_group_lasso(w, dim=-1, a=1.0)
        tensor(5.3750)
    """
    a = checks.number("smoothing_group_lasso: a", a, low=0, low_open=True)
    if not isinstance(weight, Tensor):
        raise TypeError(f"smoothing_group_lasso: expected one weight tensor, got {type(weight).__name__}; call it "
                        f"once per weight and add the results")
    (weight,) = _as_tensor_list(weight, batch_dims, "smoothing_group_lasso")
    if isinstance(dim, numbers.Integral):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise ValueError(f"smoothing_group_lasso: dim must be an integer or a tuple of integers, got {dim!r}")
    if not dims:
        raise ValueError("smoothing_group_lasso: dim must name at least one dimension, got ()")
    resolved = []
    for d in dims:
        if not checks.is_integer(d):
            raise ValueError(f"smoothing_group_lasso: dim must be an integer or a tuple of integers, got {dim!r}")
        if not -weight.dim() <= d < weight.dim():
            raise ValueError(
                f"smoothing_group_lasso: dim={d!r} is out of range for weight of shape {tuple(weight.shape)}"
            )
        d = int(d) % weight.dim()
        if d < batch_dims:
            raise ValueError(
                f"smoothing_group_lasso: dim={dims} includes batch dimension {d} "
                f"(batch_dims={batch_dims}); a group must lie within one model"
            )
        if d in resolved:
            raise ValueError(f"smoothing_group_lasso: dim={dims} names dimension {d} twice")
        resolved.append(d)

    sq_norm = weight.square().sum(dim=tuple(resolved))  # (*B, groups...): s = ||w_g||^2
    a2 = a * a
    smooth = -sq_norm.square() / (8 * a2 * a) + 3 * sq_norm / (4 * a) + 3 * a / 8  # f for t < a
    # sqrt only where s >= a^2 (clamped elsewhere), so the unused branch has no inf gradient at s = 0.
    exact = sq_norm.clamp(min=a2).sqrt()
    return _sum_per_model([torch.where(sq_norm < a2, smooth, exact)], batch_dims)
