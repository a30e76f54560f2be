"""``ModuleGraph``: a ``torch.nn.Module`` compiled from a NetworkX DAG of modules with attention-weighted edges."""

from __future__ import annotations

import os
from contextlib import contextmanager

import networkx as nx
import torch
import torch.nn as nn

from . import checks
from .attention import AttentionModule
from .compile import compile_graph, dry_run
from .errors import GraphSpecError
from .gate import Gate
from .merge import neuron_linear, scale_branches, sum_messages
from .spec import graph_from_dict, graph_to_dict, load_spec, locate, plain_attributes, save_spec


def _check_declared_widths(graph: nx.DiGraph, plan, nodes: nn.ModuleDict) -> None:
    """A ready module declared with ``out_features`` is not probed to build; check the claim with one dry run.

    One no-grad forward of a ``[2, in]`` zero tensor in eval mode (the mode is restored); a module that cannot run on
    it (a graph op needing ``edge_index``, a special input) is trusted, as before."""
    for step in plan.steps:
        attrs = graph.nodes[step.name]
        if "module" not in attrs or attrs.get("out_features") is None or step.needs_graph:
            continue
        module = nodes[step.name]
        in_width = sum(plan.widths[u] for u in step.preds) if step.merge == "concat" else plan.widths[step.preds[0]]
        try:
            out = dry_run(module, in_width)
        except Exception:  # noqa: BLE001  (cannot tell: the forward will say)
            continue
        if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[-1] != step.width:
            raise GraphSpecError(f"node {step.name!r}: declared out_features={step.width}, but its module maps "
                                 f"{in_width} input features to {out.shape[-1]}; fix out_features or leave it out "
                                 f"(the width is then probed)")


class ModuleGraph(nn.Module):
    """A network declared as a DAG: nodes are ops, edges carry a learnable adjacency and attention gates.

    Args:
        graph: a ``networkx.DiGraph``. Node attributes: ``op`` (a registered op) with its arguments, or
            ``module`` (a ready ``nn.Module``); optional ``merge`` (``"sum"``, the default weighted sum, or
            ``"concat"``) and ``in_features`` (checked). Edge attributes: ``attention`` (``"sigmoid"``,
            ``"softmax"``, ``"sparsemax"``), ``threshold``, ``score``, ``temperature``, ``heads``, ``hidden``,
            ``level`` (``"neuron"``/``"branch"``), ``learnable`` (a trainable scalar on the edge) and ``weight``
            (its initial or fixed value).

    The graph is validated and compiled at construction; every fault raises :class:`GraphSpecError` naming it.

    Example::

        g = nx.DiGraph()
        g.add_node("x", op="input", features=5)
        g.add_node("h", op="linear", out_features=18, activation="sigmoid")
        g.add_node("y", op="linear", out_features=3)
        g.add_edges_from([("x", "h")]); g.add_edge("h", "y", attention="sigmoid")
        net = ModuleGraph(g)
        net(torch.randn(32, 5)).shape          # torch.Size([32, 3])
        net.edge_weights()[("h", "y")].shape   # torch.Size([32, 18, 3])
    """

    def __init__(self, graph: nx.DiGraph):
        super().__init__()
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise GraphSpecError(f"expected a networkx.DiGraph, got {type(graph).__name__}")
        self.graph = graph.copy()
        plain_attributes(self.graph)  # np.int64(4) is 4: it builds, and the spec saves as YAML or JSON
        plan, nodes, neuron, branch, adjacency = compile_graph(self.graph)
        _check_declared_widths(self.graph, plan, nodes)
        self.plan = plan
        self.nodes = nodes
        self.neuron_attention = neuron
        self.branch_attention = branch
        self.adjacency_weights = adjacency
        self.keep_weights = True  # store the last forward's weights for edge_weights(); off inside torch.func
        self._last: dict = {}
        for gate in self.gates():
            gate.register_weight_hook(self._store_weights)

    # ----------------------------------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, spec: dict, source: str = "spec") -> "ModuleGraph":
        """Build from a spec dict (as :meth:`to_dict` returns it); every error names ``source`` (unless it is the
        default ``"spec"``), those of the spec's data and those of building it (an unknown op, mismatched widths)."""
        try:
            return cls(graph_from_dict(spec, source))
        except GraphSpecError as err:
            msg = str(err)
            if source == "spec" or msg.startswith(f"{source}:"):
                raise
            raise GraphSpecError(f"{source}: {msg}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ModuleGraph":
        """Build from a YAML or JSON spec file; every error names the file, and the line of the node or edge at
        fault when it names one."""
        spec = load_spec(path)
        try:
            return cls.from_dict(spec, source=str(path))
        except GraphSpecError as err:
            raise GraphSpecError(locate(path, spec, str(err))) from None

    def to_dict(self) -> dict:
        """The spec as plain data (JSON/YAML-ready): ``{"format", "nodes", "edges", ...}``; no weights."""
        return graph_to_dict(self.graph)

    def save_spec(self, path: str | os.PathLike):
        """Write the spec (not the weights) to a YAML or JSON file, atomically."""
        return save_spec(self.to_dict(), path)

    # ----------------------------------------------------------------------------------------- execution
    @property
    def inputs(self) -> list:
        """The input node names, in the order a dict of inputs is matched."""
        return self.plan.inputs

    @property
    def outputs(self) -> list:
        """The output node names (the sinks, or the graph attribute ``outputs``)."""
        return self.plan.outputs

    @property
    def needs_graph(self) -> bool:
        """Whether the network has graph ops, so ``forward`` needs ``edge_index``."""
        return self.plan.needs_graph

    def _feeds(self, inputs) -> dict:
        names = self.plan.inputs
        if isinstance(inputs, torch.Tensor):
            if len(names) != 1:
                raise ValueError(f"this network has {len(names)} inputs ({', '.join(map(repr, names))}); "
                                 f"pass a dict {{input name: tensor}}")
            inputs = {names[0]: inputs}
        if not isinstance(inputs, dict):
            raise TypeError(f"expected a tensor or a dict {{input name: tensor}}, got {type(inputs).__name__}")
        missing = [n for n in names if n not in inputs]
        extra = [n for n in inputs if n not in names]
        if missing or extra:
            raise ValueError(f"inputs must be exactly {', '.join(map(repr, names))}; missing {missing}, "
                             f"unexpected {extra}")
        for n in names:
            x, want = inputs[n], self.plan.widths[n]
            if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != want:
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"input {n!r}: expected a tensor [..., {want}], got {got}")
        return inputs

    def forward(self, inputs, edge_index: torch.Tensor | None = None):
        """Run the DAG in topological order. One input: a tensor; several: a dict. Graph ops take ``edge_index``.

        The plan runs as straight-line code compiled with ``torch.fx`` (:mod:`modgraph.fx`);
        :meth:`interpret` runs the same plan step by step and is the reference it is tested against.
        """
        feeds = self._feeds(inputs)
        if edge_index is None and self.needs_graph:
            raise ValueError("this network has graph ops; pass edge_index=[2, E] as well")
        self._last.clear()  # the weights of this forward only: a gate switched off reports none
        key = self._structure_key()
        cached = self.__dict__.get("_compiled")
        if cached is None or cached[0] != key:  # first call, or a whole container was replaced
            from .fx import compile_plan

            cached = (key, compile_plan(self))
            object.__setattr__(self, "_compiled", cached)  # shares our modules; not registered twice
        try:
            return cached[1].forward(*[feeds[name] for name in self.plan.inputs], edge_index)
        except (RuntimeError, ValueError, TypeError) as err:  # checked only on failure: nothing added to a forward
            self._raise_input_fault(feeds, err)
            raise

    def _raise_input_fault(self, feeds: dict, err: Exception) -> None:
        """After a failed forward: name the input at fault, if one is (else the original error stands).

        An input of a dtype other than the parameters' (float64 against float32, integer or bool features); an input
        that is not ``[N, F]`` where graph ops (one row per node) or neuron-level gates (``[B, in]``) need it; inputs
        whose leading (batch) dimensions differ."""
        dtypes = {p.dtype for p in self.parameters() if p.is_floating_point()}
        if len(dtypes) == 1:  # else no parameters, or mixed precision on purpose: torch's own message stands
            want = dtypes.pop()
            for name in self.plan.inputs:
                x = feeds[name]
                if x.is_floating_point() and x.dtype != want:
                    raise TypeError(f"input {name!r} is {x.dtype} but the network's parameters are {want}; convert "
                                    f"one of them (x.to({want}) or net.to({x.dtype}))") from err
                # an integer input that failed on a dtype (an embedding's index input may fail otherwise)
                if not x.is_floating_point() and not x.is_complex() and "type" in str(err):
                    raise TypeError(f"input {name!r} is {x.dtype}, but the network computes in {want}; features must "
                                    f"be floating point (x.to({want}))") from err
        if self.plan.needs_graph:
            needs = "graph ops, which take one row per node"
        elif any(step.neuron is not None for step in self.plan.steps):
            needs = "neuron-level gates, which take one row per sample"
        else:
            needs = None
        for name in self.plan.inputs if needs else ():
            x = feeds[name]
            if x.dim() != 2:
                raise ValueError(f"input {name!r}: expected a tensor [N, {self.plan.widths[name]}] (the network has "
                                 f"{needs}), got {tuple(x.shape)}") from err
        first = self.plan.inputs[0]
        for name in self.plan.inputs[1:]:
            a, b = tuple(feeds[first].shape), tuple(feeds[name].shape)
            if a[:-1] != b[:-1]:
                raise ValueError(f"inputs {first!r} {a} and {name!r} {b} differ in their leading (batch) dimensions; "
                                 f"every input needs one row per sample") from err

    def _structure_key(self) -> tuple:
        """Identities of the four containers the compiled code reads its modules from at call time.

        Entries replaced inside a container (``net.nodes["y"] = ...``) are seen without recompiling; replacing a
        container itself recompiles. Read straight from ``_modules`` (this runs on every forward).
        """
        m = self._modules
        return id(m["nodes"]), id(m["neuron_attention"]), id(m["branch_attention"]), id(m["adjacency_weights"])

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_compiled", None)  # copies and pickles recompile on their first forward
        return state

    def interpret(self, inputs, edge_index: torch.Tensor | None = None):
        """The reference executor: the plan run step by step (same result as ``forward``)."""
        feeds = self._feeds(inputs)
        if edge_index is None and self.needs_graph:
            raise ValueError("this network has graph ops; pass edge_index=[2, E] as well")
        self._last.clear()
        try:
            return self._interpret(feeds, edge_index)
        except (RuntimeError, ValueError, TypeError) as err:
            self._raise_input_fault(feeds, err)
            raise

    def _interpret(self, feeds: dict, edge_index: torch.Tensor | None):
        out: dict = {}
        for step in self.plan.steps:
            if step.source:
                out[step.name] = feeds[step.name]
                continue
            msgs = [out[u] for u in step.preds]
            for i, key, const in step.scales:  # learnable adjacency (or fixed edge weight)
                msgs[i] = msgs[i] * (self.adjacency_weights[key] if key is not None else const)
            module = self.nodes[step.name] if step.has_module else None
            if step.neuron is not None:
                out[step.name] = neuron_linear(self.neuron_attention[step.neuron], module, out[step.preds[0]], msgs[0])
                continue
            if step.branch is not None:
                weights = self.branch_attention[step.name]([msgs[i] for i in step.branch])  # (B, K, H)
                msgs = scale_branches(msgs, weights, tuple(step.branch))
            if len(msgs) == 1:
                x = msgs[0]
            elif step.merge == "concat":
                x = torch.cat(msgs, dim=-1)
            else:
                x = sum_messages(msgs)
            if module is None:
                out[step.name] = x
            elif step.needs_graph:
                out[step.name] = module(x, edge_index)
            else:
                out[step.name] = module(x)
        if len(self.plan.outputs) == 1:
            return out[self.plan.outputs[0]]
        return {name: out[name] for name in self.plan.outputs}

    # ----------------------------------------------------------------------------------------- attention
    def gates(self) -> list[Gate]:
        """Every gate of the network: the one hook point of recording and pruning."""
        return [m for m in self.modules() if isinstance(m, Gate)]

    def _store_weights(self, gate: Gate, weights: torch.Tensor, context: dict) -> None:
        if self.keep_weights:
            # graph ops pass the edge_index [2, E] their weights belong to; other gates at most a segment index
            where = context["edge_index"] if context.get("edge_index") is not None else context.get("index")
            self._last[(gate.level, gate.name)] = (weights.detach(), where)  # a node's branch and graph gates apart

    def edge_weights(self) -> dict:
        """Attention weights of the last forward, ``{(src, dst): Tensor}`` (a gate switched off in it has no entry).

        Neuron level: ``[B, in, out]``. Branch level: ``[B]`` (``[B, heads]`` with heads). Graph-level weights
        of graph ops are in :meth:`graph_weights`.
        """
        result = {}
        for gate in self.gates():
            if (gate.level, gate.name) not in self._last:
                continue
            weights, _ = self._last[(gate.level, gate.name)]
            if gate.level == "neuron":
                result[gate.name] = weights
            elif gate.level == "branch":
                for k, edge in enumerate(gate.edges):
                    w = weights[..., k, :]
                    result[edge] = w.squeeze(-1) if w.shape[-1] == 1 else w
        return result

    def graph_weights(self) -> dict:
        """Graph-level weights of the last forward: ``{node: (edge_index [2, E], weights [E, heads])}``.

        ``edge_index`` is the one the op weighted (self-loops included when the op adds them): column ``e`` names the
        edge ``source -> target`` (node ids) that ``weights[e]`` belongs to.
        """
        result = {}
        for gate in self.gates():
            if gate.level == "graph" and ("graph", gate.name) in self._last:
                weights, edge_index = self._last[("graph", gate.name)]
                result[gate.name] = (edge_index, weights)
        return result

    def attention_parameters(self) -> list[nn.Parameter]:
        """Parameters of the attention networks and the learnable adjacency (the alternating schedule's 2nd set)."""
        seen, params = set(), []
        for m in self.modules():
            if isinstance(m, AttentionModule):
                for p in m.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params.append(p)
        for p in self.adjacency_weights.values():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        return params

    def main_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an attention parameter."""
        att = {id(p) for p in self.attention_parameters()}
        return [p for p in self.parameters() if id(p) not in att]

    def set_attention(self, enabled: bool) -> None:
        """Switch every gate on or off; off, attention is masked out and connections are unscaled."""
        enabled = checks.flag("set_attention: enabled", enabled)  # not bool(enabled): bool("false") is True
        for gate in self.gates():
            gate.enabled = enabled

    @contextmanager
    def attention_off(self):
        """Context manager: every gate off inside the block (connections unscaled), the previous states after it."""
        states = [(g, g.enabled) for g in self.gates()]
        self.set_attention(False)
        try:
            yield self
        finally:
            for g, state in states:
                g.enabled = state

    # ----------------------------------------------------------------------------------------- adjacency
    def adjacency(self) -> nx.DiGraph:
        """The learnable adjacency with node names: a DiGraph whose edges carry ``weight`` (float)."""
        adj = nx.DiGraph()
        adj.add_nodes_from(self.graph.nodes)
        for u, v, attrs in self.graph.edges(data=True):
            key = f"{u}->{v}"
            if key in self.adjacency_weights:
                w = float(self.adjacency_weights[key].detach())
            else:
                w = float(attrs.get("weight", 1.0))
            adj.add_edge(u, v, weight=w, learnable=key in self.adjacency_weights)
        return adj

    def adjacency_matrix(self) -> tuple[list, torch.Tensor]:
        """``(node names, A)`` with ``A[i, j]`` the weight of edge ``names[i] -> names[j]`` (0 where none)."""
        names = list(self.graph.nodes)
        matrix = nx.to_numpy_array(self.adjacency(), nodelist=names, weight="weight")
        return names, torch.as_tensor(matrix, dtype=torch.float32)

    # ----------------------------------------------------------------------------------------- inspection
    def summary(self) -> str:
        """A table of nodes (op, widths, parameters) and edges (gate level, normaliser, parameters)."""
        from .summary import summarize

        return summarize(self)

    def extra_repr(self) -> str:
        return f"inputs={self.plan.inputs}, outputs={self.plan.outputs}"
