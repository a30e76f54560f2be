"""Bad arguments to the ops of modgraph.ops.basic built directly: named, never silently ignored or broadcast."""

import pytest
import torch

from modgraph.ops.basic import Linear


def test_linear_refuses_unknown_activation_and_sizes():
    # an unknown activation used to mean no activation at all, silently
    with pytest.raises(ValueError, match="Linear: activation must be one of 'relu', .* got 'relux'"):
        Linear(3, 2, activation="relux")
    with pytest.raises(ValueError, match="Linear: in_features must be a positive integer, got 0"):
        Linear(0, 2)
    with pytest.raises(ValueError, match="Linear: out_features must be a positive integer, got True"):
        Linear(3, True)


@pytest.mark.parametrize("cw, match", [
    (torch.rand(1, 3, 2), r"connection_weight must be a tensor \[B, in, out\] = \[4, 3, 2\] \(one weight per "
                          r"connection and sample\), got shape \(1, 3, 2\)"),  # broadcast silently before
    (torch.rand(4, 3, 3), r"= \[4, 3, 2\].*got shape \(4, 3, 3\)"),
    (torch.rand(3, 2), r"= \[4, 3, 2\].*got shape \(3, 2\)"),
])
def test_linear_names_a_wrong_connection_weight(cw, match):
    with pytest.raises(ValueError, match=match):
        Linear(3, 2)(torch.randn(4, 3), cw)


def test_linear_valid_connection_weight_unchanged():
    layer, x, cw = Linear(3, 2, activation="tanh"), torch.randn(4, 3), torch.rand(4, 3, 2)
    ref = torch.tanh(torch.einsum("bi,bio,io->bo", x, cw, layer.weight.t()) + layer.bias)
    assert torch.equal(layer(x, cw), ref)
    with pytest.raises(TypeError, match="Linear: connection_weight must be a torch.Tensor, got list"):
        layer(x, cw.tolist())
