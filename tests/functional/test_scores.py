"""Bad input to modgraph.functional.scores.pair_scores is named, never a broadcast error from torch."""

import pytest
import torch

from modgraph.functional.scores import pair_scores

K, Q, V = torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(2, 4)


@pytest.mark.parametrize("v, match", [
    (torch.randn(4), r"v must be a tensor \[\.\.\., heads, dim\], got shape \(4,\)"),  # broadcast silently before
    (torch.randn(1, 1), r"v must be a tensor \[heads, dim\] = \[2, 4\] \(score 'additive'\), got shape \(1, 1\)"),
    (torch.randn(3, 4), r"v must be a tensor \[heads, dim\] = \[2, 4\].*got shape \(3, 4\)"),
    (torch.randn(2, 5), r"v must be a tensor \[heads, dim\] = \[2, 4\].*got shape \(2, 5\)"),
])
def test_wrong_v_is_named(v, match):
    with pytest.raises(ValueError, match=match):
        pair_scores("additive", K, Q, v)


def test_wrong_keys_and_queries_are_named():
    with pytest.raises(TypeError, match="pair_scores: keys must be a torch.Tensor, got list"):
        pair_scores("dot", [1.0], [1.0])
    with pytest.raises(ValueError, match=r"keys and queries must have one width dim, got keys \(3, 2, 4\) and "
                                         r"queries \(3, 2, 5\)"):
        pair_scores("dot", K, torch.randn(3, 2, 5))
    with pytest.raises(ValueError, match=r"keys \(3, 2, 4\) and queries \(5, 2, 4\) do not broadcast"):
        pair_scores("dot", K, torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"keys must be a tensor \[\.\.\., heads, dim\], got shape \(\)"):
        pair_scores("scaled_dot", torch.tensor(1.0), torch.tensor(1.0))  # an IndexError before
    with pytest.raises(ValueError, match="negative_slope must be a finite number, got 'a'"):
        pair_scores("gat", K, Q, V, negative_slope="a")


@pytest.mark.parametrize("kind", ["additive", "mlp", "gat", "dot", "scaled_dot", "cosine"])
def test_valid_scores_unchanged_and_a_vector_of_another_shape_refused(kind):
    ref = {"additive": (torch.tanh(K + Q) * V).sum(-1), "mlp": (torch.relu(K + Q) * V).sum(-1),
           "gat": torch.nn.functional.leaky_relu(((K + Q) * V).sum(-1), 0.2), "dot": (K * Q).sum(-1),
           "scaled_dot": (K * Q).sum(-1) / 2, "cosine": torch.nn.functional.cosine_similarity(K, Q, dim=-1)}[kind]
    assert torch.equal(pair_scores(kind, K, Q, V), ref)
    assert pair_scores(kind, K[:, :1], Q, V).shape == (3, 2)  # keys broadcast over the heads
    if kind in ("additive", "mlp", "gat"):
        with pytest.raises(ValueError, match=r"v must be a tensor \[heads, dim\] = \[2, 4\]"):
            pair_scores(kind, K, Q, V[:1, :1])
    else:
        with pytest.raises(ValueError, match=r"keys and queries must have one width dim, got keys \(3, 2, 4\)"):
            pair_scores(kind, K, Q[..., :3])
