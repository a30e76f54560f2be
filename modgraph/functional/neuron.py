r"""The paper's neuron-level attention and the linear layer it scales, as one autograd function.

For a layer input ``x`` ``[B, in]``, the allocator's input ``h`` ``[B, in]`` (the same tensor unless the edge carries
an adjacency weight), the allocator ``A`` ``[in * out, in]``, ``c`` ``[in * out]`` and the layer ``W`` ``[out, in]``,
``b`` ``[out]``:

.. math::
    a_{bio} = \sigma\big((h A^\top + c)_{b,\, i \cdot out + o}\big), \qquad
    y_{bo} = \sum_i x_{bi}\, a_{bio}\, W_{oi} + b_o .

This is exactly ``NeuronAttention`` (score ``"linear"``, sigmoid gate, no threshold, temperature 1) followed by the
neuron-scaled ``Linear.forward``; :func:`neuron_scaled_linear` computes the same values with fewer passes over the
``[B, in, out]`` tensors, which dominate the cost of a step:

* the allocator's scores are computed output-major (``[B, out, in]``: the rows of ``A`` permuted, a copy of
  ``in * out * in`` numbers) in one matrix product, its bias ``c`` a row of ``A^T`` against a column of ones in
  ``h`` (no pass to add it), and the sigmoid is taken in place;
* the forward sum over ``in`` per output neuron is a matrix product with the small block matrix ``W_blk``
  (``[out, out * in]``, ``W_blk[o, o * in + i] = W[o, i]``): ``y = (a x) W_blk^T + b``; in the backward pass
  (``g = dL/dy``) ``t = a\, W\, g`` (two broadcast passes), ``dL/dx = \sum_o t``, ``dL/dS = t\, x\, (1 - a)``
  (``\sigma' = \sigma (1 - \sigma)``), ``dL/dW = `` the diagonal blocks of ``g^T (a x)`` and
  ``[dL/dA, dL/dc]^T = [h, 1]^T dS``, ``dL/dh = (A\, dS^T)^T``;
* the backward pass reads only the saved ``a`` and ``a x`` (when ``x`` needs no gradient, as when only the attention
  is trained, ``t x = (a x) W g`` comes from the saved ``a x`` without ``dL/dx``); gradients nobody needs (a frozen
  group of the alternating schedule) are not computed;
* each matrix product is written in the orientation that ran fastest with MKL on CPU (on an AMD EPYC the
  transposed orders of the ``dL/dW``, ``dL/dA`` and ``dL/dh`` products were several times slower at the UCI
  programs' shapes; ``benchmarks/uci_time.py`` times the whole step); the math is the same.

The attention weights ``a`` (``[B, in, out]``, a view) are returned as well, so the gate can report them to its
hooks; they are differentiable like the gate's output (a loss on them back-propagates into the allocator).

Under ``torch.vmap`` (the ensembles of :mod:`modgraph.train.ensemble`) the function's ``vmap`` rule runs the same
kernels once on the stacked tensors ``[K, ...]``: one batched matrix product for all members, no per-member work.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["neuron_scaled_linear"]


def _flat(t: Tensor, lead: tuple, tail: int) -> Tensor:
    """``t`` ``[*lead, *rest]`` (``tail`` trailing dims) as ``[N, *rest]``."""
    return t.reshape(-1, *t.shape[t.dim() - tail:]) if lead else t.unsqueeze(0)


class _NeuronScaledLinear(torch.autograd.Function):
    """Inputs ``x, h`` ``[*L, B, in]``, ``A`` ``[*L, in*out, in]``, ``c`` ``[*L, in*out]``, ``W`` ``[*L, out, in]``,
    ``b`` ``[*L, out]`` or ``None``, with the same leading dims ``L`` (none, or the members of a vmapped ensemble).
    Outputs ``y`` ``[*L, B, out]``, weights ``[*L, B, in, out]``, and three saved intermediates (not differentiable;
    with the leading dims ``L`` too).

    Internally every ``[B, in, out]`` tensor is output-major, ``[N, B, out, in]`` with the leading dims flattened
    into ``N``, and the forward per-output sums over ``in`` are one matrix product with the block matrix ``W_blk``
    ``[out, out * in]`` (``W_blk[o, o * in + i] = W[o, i]``, zero elsewhere)."""

    @staticmethod
    def forward(x, h, A, c, W, b):
        lead = tuple(x.shape[:-2])
        (B, n_in), n_out = x.shape[-2:], W.shape[-2]
        x3, h3, A3, c2, W3 = (_flat(x, lead, 2), _flat(h, lead, 2), _flat(A, lead, 2), _flat(c, lead, 1),
                              _flat(W, lead, 2))
        n, m = x3.shape[0], n_out * n_in
        # the output-major allocator, transposed, its bias as one more row against a column of ones in the input:
        # column o * in + i of At_aug is [row i * out + o of A, c[i * out + o]]
        At_aug = torch.cat([A3.view(n, n_in, n_out, n_in).permute(0, 3, 2, 1).reshape(n, n_in, m),
                            c2.view(n, n_in, n_out).transpose(1, 2).reshape(n, 1, m)], 1)  # (N, in + 1, out * in)
        h_aug = torch.cat([h3, h3.new_ones(n, B, 1)], -1)  # (N, B, in + 1)
        a = torch.bmm(h_aug, At_aug).sigmoid_().view(n, B, n_out, n_in)  # (N, B, out, in)
        ax = (a * x3.unsqueeze(2)).view(n, B, m)  # a_boi * x_bi
        W_blk_t = torch.diag_embed(W3.transpose(1, 2)).permute(0, 2, 3, 1).reshape(n, n_out, m)  # (N, out, out*in)
        if b is None:
            y = torch.bmm(ax, W_blk_t.transpose(1, 2))
        else:
            y = torch.baddbmm(_flat(b, lead, 1).unsqueeze(1), ax, W_blk_t.transpose(1, 2))  # (N, B, out)
        weights = a.transpose(-1, -2)  # (N, B, in, out), the gate's layout

        def unflat(t):  # (N, *rest) -> (*lead, *rest): every output carries the leading dims the inputs had, so a
            return t.view(*lead, *t.shape[1:]) if lead else t.squeeze(0)  # vmap over it sees per-member shapes

        return y.view(*lead, B, n_out), unflat(weights), unflat(ax), unflat(h_aug), unflat(At_aug)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h, A, c, W, b = inputs
        _, weights, ax, h_aug, At_aug = output
        ctx.save_for_backward(x, W, weights, ax, h_aug, At_aug)
        ctx.has_bias = b is not None
        ctx.shapes = (h.shape, A.shape, c.shape, W.shape, None if b is None else b.shape)
        ctx.mark_non_differentiable(ax, h_aug, At_aug)
        ctx.set_materialize_grads(False)

    @staticmethod
    @once_differentiable  # its gradient is not differentiable again: an error, not a wrong second derivative
    def backward(ctx, gy, gweights, *_):
        x, W, weights, ax, h_aug, At_aug = ctx.saved_tensors
        need_x, need_h, need_A, need_c, need_W, need_b = ctx.needs_input_grad[:6]
        h_shape, a_shape, c_shape, w_shape, b_shape = ctx.shapes
        lead = tuple(x.shape[:-2])
        B, n_in = x.shape[-2:]
        ax, h_aug, At_aug = _flat(ax, lead, 2), _flat(h_aug, lead, 2), _flat(At_aug, lead, 2)
        n, m, n_out = ax.shape[0], ax.shape[-1], W.shape[-2]
        a = _flat(weights, lead, 3).transpose(-1, -2)  # (N, B, out, in), contiguous again
        need_scores = need_h or need_A or need_c
        dx = dh = dA = dc = dW = db = d_scores = None
        if gy is not None:
            g = _flat(gy, lead, 2)  # (N, B, out)
            if need_b and ctx.has_bias:
                db = g.sum(1)
            if need_W:  # dW_oi = sum_b g_bo a_boi x_bi: the diagonal blocks of g^T ax
                dW = torch.bmm(g.transpose(1, 2), ax).view(n, n_out, n_out, n_in).diagonal(dim1=1, dim2=2)
                dW = dW.transpose(1, 2)  # (N, out, in)
            g_b, W_b = g.unsqueeze(-1), _flat(W, lead, 2).unsqueeze(1)  # g_bo, W_oi broadcast over [N, B, out, in]
            if need_x:
                t = (a * W_b).mul_(g_b)  # g_bo W_oi a_boi (two broadcast passes: faster than a product with W_blk)
                dx = t.sum(2)
                if need_scores:
                    d_scores = t.mul_(_flat(x, lead, 2).unsqueeze(2))  # g_bo W_oi a_boi x_bi
            elif need_scores:  # the same product from the saved a x (x frozen: attention only)
                d_scores = (ax.view(n, B, n_out, n_in) * W_b).mul_(g_b)
            if d_scores is not None:
                d_scores = d_scores.addcmul_(d_scores, a, value=-1)  # times 1 - a: sigmoid's derivative
        if need_scores and gweights is not None:  # a loss on the reported weights
            extra = _flat(gweights, lead, 3).transpose(-1, -2) * a * (1 - a)
            d_scores = extra if d_scores is None else d_scores.add_(extra)
        if d_scores is not None:
            d_flat = d_scores.reshape(n, B, m)
            if need_h:  # (A d^T)^T: the product in this order runs faster than d A on CPU
                dh = torch.bmm(At_aug[:, :n_in], d_flat.transpose(1, 2)).transpose(1, 2)
            if need_A or need_c:  # [dA, dc]^T in one product, output-major columns
                dA_aug = torch.bmm(h_aug.transpose(1, 2), d_flat).view(n, n_in + 1, n_out, n_in).permute(0, 3, 2, 1)
                dA, dc = (dA_aug[..., :n_in] if need_A else None), (dA_aug[..., n_in] if need_c else None)

        def back(t, shape):
            return None if t is None else t.reshape(shape)

        return (back(dx, x.shape), back(dh, h_shape), back(dA, a_shape), back(dc, c_shape), back(dW, w_shape),
                back(db, b_shape))

    @staticmethod
    def vmap(info, in_dims, x, h, A, c, W, b):
        def front(t, d):
            if t is None:
                return None
            return t.movedim(d, 0) if d is not None else t.expand(info.batch_size, *t.shape)

        outs = _NeuronScaledLinear.apply(*(front(t, d) for t, d in zip((x, h, A, c, W, b), in_dims)))
        return outs, (0,) * len(outs)


def neuron_scaled_linear(x: Tensor, h: Tensor, A: Tensor, c: Tensor, W: Tensor, b: Tensor | None = None):
    r"""``(y, weights)`` of the sigmoid neuron-level attention on ``h`` scaling the linear layer ``(W, b)`` on ``x``.

    Equal (up to float rounding) to::

        weights = torch.sigmoid(F.linear(h, A, c).unflatten(-1, (in, out)))      # (B, in, out)
        y = torch.einsum("bi,bio,io->bo", x, weights, W.t()) + b                  # (B, out)

    with fewer passes over the ``[B, in, out]`` tensors (see the module's docstring). Works under ``torch.vmap``.

    Shapes:
        x, h ``[B, in]``; A ``[in * out, in]``; c ``[in * out]``; W ``[out, in]``; b ``[out]`` or ``None``.
        Returns y ``[B, out]`` and weights ``[B, in, out]``.
    """
    if not (isinstance(x, Tensor) and isinstance(W, Tensor) and x.dim() == 2 and W.dim() == 2
            and isinstance(h, Tensor) and h.shape == x.shape and isinstance(A, Tensor) and isinstance(c, Tensor)
            and A.shape == (W.shape[0] * x.shape[1], x.shape[1]) and c.shape == A.shape[:1]
            and W.shape[1] == x.shape[1] and (b is None or (isinstance(b, Tensor) and b.shape == W.shape[:1]))):
        _shape_fault(x, h, A, c, W, b)  # metadata only; an A, c or b of another shape could be viewed silently
    try:
        y, weights, *_ = _NeuronScaledLinear.apply(x, h, A, c, W, b)
    except RuntimeError:
        tensors = {"x": x, "h": h, "A": A, "c": c, "W": W, **({} if b is None else {"b": b})}
        if any(t.dtype != x.dtype for t in tensors.values()) or not x.is_floating_point():
            raise TypeError("neuron_scaled_linear: x, h, A, c, W and b must share one floating-point dtype, got "
                            + ", ".join(f"{k} {t.dtype}" for k, t in tensors.items())) from None
        raise
    return y, weights


def _shape_fault(x, h, A, c, W, b) -> None:
    """Raise the error naming the first argument of :func:`neuron_scaled_linear` of a wrong type or shape."""
    for name, t in (("x", x), ("h", h), ("A", A), ("c", c), ("W", W), ("b", b)):
        if not isinstance(t, Tensor) and not (name == "b" and t is None):
            raise TypeError(f"neuron_scaled_linear: {name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 2:
        raise ValueError(f"neuron_scaled_linear: x must be a tensor [B, in], got shape {tuple(x.shape)}")
    (batch, n_in), n_out = x.shape, (W.shape[0] if W.dim() == 2 else None)
    if W.dim() != 2 or W.shape[1] != n_in:
        raise ValueError(f"neuron_scaled_linear: W must be a tensor [out, in] = [out, {n_in}] (x is "
                         f"{tuple(x.shape)}), got shape {tuple(W.shape)}")
    expected = {"h": (batch, n_in), "A": (n_in * n_out, n_in), "c": (n_in * n_out,), "b": (n_out,)}
    for name, t in (("h", h), ("A", A), ("c", c), ("b", b)):
        if t is not None and tuple(t.shape) != expected[name]:
            raise ValueError(f"neuron_scaled_linear: {name} must be a tensor of shape {list(expected[name])} (x is "
                             f"{tuple(x.shape)}, W {tuple(W.shape)}), got shape {tuple(t.shape)}")
