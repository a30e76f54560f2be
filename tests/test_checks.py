"""modgraph.checks: one rule for integers, numbers and flags, and the public sites that use it accept numpy scalars;
one check of a graph's edge_index, and every site that takes one refuses a bad one through it."""

import json
import math
import re

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph import checks
from modgraph.benchmarks.uci import Protocol
from modgraph.compile import compile_graph
from modgraph.functional.gcn_norm import EdgeIndexCache, cached_gcn_norm, gcn_norm
from modgraph.ops import checks as op_checks
from modgraph.protocols import cv_splits, stratified_holdout, stratified_kfold
from modgraph.train import fit

from .helpers import TensorCalls, mlp_graph

INF, NAN = float("inf"), float("nan")


# ----------------------------------------------------------------------------------------------------
# the module


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_integer_accepts_python_and_numpy_integers_as_an_int(value):
    got = checks.integer("n", value)
    assert got == 3 and type(got) is int
    assert checks.is_integer(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 3.0, np.float64(3.0), "3", None, torch.tensor(3)])
def test_integer_refuses_bools_floats_and_the_rest(value):
    with pytest.raises(ValueError, match=f"^n must be an integer, got {re.escape(repr(value))}$"):
        checks.integer("n", value)
    assert not checks.is_integer(value)


def test_integer_bounds_are_inclusive_and_say_so():
    assert checks.integer("n", 1, least=1) == 1 and checks.integer("n", 4, least=2, most=4) == 4
    assert checks.integer("n", 0, least=0) == 0 and checks.integer("n", -1, most=-1) == -1
    cases = [(dict(least=1), 0, "a positive integer"), (dict(least=0), -1, "a non-negative integer"),
             (dict(least=2), 1, "an integer >= 2"), (dict(most=3), 4, "an integer <= 3"),
             (dict(least=2, most=4), 5, r"an integer in \[2, 4\]"),
             (dict(least=2, most=4), 1, r"an integer in \[2, 4\]")]
    for bounds, value, what in cases:
        with pytest.raises(ValueError, match=f"^n must be {what}, got {value}$"):
            checks.integer("n", value, **bounds)


def test_messages_name_the_argument_and_the_value():
    with pytest.raises(ValueError, match=r"^eval_every must be a positive integer, got 0$"):
        checks.positive_int("eval_every", 0)
    got = re.escape(repr(np.int64(0)))  # np.int64(0) with numpy 2
    with pytest.raises(ValueError, match=f"^eval_every must be a positive integer, got {got}$"):
        checks.positive_int("eval_every", np.int64(0))
    with pytest.raises(ValueError, match=r"^folds must be an integer in \[2, 4\] \(the number of samples\), got 5$"):
        checks.integer("folds", 5, least=2, most=4, why="the number of samples")
    with pytest.raises(ValueError, match=r"^fraction must be a number in \(0, 1\), got 1$"):
        checks.number("fraction", 1, low=0, high=1, low_open=True, high_open=True)


def test_optional_accepts_none_and_says_so():
    assert checks.positive_int("patience", None, optional=True) is None
    assert checks.number("lr", None, optional=True) is None
    with pytest.raises(ValueError, match=r"^patience must be a positive integer or None, got 0$"):
        checks.positive_int("patience", 0, optional=True)
    with pytest.raises(ValueError, match=r"^patience must be a positive integer, got None$"):
        checks.positive_int("patience", None)


def test_the_error_class_is_the_callers():
    with pytest.raises(mg.GraphSpecError, match="^node 'h': width must be a positive integer, got 0$"):
        checks.positive_int("node 'h': width", 0, error=mg.GraphSpecError)
    with pytest.raises(TypeError, match="^epoch must be an integer, got 'last'$"):
        checks.integer("epoch", "last", error=TypeError)
    with pytest.raises(mg.PruneError):
        checks.number("sparsity", 1.0, low=0, high=1, high_open=True, error=mg.PruneError)
    with pytest.raises(TypeError, match="^on must be true or false, got 1$"):
        checks.flag("on", 1, error=TypeError)


@pytest.mark.parametrize("value", [2, 0.5, np.float32(0.5), np.float64(0.5), np.int64(2), np.uint8(2)])
def test_number_accepts_python_and_numpy_reals_as_a_float(value):
    got = checks.number("x", value)
    assert got == float(value) and type(got) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, 1j, torch.tensor(0.5)])
def test_number_refuses_bools_and_non_reals(value):
    with pytest.raises(ValueError, match=f"^x must be a finite number, got {re.escape(repr(value))}$"):
        checks.number("x", value)


@pytest.mark.parametrize("value", [NAN, INF, -INF, np.float32(NAN), np.float64(INF)])
def test_number_refuses_nan_and_infinities_where_finite(value):
    with pytest.raises(ValueError, match="^x must be a finite number, got"):
        checks.number("x", value)
    with pytest.raises(ValueError, match="^x must be a finite number > 0, got"):
        checks.number("x", value, low=0, low_open=True)


def test_number_without_finite_takes_infinity_but_never_nan():
    assert checks.number("w0", INF, low=0, low_open=True, finite=False) == INF
    for value in (NAN, np.float32(NAN)):
        with pytest.raises(ValueError, match=f"^w0 must be a number > 0, got {re.escape(repr(value))}$"):
            checks.number("w0", value, low=0, low_open=True, finite=False)
    with pytest.raises(ValueError, match="^w0 must be a number > 0, got 0$"):
        checks.number("w0", 0, low=0, low_open=True, finite=False)


def test_number_bounds_open_or_closed():
    assert checks.number("p", 0, low=0, high=1, high_open=True) == 0.0
    assert checks.number("t", 1, low=0, high=1) == 1.0
    assert checks.number("tol", 0, low=0) == 0.0 and checks.number("y", -1, high=-1) == -1.0
    cases = [(dict(low=0, high=1, high_open=True), 1, r"a number in \[0, 1\)"),
             (dict(low=0, high=1, low_open=True), 0, r"a number in \(0, 1\]"),
             (dict(low=0, high=1), 1.5, r"a number in \[0, 1\]"),
             (dict(low=0, low_open=True), 0, "a finite number > 0"), (dict(low=0), -0.5, "a finite number >= 0"),
             (dict(high=2, high_open=True), 2, "a finite number < 2"), (dict(high=2), 3, "a finite number <= 2"),
             (dict(low=0.5, high=1.5), 2, r"a number in \[0.5, 1.5\]")]
    for bounds, value, what in cases:
        with pytest.raises(ValueError, match=f"^x must be {what}, got {value}$"):
            checks.number("x", value, **bounds)


def test_flag_is_a_bool_only():
    assert checks.flag("bias", True) is True and checks.flag("bias", False) is False
    for value in (1, 0, np.bool_(True), "true", None):
        with pytest.raises(ValueError, match=f"^bias must be true or false, got {re.escape(repr(value))}$"):
            checks.flag("bias", value)


def test_choice():
    assert checks.choice("reduce", "max", ("mean", "max")) == "max"
    with pytest.raises(ValueError, match="^reduce must be one of 'mean', 'max', got 'min'$"):
        checks.choice("reduce", "min", ("mean", "max"))


def test_op_checks_are_the_shared_ones_raising_value_error():
    assert op_checks.positive_int is checks.positive_int and op_checks.choice is checks.choice
    assert op_checks.boolean is checks.flag
    assert type(op_checks.positive_int("heads", np.int64(2))) is int
    assert op_checks.probability("p", np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\), got 1$"):
        op_checks.probability("p", 1)
    with pytest.raises(ValueError, match="^eps must be a finite number > 0, got inf$"):  # inf was accepted
        op_checks.positive_float("eps", INF)


# ----------------------------------------------------------------------------------------------------
# public sites: a numpy scalar gives what the Python number gives (all four were refused before)


def _fit(eval_every, patience):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    result = fit(net, lambda n: F.cross_entropy(n(x), y), lambda n: float((n(x).argmax(1) == y).float().mean()),
                 steps=12, eval_every=eval_every, patience=patience)
    return result, net


@pytest.mark.parametrize("eval_every, patience", [(np.int64(3), 2), (3, np.int32(2))])
def test_fit_takes_numpy_eval_every_and_patience(eval_every, patience):
    (py, py_net), (np_result, np_net) = _fit(3, 2), _fit(eval_every, patience)
    assert np_result.history == py.history and np_result.steps == py.steps and np_result.best_step == py.best_step
    assert len(py.history) == 4
    for a, b in zip(py_net.parameters(), np_net.parameters()):
        assert torch.equal(a, b)


def test_cv_takes_numpy_folds_and_fractions():
    y = np.repeat(np.arange(3), [20, 12, 8])
    for (a_train, a_test), (b_train, b_test) in zip(stratified_kfold(y, np.int64(4), seed=1),
                                                    stratified_kfold(y, 4, seed=1)):
        assert np.array_equal(a_train, b_train) and np.array_equal(a_test, b_test)
    kept, held = stratified_holdout(y, fraction=np.float32(0.25), seed=2)
    expected = stratified_holdout(y, fraction=0.25, seed=2)
    assert np.array_equal(kept, expected[0]) and np.array_equal(held, expected[1])
    got, want = cv_splits(y, np.int64(3), (0, 1), np.float32(0.25)), cv_splits(y, 3, (0, 1), 0.25)
    assert len(got) == len(want) == 6
    for a, b in zip(got, want):
        assert (a.seed, a.fold) == (b.seed, b.fold)
        assert all(np.array_equal(getattr(a, part), getattr(b, part)) for part in ("train", "val", "test"))


def test_protocol_takes_numpy_settings_and_keeps_python_ones():
    numpy = Protocol(folds=np.int64(3), seeds=[np.int64(0), np.int32(1)], val_fraction=np.float32(0.25),
                     steps=np.int64(60), budget_scale=np.float32(0.5), patience=np.int64(5), eval_every=np.int64(10),
                     lr=np.float64(0.5), rounds=np.uint8(2), tol=np.float32(0.5))
    python = Protocol(folds=3, seeds=[0, 1], val_fraction=0.25, steps=60, budget_scale=0.5, patience=5, eval_every=10,
                      lr=0.5, rounds=2, tol=0.5)
    assert json.dumps(numpy.to_dict()) == json.dumps(python.to_dict())  # numpy scalars are not JSON
    assert {k: type(v) for k, v in numpy.to_dict().items()} == {k: type(v) for k, v in python.to_dict().items()}


def _graph(width, hidden, p):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=width)
    g.add_node("h", op="linear", out_features=width, activation="relu")
    g.add_node("d", op="dropout", p=p)
    g.add_node("y", op="linear", out_features=3)
    g.add_edges_from([("x", "h"), ("h", "d")])
    g.add_edge("d", "y", attention="sigmoid", hidden=hidden)
    return g


def test_op_builders_through_compile_take_numpy_arguments():
    """compile_graph on a graph whose numpy scalars were not made Python ones (ModuleGraph does that first)."""
    torch.manual_seed(0)
    plan, nodes, neuron, _, _ = compile_graph(_graph(np.int64(4), np.int32(8), np.float32(0.25)))
    torch.manual_seed(0)
    want_plan, want_nodes, want_neuron, _, _ = compile_graph(_graph(4, 8, 0.25))
    assert [(s.name, s.width) for s in plan.steps] == [(s.name, s.width) for s in want_plan.steps]
    assert all(type(s.width) is int for s in plan.steps)
    assert repr(nodes) == repr(want_nodes) and repr(neuron) == repr(want_neuron)
    for a, b in zip([*nodes.parameters(), *neuron.parameters()], [*want_nodes.parameters(), *want_neuron.parameters()]):
        assert torch.equal(a, b)
    assert math.isclose(nodes["d"].p, 0.25)


# ----------------------------------------------------------------------------------------------------
# edge_index: one check for gcn_norm (and the graph ops), the neighbour sampler and graph pruning

EI = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
READS = ("tolist", "item", "__int__", "__bool__", "__index__", "__float__")  # what a GPU would wait for


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.int16, torch.uint8])
def test_edge_index_takes_integer_ids_in_range_and_returns_the_tensor(dtype):
    ei = EI.to(dtype)
    assert checks.edge_index("edge_index", ei) is ei
    assert checks.edge_index("edge_index", ei, 3) is ei  # ids 0..2 of 3 nodes
    empty = torch.zeros(2, 0, dtype=dtype)
    assert checks.edge_index("edge_index", empty, 0) is empty  # no edges, no nodes
    if dtype == torch.long:
        assert checks.edge_index("edge_index", ei, 3, dtype=torch.long) is ei


@pytest.mark.parametrize("value, got", [(EI.tolist(), "list"), (EI.numpy(), "ndarray"), (None, "NoneType")])
def test_edge_index_that_is_not_a_tensor_is_a_type_error_naming_what_came(value, got):
    with pytest.raises(TypeError, match=rf"^f: edge_index must be a torch\.Tensor \[2, E\] of integer node ids "
                                        rf"\(torch\.long\), got {got}$"):
        checks.edge_index("f: edge_index", value)
    with pytest.raises(TypeError, match=rf"^f: edge_index must be a torch\.Tensor \[2, E\] of dtype torch\.long, got "
                                        rf"{got}$"):
        checks.edge_index("f: edge_index", value, dtype=torch.long)


@pytest.mark.parametrize("value", [EI.t(), EI[0], EI[None], torch.tensor(0), torch.zeros(3, 0, dtype=torch.long)])
def test_edge_index_of_another_shape_is_refused_naming_the_shape(value):
    with pytest.raises(ValueError, match=rf"^f: edge_index must be a tensor \[2, E\], got shape "
                                         rf"{re.escape(str(tuple(value.shape)))}$"):
        checks.edge_index("f: edge_index", value, 3)
    with pytest.raises(mg.PruneError, match=r"must be a tensor \[2, E\]"):  # the caller's class for a wrong value
        checks.edge_index("f: edge_index", value, error=mg.PruneError)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_edge_index_of_a_dtype_that_is_not_integer_is_a_type_error(dtype):
    with pytest.raises(TypeError, match=rf"^f: edge_index must hold integer node ids \(torch\.long\), got "
                                        rf"{re.escape(str(dtype))}$"):
        checks.edge_index("f: edge_index", EI.to(dtype), 3)


def test_edge_index_of_another_integer_dtype_is_refused_where_long_is_required():
    with pytest.raises(TypeError, match=r"^f: edge_index must hold node ids of dtype torch\.long, got torch\.int32$"):
        checks.edge_index("f: edge_index", EI.int(), 3, dtype=torch.long)


def test_edge_index_names_the_first_edge_out_of_range_its_column_and_the_bound():
    ei = torch.tensor([[0, 1, 7, -2], [1, 0, 2, 1]])
    with pytest.raises(ValueError, match=r"^f: edge_index has the edge 7 -> 2 \(column 2\), which names a node outside "
                                         r"\[0, 3\) \(the graph has 3 nodes; node ids span \[-2, 7\]\)$"):
        checks.edge_index("f: edge_index", ei, 3)
    with pytest.raises(ValueError, match=r"^f: edge_index has the edge 0 -> 1 \(column 0\), which names a node outside "
                                         r"\[0, 1\) \(x has 1 row; node ids span \[0, 2\]\)$"):
        checks.edge_index("f: edge_index", EI, 1, nodes="x has 1 row")  # the caller explains the count
    # without a node count only negative ids are refused
    assert checks.edge_index("f: edge_index", EI + 100) is not None
    with pytest.raises(mg.PruneError, match=r"^f: edge_index has the edge -2 -> 1 \(column 3\), which names a negative "
                                            r"node id \(node ids must be >= 0; the lowest is -2\)$"):
        checks.edge_index("f: edge_index", ei, error=mg.PruneError)


def test_edge_index_reads_the_device_once_and_not_at_all_without_ids():
    for kwargs in (dict(num_nodes=3), {}):
        with TensorCalls(*READS) as calls:
            checks.edge_index("edge_index", EI, **kwargs)
        assert calls.total() == 1, calls.counts
    with TensorCalls(*READS) as calls:
        checks.edge_index("edge_index", EI, ids=False)
    assert calls.total() == 0
    # ids=False reads nothing: the form of a tensor without data is checked, a bad id is not looked for
    meta = torch.empty(2, 5, dtype=torch.long, device="meta")
    assert checks.edge_index("edge_index", meta, 3, dtype=torch.long, ids=False) is meta
    with pytest.raises(TypeError, match="must hold node ids of dtype torch.long"):
        checks.edge_index("edge_index", meta.int(), dtype=torch.long, ids=False)


# every site that takes an edge_index refuses a bad one, saying where


def test_gcn_norm_refuses_a_bad_edge_index():
    with pytest.raises(ValueError, match=r"^gcn_norm: edge_index has the edge 1 -> 2 \(column 2\), which names a node "
                                         r"outside \[0, 2\)"):
        gcn_norm(EI, 2)
    with pytest.raises(TypeError, match=r"^gcn_norm: edge_index must hold node ids of dtype torch\.long, got "
                                        r"torch\.int32$"):  # a ValueError before
        gcn_norm(EI.int(), 3)


def test_graph_ops_refuse_a_bad_edge_index_and_check_the_ids_once_per_tensor():
    from modgraph.ops.gcn import GCNConv

    conv = GCNConv(4, 2)
    with pytest.raises(ValueError, match=r"^gcn_norm: edge_index has the edge 1 -> 2 \(column 2\), which names a node "
                                         r"outside \[0, 2\) \(the graph has 2 nodes; node ids span \[0, 2\]\)$"):
        conv(torch.randn(2, 4), EI)  # one row of x per node: 2 nodes
    with pytest.raises(ValueError, match=r"^edge_index must be a tensor \[2, E\], got shape \(4, 2\)$"):
        conv(torch.randn(3, 4), EI.t())
    with pytest.raises(TypeError, match=r"^edge_index must hold node ids of dtype torch\.long, got torch\.float32$"):
        conv(torch.randn(3, 4), EI.float())
    cache = EdgeIndexCache()
    cached_gcn_norm(cache, EI, 3, True, torch.float32)
    with TensorCalls(*READS) as calls:  # the same tensor again: the form is checked, nothing is read
        cached_gcn_norm(cache, EI, 3, True, torch.float32)
    assert calls.total() == 0


def test_the_neighbour_sampler_refuses_a_bad_edge_index():
    from torch_geometric.data import Data

    from modgraph.scale.sampler import TorchNeighborSampler, neighbor_loader

    data = Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1, 3], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"^TorchNeighborSampler: edge_index has the edge 3 -> 0 \(column 2\), which "
                                         r"names a node outside \[0, 3\) \(the graph has 3 nodes, x has 3 rows; node "
                                         r"ids span \[0, 3\]\)$"):
        TorchNeighborSampler(data, [2])
    # a ValueError before
    with pytest.raises(TypeError, match=r"^(neighbor_loader|TorchNeighborSampler): edge_index must be a torch\.Tensor "
                                        r"\[2, E\] of integer node ids \(torch\.long\), got list$"):
        neighbor_loader(Data(x=torch.randn(3, 2), edge_index=EI.tolist()), [2], batch_size=2)


def test_graph_pruning_refuses_a_bad_edge_index():
    from modgraph.prune import MagnitudeImportance, prune, sparsify_edges

    with pytest.raises(mg.PruneError, match=r"^edge_index must be a tensor \[2, E\], got shape \(4, 2\)$"):
        sparsify_edges(EI.t(), torch.ones(2), sparsity=0.5)
    with pytest.raises(mg.PruneError, match=r"^edge_index has the edge 1 -> 2 \(column 2\), which names a node outside "
                                            r"\[0, 2\) \(num_nodes is 2; it must be the graph's node count"):
        prune(mg.ModuleGraph(mlp_graph(5, 4, 3)), MagnitudeImportance(), level="graph", sparsity=0.5, edge_index=EI,
              num_nodes=2)


def test_path():
    from pathlib import Path

    assert checks.path("p", "a/b.txt") == Path("a/b.txt") and checks.path("p", Path("x")) == Path("x")
    for value in (5, None, b"a"):
        with pytest.raises(TypeError, match=rf"^f: path must be a file path \(a str or a Path\), got "
                                            rf"{type(value).__name__} "):
            checks.path("f: path", value)
    with pytest.raises(TypeError, match=r"^d must be a folder path \(a str or a Path\), got int 1$"):
        checks.path("d", 1, what="a folder path")


@pytest.mark.parametrize("value, expected", [(3, True), (2.5, True), (np.float32(0.5), True), (np.int64(4), True),
                                             (float("nan"), True), (True, False), (np.bool_(True), False),
                                             ("1", False), (None, False), (torch.tensor(1.0), False)])
def test_is_real_takes_python_and_numpy_numbers_but_not_bools(value, expected):
    assert checks.is_real(value) is expected
