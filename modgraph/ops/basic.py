"""The basic ops: input, linear, activations, dropout, layer/batch norm, concat."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import Built, register_op
from .checks import boolean, choice, positive_float, positive_int, probability

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "identity": nn.Identity,
}
ACTIVATION_FUNCTIONS = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "elu": F.elu}


class Linear(nn.Linear):
    """``act(x W^T + b)``, whose connections can be scaled one by one by a neuron-level gate.

    With ``connection_weight`` of shape ``[B, in, out]`` (the paper's attention allocation matrix, one weight per
    connection i -> o and sample) the layer computes ``y_bo = act(sum_i x_bi * a_bio * W_oi + b_o)``.

    Shapes:
        x ``[B, in]``; connection_weight ``[B, in, out]`` or ``None``; output ``[B, out]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str | None = None):
        in_features = positive_int("Linear: in_features", in_features)
        out_features = positive_int("Linear: out_features", out_features)
        if activation is not None:  # an unknown name used to be no activation, silently
            choice("Linear: activation", activation, list(ACTIVATIONS))
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation
        self.act = ACTIVATION_FUNCTIONS.get(activation) if activation else None  # a function: no module call

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", activation={self.activation}" if self.activation else "")

    def reset_parameters(self) -> None:
        # glorot-uniform weights and zero biases, as the paper's TensorFlow models
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, connection_weight: torch.Tensor | None = None) -> torch.Tensor:
        if connection_weight is None:
            y = F.linear(x, self.weight, self.bias)
            return self.act(y) if self.act is not None else y
        if not (isinstance(connection_weight, torch.Tensor) and isinstance(x, torch.Tensor)
                and connection_weight.shape == (x.shape[0], self.in_features, self.out_features) and x.dim() == 2):
            self._connection_fault(x, connection_weight)  # metadata only: a [1, in, out] would broadcast silently
        # (B, in, 1) * (B, in, out) -> scaled inputs per connection, contracted with W^T (in, out)
        y = torch.einsum("bi,bio,io->bo", x, connection_weight, self.weight.t())
        if self.bias is not None:
            y = y + self.bias
        return self.act(y) if self.act is not None else y

    def _connection_fault(self, x, connection_weight) -> None:
        for name, t in (("x", x), ("connection_weight", connection_weight)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"Linear: {name} must be a torch.Tensor, got {type(t).__name__}")
        if x.dim() != 2:
            raise ValueError(f"Linear: x must be a tensor [B, {self.in_features}] with a connection_weight, got shape "
                             f"{tuple(x.shape)}")
        raise ValueError(f"Linear: connection_weight must be a tensor [B, in, out] = [{x.shape[0]}, "
                         f"{self.in_features}, {self.out_features}] (one weight per connection and sample), got shape "
                         f"{tuple(connection_weight.shape)}")


@register_op("input", takes_input=False)
def input_(features: int) -> Built:
    """A source of the network: the tensor given to ``forward`` under this node's name, ``[B, features]``."""
    return Built(None, positive_int("features", features))


@register_op("linear")
def linear(in_features: int, out_features: int, bias: bool = True, activation: str | None = None) -> Built:
    """Fully connected layer with glorot-uniform init and an optional activation (relu, tanh, sigmoid, elu)."""
    out_features = positive_int("out_features", out_features)
    boolean("bias", bias)
    if activation is not None:
        choice("activation", activation, list(ACTIVATIONS))
    return Built(Linear(in_features, out_features, bias, activation), out_features)


def _activation_op(name: str, module_cls):
    def builder(in_features: int) -> Built:
        return Built(module_cls(), in_features)

    builder.__doc__ = f"Elementwise {name}."
    register_op(name)(builder)


for _name, _cls in ACTIVATIONS.items():
    _activation_op(_name, _cls)


@register_op("dropout")
def dropout(in_features: int, p: float = 0.5) -> Built:
    """Dropout with probability ``p`` in training mode, identity in eval mode."""
    return Built(nn.Dropout(probability("p", p)), in_features)


@register_op("layer_norm")
def layer_norm(in_features: int, eps: float = 1e-5, affine: bool = True) -> Built:
    """Layer normalisation over the feature dimension."""
    norm = nn.LayerNorm(in_features, eps=positive_float("eps", eps), elementwise_affine=boolean("affine", affine))
    return Built(norm, in_features)


@register_op("batch_norm")
def batch_norm(in_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> Built:
    """Batch normalisation over the batch (or node) dimension of ``[B, features]`` inputs."""
    return Built(nn.BatchNorm1d(in_features, eps=positive_float("eps", eps), momentum=probability("momentum", momentum),
                                affine=boolean("affine", affine)), in_features)


@register_op("concat", merge="concat")
def concat(in_features: int) -> Built:
    """Concatenate the in-edges along the feature dimension (the merge does the work; the op passes it on)."""
    return Built(None, in_features)
