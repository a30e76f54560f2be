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


class EpochSampler:
    """Records ``set_epoch`` calls, as a ``DistributedSampler`` receives them."""

    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class EpochLoader(list):
    """A list of batches with a sampler, as a loader over a ``DistributedSampler``."""

    def __init__(self, batches):
        super().__init__(batches)
        self.sampler = EpochSampler()


def test_batch_stream_runs_epoch_after_epoch_and_sets_the_epoch():
    loader = EpochLoader(["a", "b"])
    stream = BatchStream(loader)
    assert [next(stream) for _ in range(5)] == ["a", "b", "a", "b", "a"]
    assert stream.epoch == 2 and loader.sampler.epochs == [0, 1, 2] and stream.steps_per_epoch == 2


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


def hand_batch(x, y, seeds, edge_index=None):
    batch = Data(x=x, y=y, edge_index=torch.zeros(2, 0, dtype=torch.long) if edge_index is None else edge_index)
    batch.batch_size = seeds
    return batch


class Logits(torch.nn.Module):
    """A network whose output is its input, the logits of each node (and one weight, so it trains)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x, edge_index):
        return self.scale * x


def test_evaluation_counts_the_seeds_of_every_batch_by_hand():
    b1 = hand_batch(torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]), torch.tensor([0, 0, 1]), 2)
    b2 = hand_batch(torch.tensor([[0.0, 3.0], [1.0, 0.0]]), torch.tensor([1, 1]), 1)
    seeds_x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    seeds_y = torch.tensor([0, 0, 1])  # the seeds' predictions: 0, 1, 1 -> two right
    loss_sum = F.cross_entropy(seeds_x, seeds_y, reduction="sum").item()
    out = evaluate_loader(Logits().eval(), [b1, b2])
    assert out["seeds"] == 3 and out["accuracy"] == pytest.approx(2 / 3) and out["loss"] == pytest.approx(loss_sum / 3)
    # reduce: another process counted 1 right of 3 seeds with a loss sum of 6
    other = torch.tensor([1.0, 6.0, 3.0], dtype=torch.float64)
    out = evaluate_loader(Logits().eval(), [b1, b2], reduce=lambda t: t + other)
    assert out["seeds"] == 6 and out["accuracy"] == pytest.approx(3 / 6)
    assert out["loss"] == pytest.approx((loss_sum + 6) / 6)


def test_a_batch_without_batch_size_is_all_seeds():
    x, y = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]), torch.tensor([0, 0, 1])
    batch = Data(x=x, y=y, edge_index=torch.zeros(2, 0, dtype=torch.long))  # the whole graph, no batch_size
    torch.testing.assert_close(seed_loss(Logits(), batch), F.cross_entropy(x, y))


def test_the_step_runs_on_the_device_given():
    """A parameterless forward runs where ``device`` says ("meta": no data, only where the tensors are)."""
    seen = []

    def forward(x, edge_index):
        seen.append((x.device.type, edge_index.device.type))
        return x

    batch = hand_batch(torch.randn(3, 2), torch.tensor([0, 1, 0]), 2)
    assert seed_loss(forward, batch, device="meta").device.type == "meta" and seen == [("meta", "meta")]


def test_a_loader_without_batches_is_refused():
    with pytest.raises(ValueError, match="the loader yields no batches"):
        BatchStream([])


def test_the_task_trains_through_forward_with_its_loss_and_evaluates_the_network():
    """forward (the DDP wrapper) runs the training batches only; evaluation runs the network itself (no collective
    inside); the loss given is the one used; the first training epoch is epoch 0 (set_epoch(0))."""
    batches = [hand_batch(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0]), 2)]

    net, calls, loader = Logits(), [], EpochLoader(batches)

    def forward(x, edge_index):
        calls.append(x.size(0))
        return net(x, edge_index=edge_index)

    task = MiniBatchTask(loader, batches, forward=forward, loss=lambda out, y: (out[:, 0] * 10).sum())
    assert task.loss(net).item() == pytest.approx(10.0) and calls == [2] and loader.sampler.epochs == [0]
    assert task.evaluate(net) == 0.0 and calls == [2]  # both predictions wrong; forward not called again


def test_train_epoch_takes_one_optimiser_step_per_batch_as_a_hand_loop_does():
    batches = [hand_batch(torch.randn(4, 3, generator=torch.Generator().manual_seed(i)), torch.tensor([0, 1, 2, 0]), 3,
                          edge_index=torch.tensor([[3] * (i + 1), [0] * (i + 1)])) for i in range(3)]  # 1, 2, 3 edges
    mse = lambda out, y: (out.sum(1) - y).pow(2).mean()  # noqa: E731 - a loss with no class structure
    net = Logits()
    stats = train_epoch(net, batches, torch.optim.SGD(net.parameters(), lr=0.1), loss=mse, max_batches=2)
    ref, losses = Logits(), []
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for b in batches[:2]:
        opt.zero_grad()
        value = mse(ref(b.x, edge_index=b.edge_index)[:3], b.y[:3])
        value.backward()
        opt.step()
        losses.append(value.item())
    torch.testing.assert_close(net.scale, ref.scale)
    assert stats["batches"] == 2 and stats["seeds"] == 6 and stats["loss"] == pytest.approx(sum(losses) / 2)
    assert stats["mean_batch_nodes"] == 4 and stats["mean_batch_edges"] == 1.5


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_train_epoch_refuses_a_max_batches_that_is_not_a_positive_integer(bad):
    # 0 used to take one optimiser step anyway (the limit is checked after each step)
    batch = hand_batch(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 3, edge_index=torch.zeros(2, 0, dtype=torch.long))
    net = Logits()
    before = net.scale.detach().clone()
    with pytest.raises(ValueError, match=rf"max_batches must be a positive integer or None, got {bad!r}"):
        train_epoch(net, [batch], torch.optim.SGD(net.parameters(), lr=0.1), max_batches=bad)
    assert torch.equal(net.scale, before)


def test_train_epoch_over_no_batch_or_without_an_optimiser_is_an_error():
    net = Logits()
    with pytest.raises(ValueError, match=r"^train_epoch: the loader gave no batches \(no seed nodes\? an empty "
                                         r"training split\?\); nothing was trained$"):
        train_epoch(net, [], torch.optim.SGD(net.parameters(), lr=0.1))  # {"loss": 0.0, "batches": 0} before
    for bad in (None, lambda p: torch.optim.SGD(p, lr=0.1)):
        with pytest.raises(TypeError, match=r"^train_epoch: optimizer must be a torch\.optim\.Optimizer over the "
                                            rf"network's parameters, got {type(bad).__name__}$"):
            train_epoch(net, [hand_batch(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 3)], bad)


def test_batches_and_loaders_of_the_wrong_kind_are_named():
    net = Logits()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for missing in ("x", "y"):
        batch = hand_batch(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 3)
        del batch[missing]
        with pytest.raises(ValueError, match=rf"^a batch has no {missing} \(.*\); the loader's graph needs x, "
                                             r"edge_index and y"):
            train_epoch(net, [batch], opt)  # 'NoneType' object has no attribute 'to' before
    data = sbm_graph(30, num_classes=3, num_features=3, seed=0)
    with pytest.raises(TypeError, match=r"^BatchStream: expected a loader of sampled batches .*, got the graph itself "
                                        r"\(Data\)$"):
        MiniBatchTask(data, [data])  # iterated the Data's attributes before
    with pytest.raises(TypeError, match=r"^BatchStream: the loader must be re-iterable with a length .*, got "
                                        r"generator$"):
        MiniBatchTask((b for b in [data]), [data])
    whole = train_epoch(net, [data], opt)  # the whole graph as one batch: every node a seed
    assert whole["seeds"] == 30 and whole["batches"] == 1


# ------------------------------------------------------------------------------------------ host and device
HOST_READS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy")


def _batches(count=4):
    torch.manual_seed(0)
    return [hand_batch(torch.randn(3, 2), torch.tensor([0, 1, 0]), 2) for _ in range(count)]


def test_an_epoch_reads_its_loss_from_the_device_once_not_per_batch():
    """On CUDA each read of a value waits for the GPU: the epoch's losses are summed where they are and read once
    (plain SGD: its step reads nothing). The mean is the one summed batch by batch in Python floats."""
    from ..helpers import TensorCalls

    batches = _batches()
    net = Logits()
    with TensorCalls(*HOST_READS) as calls:
        out = train_epoch(net, batches, torch.optim.SGD(net.parameters(), lr=0.1))
    assert out["batches"] == 4 and calls.total() == 1, calls.counts
    net, expect = Logits(), 0.0
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for batch in batches:
        opt.zero_grad()
        value = seed_loss(net, batch)
        value.backward()
        opt.step()
        expect += float(value)
    assert out["loss"] == expect / 4


def test_evaluation_makes_no_tensor_from_host_data_per_batch():
    """A tensor built from a Python number on a GPU is a copy the host waits for; the seed count is filled in on
    the device instead, and the totals are read once."""
    from ..helpers import TensorCalls

    net, batches = Logits().eval(), _batches()
    with TensorCalls("tensor", "as_tensor", *HOST_READS) as calls:
        out = evaluate_loader(net, batches)
    assert out["seeds"] == 8 and calls.total() == 1 and calls.counts["tolist"] == 1, calls.counts


def test_callables_devices_and_loaders_of_the_wrong_kind_are_named():
    from modgraph.scale.sampler import TorchNeighborSampler, neighbor_loader, sample_neighbors

    data = sbm_graph(40, 3, num_features=8, seed=0)
    loader = neighbor_loader(data, [2], batch_size=8)
    net = small_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    calls = [
        (lambda: seed_loss(net, next(iter(loader)), device="gpu"), ValueError,
         r"device must be a torch\.device such as 'cpu' or 'cuda:0' \(or None: .*got 'gpu'"),
        (lambda: seed_loss(net, next(iter(loader)), loss=5), TypeError, r"seed_loss: loss must be callable"),
        (lambda: evaluate_loader(None, loader), TypeError, r"evaluate_loader: forward must be callable, got NoneType"),
        (lambda: evaluate_loader(net, loader, reduce=5), TypeError, r"evaluate_loader: reduce must be callable"),
        (lambda: evaluate_loader(net, 5), TypeError, r"evaluate_loader: loader must be a loader of sampled batches"),
        (lambda: MiniBatchTask(loader, 5), TypeError, r"MiniBatchTask: val must be a loader of sampled batches"),
        (lambda: MiniBatchTask(loader, loader, loss=5), TypeError, r"MiniBatchTask: loss must be callable"),
        (lambda: MiniBatchTask(loader, loader, forward=5), TypeError, r"MiniBatchTask: forward must be callable"),
        (lambda: MiniBatchTask(loader, loader, device="gpu"), ValueError, r"device must be a torch\.device"),
        (lambda: train_epoch(net, 5, opt), TypeError, r"train_epoch: loader must be a loader of sampled batches"),
        (lambda: train_epoch(net, loader, opt, progress=5), TypeError, r"train_epoch: progress must be callable"),
        (lambda: neighbor_loader(data, [2], batch_size=4, replace="no"), TypeError,  # before: taken as True
         r"neighbor_loader: replace must be true or false, got 'no'"),
        (lambda: TorchNeighborSampler(data, [2], replace="no"), TypeError,
         r"TorchNeighborSampler: replace must be true or false, got 'no'"),
        (lambda: sample_neighbors(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), torch.tensor([0]), 1.5), ValueError,
         r"sample_neighbors: k must be an integer \(edges per node; -1: all\), got 1\.5"),
        (lambda: sample_neighbors(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), [0], 1), TypeError,
         r"sample_neighbors: nodes must be a tensor"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call()
    assert MiniBatchTask(loader, loader, device="cpu").device == torch.device("cpu")
