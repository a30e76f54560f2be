"""Standard graph networks declared as modgraph DAGs (plain data: print them, diff them, save them as specs).

Every function returns a ``networkx.DiGraph`` for :class:`modgraph.ModuleGraph`; the node features enter at ``x``
and the network is called as ``net(x, edge_index=edge_index)``.

* :func:`gcn_net` - ``x -> sparse_dropout -> conv1 -> activation -> dropout -> conv2`` (Kipf & Welling 2017).
  ``conv="gcn"`` uses PyG's ``GCNConv`` (op ``gcn_conv``), ``conv="attention"`` the gated conv
  (op ``attention_conv``): the plain GCN baseline is the same DAG with the conv nodes' ``op`` changed (and the
  attention arguments dropped with it).
* :func:`gcn` and :func:`attention_gcn` - the two with the hyper-parameters of ``experiments/cora.py``.
* :func:`attention_gcnii` - a deep variant: GCNII's initial residual and identity mapping around gated propagation.
* :func:`attention_appnp` - a deeper variant: an encoder (an MLP layer or an attention conv), then ``K``
  propagation steps, each merged with a teleport (skip) branch back to the encoder's prediction, with APPNP's fixed
  ``alpha`` or by branch attention that learns per node how much of the propagated and of the local prediction
  to keep.
* :func:`hop_attention` - the propagation depths as parallel branches: an MLP's prediction ``z0`` propagated
  ``K`` times (``z_k = A_hat z_{k-1}``), and every ``z_k`` feeding one merge whose branch attention decides per
  node how much of each depth to keep (DAGNN's adaptive receptive field, Liu, Gao & Ji, KDD 2020).
"""

from __future__ import annotations

import math

import networkx as nx

from .. import checks
from ..errors import GraphSpecError
from ..functional.normalize import NORMALIZERS
from ..functional.scores import SCORES

__all__ = ["attention_appnp", "attention_gcn", "attention_gcnii", "gcn", "gcn_net", "hop_attention"]

CONVS = {"gcn": "gcn_conv", "attention": "attention_conv"}
TELEPORTS = ("fixed", *NORMALIZERS)


def _count(name: str, value, why: str) -> int:
    return checks.integer(name, value, least=1, why=why, error=GraphSpecError)


def _share(name: str, value) -> float:
    return checks.number(name, value, low=0, high=1, error=GraphSpecError)


def _gated(attention, score, combine) -> None:
    """The attention arguments of a network, checked even where no node uses them (a typo is never ignored)."""
    checks.choice("attention", attention, NORMALIZERS, error=GraphSpecError)
    checks.choice("score", score, SCORES, error=GraphSpecError)
    checks.choice("combine", combine, ("gcn", "replace"), error=GraphSpecError)


def gcn_net(features: int, classes: int, conv: str = "attention", hidden: int = 64, heads: int = 8,
            dropout: float = 0.6, input_dropout: float | None = None, activation: str = "elu",
            out_heads: int = 1, **attention) -> nx.DiGraph:
    """Two graph convolutions: ``x -> drop_in -> conv1 -> act -> drop -> conv2``.

    Args:
        features, classes: input width and number of classes.
        conv: ``"attention"`` (op ``attention_conv``) or ``"gcn"`` (op ``gcn_conv``, PyG's GCNConv).
        hidden: width of the hidden layer (all heads together).
        heads: attention heads of ``conv1`` (attention only).
        dropout: dropout before ``conv2``; ``input_dropout`` (default: ``dropout``) before ``conv1``, over the
            nonzeros when the features are a sparse tensor.
        activation: ``relu``, ``elu``, ...
        out_heads: attention heads of ``conv2``, averaged (attention only).
        **attention: further ``attention_conv`` arguments for both convs (``attention``, ``score``, ``combine``,
            ``attention_dropout``, ``threshold``, ``temperature``).
    """
    checks.choice("conv", conv, tuple(CONVS), error=GraphSpecError)
    fixed = sorted({"op", "out_features", "heads", "concat"} & attention.keys())
    if fixed:  # networkx's add_node failed with "got multiple values for keyword argument"
        raise GraphSpecError(f"gcn_net sets {', '.join(fixed)} of the convs itself; use hidden, heads and "
                             f"out_heads instead, got {', '.join(f'{k}={attention[k]!r}' for k in fixed)}")
    g = nx.DiGraph(name=f"{conv}-gcn")
    g.add_node("x", op="input", features=features)
    g.add_node("drop_in", op="sparse_dropout", p=dropout if input_dropout is None else input_dropout)
    if conv == "gcn":
        if attention:
            raise ValueError(f"conv='gcn' takes no attention arguments, got {', '.join(sorted(attention))}")
        g.add_node("conv1", op="gcn_conv", out_features=hidden)
        g.add_node("conv2", op="gcn_conv", out_features=classes)
    else:
        g.add_node("conv1", op="attention_conv", out_features=hidden, heads=heads, **attention)
        g.add_node("conv2", op="attention_conv", out_features=classes, heads=out_heads, concat=False, **attention)
    g.add_node("act", op=activation)
    g.add_node("drop", op="dropout", p=dropout)
    nx.add_path(g, ["x", "drop_in", "conv1", "act", "drop", "conv2"])
    return g


def gcn(features: int, classes: int, **overrides) -> nx.DiGraph:
    """Kipf & Welling's GCN: 16 hidden units, ReLU, dropout 0.5 (PyG's GCNConv); ``overrides`` change
    :func:`gcn_net`'s arguments (e.g. ``dropout``)."""
    settings = dict(hidden=16, dropout=0.5, activation="relu")
    settings.update(overrides)
    return gcn_net(features, classes, conv="gcn", **settings)


def attention_gcn(features: int, classes: int, attention: str = "softmax", **overrides) -> nx.DiGraph:
    """The attention GCN of ``experiments/cora.py``: GCN's coefficients re-weighted by 8-head GAT-style attention."""
    settings = dict(hidden=64, heads=8, dropout=0.6, activation="elu", score="gat", combine="gcn",
                    attention_dropout=0.6)
    settings.update(overrides)
    return gcn_net(features, classes, conv="attention", attention=attention, **settings)


def attention_appnp(features: int, classes: int, hidden: int = 64, steps: int = 10, dropout: float = 0.5,
                    alpha: float = 0.1, encoder: str = "mlp", heads: int = 8, activation: str = "relu",
                    propagation: str = "gcn", teleport: str = "fixed", attention: str = "softmax",
                    score: str = "gat", combine: str = "gcn", attention_dropout: float = 0.0) -> nx.DiGraph:
    """An encoder, then ``steps`` propagation steps, each merged with a teleport branch back to the encoder.

    ``x -> drop_in -> enc -> act -> drop -> z0 (linear)``, the encoder ``enc`` a linear layer (``encoder="mlp"``,
    APPNP) or an ``attention_conv`` with ``heads`` heads (``encoder="attention"``); for ``k = 1..steps``:
    ``prop_k = propagate(z_{k-1})`` (``gcn_propagate``, or ``attention_propagate`` with
    ``propagation="attention"``) and ``z_k = merge(prop_k, z0)``: APPNP's ``(1 - alpha) prop_k + alpha z0`` as
    fixed edge weights (``teleport="fixed"``), or weighted per node by branch attention (``teleport`` a
    normaliser: ``"sigmoid"`` gates both branches independently, ``"softmax"`` makes them sum to 1).
    The attention arguments (``attention``, ``score``, ``combine``, ``attention_dropout``) go to every
    attention conv/propagation of the network.
    """
    checks.choice("encoder", encoder, ("mlp", "attention"), error=GraphSpecError)
    checks.choice("propagation", propagation, ("gcn", "attention"), error=GraphSpecError)
    checks.choice("teleport", teleport, TELEPORTS, error=GraphSpecError)
    steps, alpha = _count("steps", steps, "propagation steps"), _share("alpha", alpha)
    _gated(attention, score, combine)
    gated = dict(attention=attention, score=score, combine=combine, attention_dropout=attention_dropout)
    g = nx.DiGraph(name="attention-appnp")
    g.add_node("x", op="input", features=features)
    g.add_node("drop_in", op="sparse_dropout", p=dropout)
    if encoder == "mlp":
        g.add_node("enc", op="linear", out_features=hidden)
    else:
        g.add_node("enc", op="attention_conv", out_features=hidden, heads=heads, **gated)
    g.add_node("act", op=activation)
    g.add_node("drop", op="dropout", p=dropout)
    g.add_node("z0", op="linear", out_features=classes)
    nx.add_path(g, ["x", "drop_in", "enc", "act", "drop", "z0"])
    prev = "z0"
    for k in range(1, steps + 1):
        if propagation == "gcn":
            g.add_node(f"prop{k}", op="gcn_propagate")
        else:
            g.add_node(f"prop{k}", op="attention_propagate", **gated)
        g.add_node(f"z{k}", op="identity")
        g.add_edge(prev, f"prop{k}")
        if teleport == "fixed":
            g.add_edge(f"prop{k}", f"z{k}", weight=1.0 - alpha)
            g.add_edge("z0", f"z{k}", weight=alpha)
        else:
            g.add_edge(f"prop{k}", f"z{k}", attention=teleport)
            g.add_edge("z0", f"z{k}", attention=teleport)
        prev = f"z{k}"
    return g


def hop_attention(features: int, classes: int, hidden: int = 64, steps: int = 10, dropout: float = 0.8,
                  attention: str | None = "sigmoid", score: str = "additive", attention_hidden: int = 32
                  ) -> nx.DiGraph:
    """An MLP, ``steps`` propagation steps, and a merge of every depth weighted per node by branch attention.

    ``x -> drop_in -> enc -> relu -> drop -> z0 (linear)``, then ``z_k = gcn_propagate(z_{k-1})`` for
    ``k = 1..steps`` (GCN's ``D^-1/2 (A + I) D^-1/2``, no parameters) and ``out = sum_k w_k(i) z_k[i]`` over
    ``k = 0..steps``: the ``steps + 1`` in-edges of ``out`` are one set of parallel branches, scored per node by the
    core gate (``score`` over a ``attention_hidden``-wide projection of each branch, normalised by ``attention``:
    ``"sigmoid"`` keeps or drops each depth independently, as DAGNN's retainment scores do; ``"softmax"`` and
    ``"sparsemax"`` make the depths compete). ``net.edge_weights()[("z3", "out")]`` is how much of the 3-hop
    prediction each node kept. ``attention=None`` is the baseline with the same nodes and edges: the depths
    summed, which is also what this network computes with its gate switched off (``with net.attention_off():``).
    """
    steps = _count("steps", steps, "propagation steps")
    g = nx.DiGraph(name="hop-attention")
    g.add_node("x", op="input", features=features)
    g.add_node("drop_in", op="sparse_dropout", p=dropout)
    g.add_node("enc", op="linear", out_features=hidden)
    g.add_node("act", op="relu")
    g.add_node("drop", op="dropout", p=dropout)
    g.add_node("z0", op="linear", out_features=classes)
    g.add_node("out", op="identity")
    nx.add_path(g, ["x", "drop_in", "enc", "act", "drop", "z0"])
    branch = dict(attention=attention, score=score, hidden=attention_hidden) if attention is not None else {}
    g.add_edge("z0", "out", **branch)
    for k in range(1, steps + 1):
        g.add_node(f"z{k}", op="gcn_propagate")
        g.add_edge(f"z{k - 1}", f"z{k}")
        g.add_edge(f"z{k}", "out", **branch)
    return g


def attention_gcnii(features: int, classes: int, layers: int = 16, hidden: int = 64, alpha: float = 0.1,
                    lam: float = 0.5, dropout: float = 0.6, attention: str = "softmax", score: str = "gat",
                    combine: str = "gcn", attention_dropout: float = 0.0, teleport: str = "fixed",
                    propagation: str = "attention") -> nx.DiGraph:
    r"""A deep GCN with initial residual and identity mapping (GCNII, Chen et al. 2020) whose propagation is gated.

    ``h0 = relu(lin_in(drop_in(x)))``; layer ``l = 1..layers`` is five nodes::

        d_l = dropout(h_{l-1});  p_l = attention_propagate(d_l)           # attention-weighted GCN propagation
        s_l = (1 - alpha) p_l + alpha h0                                  # initial residual (teleport branch)
        w_l = linear(s_l, no bias);  h_l = relu((1 - beta_l) s_l + beta_l w_l)   # identity mapping

    with :math:`\beta_l = \log(\lambda / l + 1)`; the output is ``lin_out(dropout(h_L))``. ``teleport="fixed"``
    uses GCNII's constant ``alpha``; a normaliser (``"softmax"``, ...) lets branch attention weigh ``p_l`` against
    ``h0`` per node instead.
    """
    layers = _count("layers", layers, "the depth")
    alpha = _share("alpha", alpha)
    lam = checks.number("lam", lam, low=0, error=GraphSpecError)
    checks.choice("propagation", propagation, ("gcn", "attention"), error=GraphSpecError)
    checks.choice("teleport", teleport, TELEPORTS, error=GraphSpecError)
    _gated(attention, score, combine)
    g = nx.DiGraph(name="attention-gcnii")
    g.add_node("x", op="input", features=features)
    g.add_node("drop_in", op="sparse_dropout", p=dropout)
    g.add_node("h0", op="linear", out_features=hidden, activation="relu")
    nx.add_path(g, ["x", "drop_in", "h0"])
    prev = "h0"
    for l in range(1, layers + 1):
        beta = math.log(lam / l + 1.0)
        d, p, s, w, h = (f"{name}{l}" for name in ("d", "p", "s", "w", "h"))
        g.add_node(d, op="dropout", p=dropout)
        if propagation == "gcn":
            g.add_node(p, op="gcn_propagate")
        else:
            g.add_node(p, op="attention_propagate", attention=attention, score=score, combine=combine,
                       attention_dropout=attention_dropout)
        g.add_node(s, op="identity")
        g.add_node(w, op="linear", out_features=hidden, bias=False)
        g.add_node(h, op="relu")
        nx.add_path(g, [prev, d, p])
        if teleport == "fixed":
            g.add_edge(p, s, weight=1.0 - alpha)
            g.add_edge("h0", s, weight=alpha)
        else:
            g.add_edge(p, s, attention=teleport)
            g.add_edge("h0", s, attention=teleport)
        g.add_edge(s, w)
        g.add_edge(s, h, weight=1.0 - beta)
        g.add_edge(w, h, weight=beta)
        prev = h
    g.add_node("drop_out", op="dropout", p=dropout)
    g.add_node("lin_out", op="linear", out_features=classes)
    nx.add_path(g, [prev, "drop_out", "lin_out"])
    return g
