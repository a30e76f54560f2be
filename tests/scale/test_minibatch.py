import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

import modgraph as mg
from modgraph import models
from modgraph.data import sbm_graph
from modgraph.functional.gcn_norm import gcn_norm
from modgraph.scale.minibatch import BatchStream, MiniBatchTask, evaluate_loader, seed_loss, train_epoch
from modgraph.scale.sampler import neighbor_loader
from modgraph.train import TrainingDiverged, fit


def small_net(conv="attention", **kw):
    torch.manual_seed(0)
    if conv == "gcn":
        return mg.ModuleGraph(models.gcn_net(8, 3, conv="gcn", hidden=8, dropout=0.0))
    return mg.ModuleGraph(models.gcn_net(8, 3, conv="attention", hidden=8, heads=2, dropout=0.0, **kw))


def test_the_loss_counts_the_seed_nodes_only():
    net = small_net().eval()
    batch = Data(x=torch.randn(6, 8), edge_index=torch.tensor([[3, 4, 5, 1], [0, 1, 2, 0]]),
                 y=torch.tensor([0, 1, 2, 0, 1, 2]))
    batch.batch_size = 3
    loss = seed_loss(net, batch)
    expected = F.cross_entropy(net(batch.x, edge_index=batch.edge_index)[:3], batch.y[:3])
    torch.testing.assert_close(loss, expected)
    batch.y = torch.tensor([0, 1, 2, 2, 2, 0])  # labels of the sampled neighbours play no role
    torch.testing.assert_close(seed_loss(net, batch), expected)


def test_each_batch_gets_its_own_gcn_normalisation():
    data = sbm_graph(400, num_classes=3, avg_degree=6, num_features=8, seed=0)
    torch.manual_seed(0)
    first, second = list(zip(range(2), neighbor_loader(data, [5, 5], batch_size=16, shuffle=True)))
    b1, b2 = first[1], second[1]
    for conv in ("gcn", "attention"):
        net = small_net(conv).eval()
        fresh = copy.deepcopy(net)  # its caches are empty
        net(b1.x, edge_index=b1.edge_index)
        out = net(b2.x, edge_index=b2.edge_index)
        torch.testing.assert_close(out, fresh(b2.x, edge_index=b2.edge_index), rtol=0, atol=0)
        cached = net.nodes["conv1"]._norm_cache._value
        expected = gcn_norm(b2.edge_index, b2.num_nodes)
        assert torch.equal(cached.edge_index, expected.edge_index)
        assert torch.equal(cached.edge_weight, expected.edge_weight)


def test_all_neighbours_give_the_full_batch_output_on_the_seeds():
    # GAT-style propagation (combine="replace") depends only on a node's in-neighbourhood, which [-1, -1] keeps
    data = sbm_graph(300, num_classes=3, avg_degree=6, num_features=8, seed=3)
    net = small_net(combine="replace").eval()
    full = net(data.x, edge_index=data.edge_index)
    for batch in neighbor_loader(data, [-1, -1], batch_size=64):
        n = batch.batch_size
        torch.testing.assert_close(net(batch.x, edge_index=batch.edge_index)[:n], full[batch.n_id[:n]])


def test_batch_stream_runs_epoch_after_epoch_and_sets_the_epoch():
    class Sampler:
        epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    class Loader(list):
        sampler = Sampler()

    stream = BatchStream(Loader(["a", "b"]))
    assert [next(stream) for _ in range(5)] == ["a", "b", "a", "b", "a"]
    assert stream.epoch == 2 and Loader.sampler.epochs == [0, 1, 2] and stream.steps_per_epoch == 2


def test_fit_trains_on_sampled_batches():
    data = sbm_graph(600, num_classes=3, avg_degree=8, num_features=8, seed=0)
    train = neighbor_loader(data, [5, 5], batch_size=64, input_nodes=data.train_mask, shuffle=True)
    val = neighbor_loader(data, [5, 5], batch_size=256, input_nodes=data.val_mask)
    net = small_net()
    task = MiniBatchTask(train, val)
    before = evaluate_loader(net.eval(), val)["accuracy"]
    result = fit(net, task.loss, task.evaluate, steps=4 * task.steps_per_epoch, eval_every=task.steps_per_epoch,
                 optimizer=lambda p: torch.optim.Adam(p, lr=0.02))
    assert task.steps_per_epoch == 6 and result.steps == 24 and len(result.history) == 4
    assert task.last_eval["seeds"] == int(data.val_mask.sum())
    assert result.best_score > max(0.6, before)  # 3 classes: chance is 1/3
    stats = train_epoch(net.train(), train, torch.optim.Adam(net.parameters(), lr=0.01))
    assert stats["batches"] == 6 and stats["seeds"] == int(data.train_mask.sum())


def test_evaluation_over_no_seed_nodes_is_refused():
    data = sbm_graph(60, num_classes=3, avg_degree=4, num_features=8, seed=0)
    empty = neighbor_loader(data, [2], batch_size=16, input_nodes=torch.zeros(60, dtype=torch.bool))
    with pytest.raises(ValueError, match="the loader gave no seed nodes"):
        evaluate_loader(small_net().eval(), empty)


def test_a_diverged_network_stops_fit_instead_of_being_selected_by_its_accuracy():
    """Accuracy stays a number when the logits are NaN (argmax picks a class); the task reports NaN, and fit
    raises TrainingDiverged."""
    data = sbm_graph(120, num_classes=3, avg_degree=4, num_features=8, seed=0)
    train = neighbor_loader(data, [3], batch_size=32, input_nodes=data.train_mask, shuffle=True)
    val = neighbor_loader(data, [3], batch_size=64, input_nodes=data.val_mask)
    net = small_net()
    task = MiniBatchTask(train, val)
    assert task.evaluate(net.eval()) == task.last_eval["accuracy"]
    with torch.no_grad():
        next(iter(net.parameters())).fill_(float("nan"))
    assert math.isnan(task.evaluate(net.eval())) and 0.0 <= task.last_eval["accuracy"] <= 1.0
    with pytest.raises(TrainingDiverged, match="evaluate returned NaN at step 1"):
        fit(net, task.loss, task.evaluate, steps=2, eval_every=1)
