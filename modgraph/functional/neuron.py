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

* the allocator's scores are computed output-major (``[B, out, in]``, the rows of ``A`` permuted, a copy of
  ``in * out * in`` numbers), so ``W`` ``[out, in]`` broadcasts over the samples without a transpose and the
  per-connection products vectorise over ``out * in`` contiguous numbers;
* the sigmoid is taken in place on the scores, and ``y`` is a batched matrix-vector product of ``a * W`` with ``x``;
* the backward pass is written by hand: with ``g = dL/dy`` and ``r_{boi} = a_{boi}\, g_{bo}\, x_{bi}``,
  ``dL/dW = \sum_b r``, ``dL/dx = \sum_o g_{bo}\, (a W)_{boi}`` and ``dL/dS = r\,(W - a W)``
  (``\sigma' = \sigma (1 - \sigma)``), from the saved ``a`` and ``a W`` only; gradients nobody needs
  (a frozen group of the alternating schedule) are not computed.

The attention weights ``a`` (``[B, in, out]``, a view) are returned as well, so the gate can report them to its
hooks; they are differentiable like the gate's output (a loss on them back-propagates into the allocator).

Under ``torch.vmap`` (the ensembles of :mod:`modgraph.train.ensemble`) the function's ``vmap`` rule runs the same
kernels once on the stacked tensors ``[K, ...]``: one batched matrix product for all members, no per-member work.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["neuron_scaled_linear"]


def _flat(t: Tensor, lead: tuple, tail: int) -> Tensor:
    """``t`` ``[*lead, *rest]`` (``tail`` trailing dims) as ``[N, *rest]``."""
    return t.reshape(-1, *t.shape[t.dim() - tail:]) if lead else t.unsqueeze(0)


class _NeuronScaledLinear(torch.autograd.Function):
    """Inputs ``x, h`` ``[*L, B, in]``, ``A`` ``[*L, in*out, in]``, ``c`` ``[*L, in*out]``, ``W`` ``[*L, out, in]``,
    ``b`` ``[*L, out]`` or ``None``, with the same leading dims ``L`` (none, or the members of a vmapped ensemble).
    Outputs ``y`` ``[*L, B, out]``, weights ``[*L, B, in, out]``, and two saved intermediates (not differentiable)."""

    @staticmethod
    def forward(x, h, A, c, W, b):
        lead = tuple(x.shape[:-2])
        (B, n_in), n_out = x.shape[-2:], W.shape[-2]
        x3, h3, A3, c2, W3 = (_flat(x, lead, 2), _flat(h, lead, 2), _flat(A, lead, 2), _flat(c, lead, 1),
                              _flat(W, lead, 2))
        n = x3.shape[0]
        # output-major allocator: row o * in + i of A_om is row i * out + o of A
        A_om = A3.view(n, n_in, n_out, n_in).transpose(1, 2).reshape(n, n_out * n_in, n_in)
        c_om = c2.view(n, n_in, n_out).transpose(1, 2).reshape(n, 1, n_out * n_in)
        a = torch.baddbmm(c_om, h3, A_om.transpose(1, 2)).sigmoid_().view(n, B, n_out, n_in)  # (N, B, out, in)
        aW = a * W3.unsqueeze(1)  # (N, B, out, in)
        y = torch.bmm(aW.view(n * B, n_out, n_in), x3.reshape(n * B, n_in, 1)).view(n, B, n_out)
        if b is not None:
            y = y + _flat(b, lead, 1).unsqueeze(1)
        weights = a.transpose(-1, -2)  # (N, B, in, out), the gate's layout
        return (y.view(*lead, B, n_out), weights.view(*lead, B, n_in, n_out) if lead else weights.squeeze(0),
                aW, A_om)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h, A, c, W, b = inputs
        _, weights, aW, A_om = output
        ctx.save_for_backward(x, h, W, weights, aW, A_om)
        ctx.has_bias = b is not None
        ctx.shapes = (A.shape, c.shape, None if b is None else b.shape)
        ctx.mark_non_differentiable(aW, A_om)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gy, gweights, _gaw, _gaom):
        x, h, W, weights, aW, A_om = ctx.saved_tensors
        need_x, need_h, need_A, need_c, need_W, need_b = ctx.needs_input_grad[:6]
        lead = tuple(x.shape[:-2])
        (B, n_in), n_out = x.shape[-2:], W.shape[-2]
        n = A_om.shape[0]
        x3, h3, W3 = _flat(x, lead, 2), _flat(h, lead, 2), _flat(W, lead, 2)
        a = _flat(weights, lead, 3).transpose(-1, -2)  # (N, B, out, in), contiguous again
        need_scores = need_h or need_A or need_c
        dx = dh = dA = dc = dW = db = None
        if gy is not None:
            g = _flat(gy, lead, 2)  # (N, B, out)
            if need_x:
                dx = torch.bmm(g.reshape(n * B, 1, n_out), aW.view(n * B, n_out, n_in)).view(n, B, n_in)
            if need_b and ctx.has_bias:
                db = g.sum(1)
            if need_W or need_scores:
                r = (a * g.unsqueeze(-1)).mul_(x3.unsqueeze(-2))  # (N, B, out, in): a * g * x
                if need_W:
                    dW = r.sum(1)
                if need_scores:
                    d_scores = r.mul_(torch.sub(W3.unsqueeze(1), aW))  # a (1 - a) * g * x * W
        if need_scores and gweights is not None:  # a loss on the reported weights
            gw = _flat(gweights, lead, 3).transpose(-1, -2)
            extra = gw * a * (1 - a)
            d_scores = extra if gy is None else d_scores.add_(extra)
        if need_scores and (gy is not None or gweights is not None):
            d_flat = d_scores.reshape(n, B, n_out * n_in)
            if need_h:
                dh = torch.bmm(d_flat, A_om)
            if need_A:
                dA = torch.bmm(d_flat.transpose(1, 2), h3).view(n, n_out, n_in, n_in).transpose(1, 2)
                dA = dA.reshape(n, n_in * n_out, n_in)
            if need_c:
                dc = d_flat.sum(1).view(n, n_out, n_in).transpose(1, 2).reshape(n, n_in * n_out)

        def back(t, shape):
            return None if t is None else t.reshape(shape)

        a_shape, c_shape, b_shape = ctx.shapes
        return (back(dx, x.shape), back(dh, h.shape), back(dA, a_shape), back(dc, c_shape), back(dW, W.shape),
                back(db, b_shape))

    @staticmethod
    def vmap(info, in_dims, x, h, A, c, W, b):
        def front(t, d):
            if t is None:
                return None
            return t.movedim(d, 0) if d is not None else t.expand(info.batch_size, *t.shape)

        outs = _NeuronScaledLinear.apply(*(front(t, d) for t, d in zip((x, h, A, c, W, b), in_dims)))
        return outs, (0, 0, 0, 0)


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
    y, weights, _, _ = _NeuronScaledLinear.apply(x, h, A, c, W, b)
    return y, weights
