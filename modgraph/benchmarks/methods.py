"""The methods compared on the UCI tables: one MLP, differing only in the sparsity/regularisation term.

Every method trains the same single-hidden-layer network (a ``ModuleGraph``: ``x -> h -> y``); the attention
methods add the paper's ``[hidden, out]`` sigmoid allocator on the edge ``h -> y`` (the core neuron-level gate).
Every method gets the same tuning budget: one knob with the same number of candidates, chosen on the inner
validation split.

========================  =========  ===================================================  =============
method                    attention  added to the loss                                    tuned knob
========================  =========  ===================================================  =============
``plain``                 no         nothing                                              learning rate
``wd`` (WDBP)             no         ``lam * sum w^2`` over both weight matrices          ``lam``
``we`` (WEBP)             no         ``lam * sum (w/w0)^2 / (1 + (w/w0)^2)``, ``w0 = 1``  ``lam``
``sgl`` (SGLBP)           no         ``lam * sum_j f(||g_j||)``, smoothed group lasso     ``lam``
``attention``             yes        nothing                                              learning rate
``attention+sgl``         yes        as ``sgl``                                           ``lam``
========================  =========  ===================================================  =============

The group ``g_j`` of hidden neuron ``j`` holds all its weights: its incoming row of the first layer and its
outgoing column of the second, so a group driven to zero removes the neuron (Wang, Xu, Yang & Zurada, TNNLS 2018).
Biases are not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import torch

from ..functional.regularizers import smoothing_group_lasso, weight_decay, weight_elimination
from ..models.mlp import attention_mlp

PENALTIES = ("wd", "we", "sgl")
LR_GRID = (0.01, 0.03, 0.1)  # around the protocol's default 0.03
LAMBDA_GRID = (1e-4, 1e-3, 1e-2)
W0 = 1.0  # weight elimination's scale
SGL_A = 0.1  # smoothing radius of the group lasso


@dataclass(frozen=True)
class Method:
    name: str
    attention: bool  # the network has the [hidden, out] sigmoid allocator on h -> y
    penalty: str | None  # "wd", "we", "sgl" or None
    knob: str  # what the candidates vary: "lr" or "lam"
    grid: tuple[float, ...]  # the candidates (the same number for every method)
    paper: str | None = None  # the column of the paper's Table 2 it corresponds to

    def to_dict(self) -> dict:
        return {"name": self.name, "attention": self.attention, "penalty": self.penalty, "knob": self.knob,
                "grid": list(self.grid), "paper": self.paper}


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("plain", False, None, "lr", LR_GRID),
        Method("wd", False, "wd", "lam", LAMBDA_GRID, paper="WDBP"),
        Method("we", False, "we", "lam", LAMBDA_GRID, paper="WEBP"),
        Method("sgl", False, "sgl", "lam", LAMBDA_GRID, paper="SGLBP"),
        Method("attention", True, None, "lr", LR_GRID, paper="attention"),
        Method("attention+sgl", True, "sgl", "lam", LAMBDA_GRID),
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def mlp_graph(features: int, hidden: int, classes: int, attention: bool) -> nx.DiGraph:
    """The paper's network as a DAG: ``x -> h`` (sigmoid) ``-> y`` (logits), glorot-uniform weights (the
    ``linear`` op's init). With ``attention`` the edge ``h -> y`` carries the sigmoid allocator: one weight per
    connection and sample, computed from ``h`` by a fully connected layer (``[hidden, out]`` per sample)."""
    return attention_mlp(features, hidden, classes, "sigmoid" if attention else None)


def penalty(kind: str, first: torch.Tensor, second: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """The unscaled penalty of an MLP with weights ``first`` ``[*B, hidden, in]`` and ``second`` ``[*B, out, hidden]``.

    Returns ``[*B]`` (one value per ensemble member with ``batch_dims=1``).
    """
    if kind == "wd":
        return weight_decay([first, second], batch_dims=batch_dims)
    if kind == "we":
        return weight_elimination([first, second], w0=W0, batch_dims=batch_dims)
    if kind == "sgl":
        groups = torch.cat([first, second.transpose(-1, -2)], dim=-1)  # (*B, hidden, in + out): one row per neuron
        return smoothing_group_lasso(groups, dim=-1, a=SGL_A, batch_dims=batch_dims)
    raise ValueError(f"unknown penalty {kind!r}; valid: {', '.join(PENALTIES)}")
