"""Graph sparsification: lowest-scored edges go; self-loops and both directions are handled explicitly."""

import pytest
import torch

import modgraph as mg
from modgraph.prune import AttentionImportance, MagnitudeImportance, sparsify_edges
from modgraph.record import EdgeRecorder

EI = torch.tensor([[0, 1, 1, 2, 0, 1, 2], [1, 0, 2, 1, 0, 1, 2]])  # 2 undirected edges, 3 self-loops
SCORES = torch.tensor([0.9, 0.7, 0.1, 0.3, 0.05, 0.2, 0.6])


def test_self_loops_are_kept_dropped_or_pruned():
    kept, keep = sparsify_edges(EI, SCORES, sparsity=0.5)
    assert keep.tolist() == [True, True, False, False, True, True, True]  # 2 of 4 non-loops, loops untouched
    kept, keep = sparsify_edges(EI, SCORES, sparsity=0.5, self_loops="drop")
    assert kept.tolist() == [[0, 1], [1, 0]]
    _, keep = sparsify_edges(EI, SCORES, sparsity=3 / 7, self_loops="prune")
    assert keep.tolist() == [True, True, False, True, False, False, True]


def test_symmetric_pairs_go_together_by_their_mean_score():
    scores = torch.tensor([0.9, 0.1, 0.4, 0.45, 1.0, 1.0, 1.0])  # pair {0,1}: 0.5, pair {1,2}: 0.425
    _, keep = sparsify_edges(EI, scores, sparsity=0.5, symmetric=True)
    assert keep.tolist() == [True, True, False, False, True, True, True]
    _, keep = sparsify_edges(EI, scores, sparsity=0.5)
    assert keep.tolist() == [True, False, False, True, True, True, True]


def test_threshold_and_errors():
    _, keep = sparsify_edges(EI, SCORES, threshold=0.5)  # below 0.45 of the largest non-loop score 0.9
    assert keep.tolist() == [True, True, False, False, True, True, True]
    with pytest.raises(mg.PruneError, match=r"expected one score per edge, \[7\], got \(6,\)"):
        sparsify_edges(EI, SCORES[:6], sparsity=0.5)
    with pytest.raises(mg.PruneError, match="self_loops must be one of keep, drop, prune, got 'add'"):
        sparsify_edges(EI, SCORES, sparsity=0.5, self_loops="add")
    with pytest.raises(mg.PruneError, match=r"sparsity must be a number in \[0, 1\)"):
        sparsify_edges(EI, SCORES, sparsity=1)


def test_attention_scores_graph_edges_from_a_recorded_graph_gate():
    gate = mg.Gate("softmax", level="graph", name="conv")
    rec = EdgeRecorder().attach(gates=[gate])
    recorded = torch.cat([EI[:, :4], torch.tensor([[0, 1, 2], [0, 1, 2]])], dim=1)  # as a conv adds self-loops
    torch.manual_seed(0)
    weights = [gate(torch.randn(7, 1), index=recorded[1], num_segments=3, edge_index=recorded) for _ in range(3)]
    rec.epoch_end()
    mean = torch.stack(weights).mean(0).squeeze(-1)
    target = EI[:, [3, 0, 2]]
    torch.testing.assert_close(AttentionImportance(rec).graph_edges(None, target), mean[[3, 0, 2]])
    in_edges = torch.bincount(recorded[1]).float()[recorded[1]]  # targets 0, 1, 2 have 2, 3, 2 in-edges
    torch.testing.assert_close(AttentionImportance(rec, relative=True).graph_edges(None, target),
                               (mean * in_edges)[[3, 0, 2]])
    with pytest.raises(mg.PruneError, match=r"graph gate 'conv' never weighted edge 2 -> 0 \(column 0"):
        AttentionImportance(rec).graph_edges(None, torch.tensor([[2], [0]]))


def test_magnitude_scores_graph_edges_by_their_gcn_coefficient():
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    ref_index, ref_weight = gcn_norm(edge_index, num_nodes=4, add_self_loops=True)
    ref = {(int(s), int(d)): float(w) for (s, d), w in zip(ref_index.t(), ref_weight)}
    scores = MagnitudeImportance().graph_edges(None, edge_index)
    assert scores.tolist() == pytest.approx([ref[(int(s), int(d))] for s, d in edge_index.t()])


def test_bad_scores_and_graphs_are_named():
    with pytest.raises(TypeError, match=r"^scores must be a tensor \[E\], one per column of edge_index, got list$"):
        sparsify_edges(EI, SCORES.tolist(), sparsity=0.5)
    nan = SCORES.clone()
    nan[2] = float("nan")  # ranked above every number by argsort: kept, silently
    with pytest.raises(mg.PruneError, match=r"^scores: NaN for edge 1 -> 2 \(column 2, 1 NaN in all\); every edge "
                                            r"that is ranked needs a score$"):
        sparsify_edges(EI, nan, sparsity=0.5)
    with pytest.raises(TypeError, match=r"^edge_index must hold integer node ids \(torch\.long\), got torch\.float32$"):
        sparsify_edges(EI.float(), SCORES, sparsity=0.5)
    with pytest.raises(TypeError, match=r"^symmetric must be true or false, got 'no'$"):
        sparsify_edges(EI, SCORES, sparsity=0.5, symmetric="no")


def test_infinite_scores_are_named():
    for bad in (float("inf"), -float("inf")):  # inf: every other edge normalised to 0 and dropped, silently, before
        scores = SCORES.clone()
        scores[2] = bad
        with pytest.raises(mg.PruneError, match=rf"^scores: {bad} for edge 1 -> 2 \(column 2, 1 infinite in all\); "
                                                rf"scores must be finite numbers$"):
            sparsify_edges(EI, scores, threshold=0.5)
    scores = SCORES.clone()
    scores[4] = float("inf")  # a self-loop that is kept, not ranked: its score is not read
    _, keep = sparsify_edges(EI, scores, threshold=0.5)
    assert keep.tolist() == [True, True, False, False, True, True, True]
