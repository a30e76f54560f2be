"""Which tensors shrink together when a hidden unit goes: the dependency groups of a ``ModuleGraph``.

Like Torch-Pruning's ``DependencyGraph``, but at the granularity of single channels. Every feature position of
every node's output is a *channel*. A ``linear`` node creates fresh channels; elementwise ops (activations,
dropout, identity) and ``batch_norm`` pass their input channels on; a ``concat`` merge lays its inputs side by side;
a ``sum`` merge identifies the channels at the same position of its inputs (union-find). An equivalence class of
channels is a **group**: removing one channel means removing all of its class, in every layer it touches:

* the producing linear layers: weight row and bias entry (several producers when outputs are summed);
* per-channel parameters on the way (``batch_norm`` weight, bias and running statistics);
* every consumer: the input columns of linear layers, the input columns of a neuron-level allocator and its
  output rows for the connections ``i -> o`` the unit takes part in (``in * out`` entries as ``[in, out]``), and the
  input columns of branch-attention key projections.

A group is *blocked* (never pruned) when one of its channels is a network input or output, enters an op that
is not channel-separable (``layer_norm``, whose statistics mix channels) or an op without a channel rule (custom
ops and modules), or feeds a multi-head branch gate (heads split features into fixed chunks).
:func:`register_channel_rule` declares how a further op treats channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import checks
from ..errors import PruneError

#: op name -> how it treats channels: "elementwise" (passes them on), "per_channel" (passes them on, with
#: per-channel parameters sliced along), "produce" (creates its own output channels, consumes its input columns).
CHANNEL_RULES: dict[str, str] = {
    "linear": "produce",
    "relu": "elementwise", "tanh": "elementwise", "sigmoid": "elementwise", "elu": "elementwise",
    "identity": "elementwise", "dropout": "elementwise", "concat": "elementwise",
    "batch_norm": "per_channel",
}  # fmt: skip
RULE_KINDS = ("elementwise", "per_channel", "produce")


def check_network(net, who: str) -> None:
    """TypeError unless ``net`` is a :class:`~modgraph.ModuleGraph` (what pruning reads: its plan, graph, nodes)."""
    from ..module_graph import ModuleGraph

    if not isinstance(net, ModuleGraph):
        raise TypeError(f"{who}: expected a modgraph.ModuleGraph, got {type(net).__name__}")


def check_deps(deps, net, who: str) -> None:
    """TypeError unless ``deps`` is a :class:`DependencyGraph`; PruneError unless it was built for a network of
    ``net``'s structure (the same nodes, in-edges, merges and widths): its groups index ``net``'s weights.

    Free when ``deps`` was built from ``net`` itself; else one comparison of the two plans (a few tuples per node).
    """
    if not isinstance(deps, DependencyGraph):
        raise TypeError(f"{who}: deps must be the DependencyGraph of the network (DependencyGraph(net)), got "
                        f"{type(deps).__name__}")
    if deps.net is net:
        return
    shape = lambda plan: {s.name: (tuple(s.preds), s.merge, s.width) for s in plan.steps}  # noqa: E731
    ours, theirs = shape(net.plan), shape(deps.net.plan)
    if ours != theirs:
        v = next(v for v in [*ours, *theirs] if ours.get(v) != theirs.get(v))
        if v not in theirs or v not in ours:
            fault = f"node {v!r} is in {'this network' if v in ours else 'that one'} only"
        else:
            merge = ours[v][1] != theirs[v][1]
            what = lambda d: (f"width {d[v][2]}, in-edges from {', '.join(map(repr, d[v][0])) or 'none'}"  # noqa: E731
                              + (f", merge {d[v][1]!r}" if merge else ""))
            fault = f"node {v!r} has {what(theirs)} there but {what(ours)} here"
        raise PruneError(f"{who}: deps was built for another network: {fault}; build it from this network, "
                         f"DependencyGraph(net)")


def channel_rule(net, step) -> str | None:
    """The channel rule of a node of ``net``: its op's rule; a module-less op (a merge) passes channels on;
    ``None`` for a ready module or an op without a rule (its channels cannot be sliced)."""
    attrs = net.graph.nodes[step.name]
    if "module" in attrs:
        return None
    rule = CHANNEL_RULES.get(attrs.get("op"))
    return rule if rule is not None or step.has_module else "elementwise"


def check_removed(net, removed_edges, removed_nodes, who: str) -> tuple[list, set]:
    """``(removed_edges as [(u, v)], removed_nodes as a set)``, if every edge is an edge of ``net`` and every node a
    node of ``net`` that is neither an input nor an output (pruning keeps those); else TypeError (not a list of edges
    or names) or PruneError naming the first edge or node at fault."""
    g, plan = net.graph, net.plan
    for name, value in (("removed_edges", removed_edges), ("removed_nodes", removed_nodes)):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            kind = "edges (u, v)" if name == "removed_edges" else "node names"
            raise TypeError(f"{who}: {name} must be a list of {kind}, got {type(value).__name__} {value!r}")
    edges = []
    for i, e in enumerate(removed_edges):
        if isinstance(e, (str, bytes)) or not isinstance(e, (tuple, list)) or len(e) != 2:
            raise TypeError(f"{who}: removed_edges[{i}] must be an edge (u, v), a pair of node names, got {e!r}")
        u, v = e
        if not (isinstance(u, str) and isinstance(v, str) and g.has_edge(u, v)):
            into = (f"its in-edges: {', '.join(f'{p!r} -> {v!r}' for p in g.predecessors(v)) or 'none'}"
                    if isinstance(v, str) and v in g else f"{v!r} is not a node of the network")
            raise PruneError(f"{who}: removed_edges[{i}] is {u!r} -> {v!r}, which is not an edge of the network "
                             f"({into})")
        edges.append((u, v))
    nodes = set()
    ends = {**{o: "output" for o in plan.outputs}, **{x: "input" for x in plan.inputs}}
    for n in removed_nodes:
        if not (isinstance(n, str) and n in g):
            raise PruneError(f"{who}: removed_nodes names {n!r}, which is not a node of the network")
        if n in ends:
            raise PruneError(f"{who}: removed_nodes names {ends[n]} {n!r}; pruning keeps the network's inputs and "
                             f"outputs")
        nodes.add(n)
    return edges, nodes


def register_channel_rule(op: str, kind: str) -> None:
    """Declare how op ``op`` treats channels (see :data:`CHANNEL_RULES`); ops without a rule block pruning."""
    if not isinstance(op, str) or not op:
        raise TypeError(f"register_channel_rule: op must be an op name (a non-empty string), got {op!r}")
    if kind not in RULE_KINDS:
        raise ValueError(f"channel rule for op {op!r} must be one of {', '.join(RULE_KINDS)}, got {kind!r}")
    CHANNEL_RULES[op] = kind


@dataclass
class Group:
    """One prunable unit: an equivalence class of channels removed together.

    Attributes:
        index: position in ``DependencyGraph.groups``.
        layer: the producing node(s), ``"h"`` or ``"a+b"`` when summed outputs share the unit; the unit of
            "per layer" pruning and of "every unit of a layer" errors.
        producers: ``(node, row)`` of every linear layer whose output row is this unit.
        consumers: ``(node, column)`` of every linear layer reading the unit (column of its merged input).
        keys: ``(node, branch position, column)`` of branch-attention key projections reading the unit.
    """

    index: int
    layer: str
    producers: list = field(default_factory=list)
    consumers: list = field(default_factory=list)
    keys: list = field(default_factory=list)


class DependencyGraph:
    """The channel groups of ``net`` and the kept positions of every tensor once some are removed.

    Args:
        net: a :class:`~modgraph.ModuleGraph`.

    Attributes:
        groups: the prunable groups, ordered by layer (topological) and row.
        blocked: ``{layer: reason}`` for layers whose units cannot be pruned, with the first reason found.
    """

    def __init__(self, net):
        check_network(net, "DependencyGraph")
        self.net = net
        self._parent: list[int] = []
        self._reason: dict[int, str] = {}
        self._producer: dict[int, tuple] = {}  # atom -> (node, row) where it was created
        self.out_atoms: dict[str, list[int]] = {}
        self.in_atoms: dict[str, list[int]] = {}
        self.in_origin: dict[str, list[tuple]] = {}  # merged input position -> (pred, position in pred's output)
        self._build()
        self._collect()

    # ----------------------------------------------------------------------------------------- union-find
    def _fresh(self, n: int, node: str, reason: str | None = None) -> list[int]:
        start = len(self._parent)
        self._parent.extend(range(start, start + n))
        for row in range(n):
            self._producer[start + row] = (node, row)
            if reason:
                self._reason[start + row] = reason
        return list(range(start, start + n))

    def find(self, a: int) -> int:
        """The representative of channel ``a``'s group (union-find with path halving)."""
        parent = self._parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[rb] = ra
            if rb in self._reason and ra not in self._reason:
                self._reason[ra] = self._reason[rb]

    def _block(self, atoms, reason: str) -> None:
        for a in atoms:
            self._reason.setdefault(self.find(a), reason)

    # ----------------------------------------------------------------------------------------- channels
    def _rule(self, step) -> str | None:
        """The channel rule of a node: its op's rule; a module-less op (a merge) passes channels on."""
        return channel_rule(self.net, step)

    def _build(self) -> None:
        net, plan = self.net, self.net.plan
        for step in plan.steps:
            v = step.name
            if step.source:
                self.out_atoms[v] = self._fresh(step.width, v, f"input {v!r}")
                continue
            if step.merge == "concat" and len(step.preds) > 1:
                atoms, origin = [], []
                for u in step.preds:
                    atoms += self.out_atoms[u]
                    origin += [(u, j) for j in range(len(self.out_atoms[u]))]
            else:
                atoms = list(self.out_atoms[step.preds[0]])
                origin = [(tuple(step.preds), j) for j in range(len(atoms))]
                for u in step.preds[1:]:
                    for a, b in zip(atoms, self.out_atoms[u]):
                        self._union(a, b)
            self.in_atoms[v], self.in_origin[v] = atoms, origin
            rule = self._rule(step)
            if rule == "produce":
                self.out_atoms[v] = self._fresh(step.width, v)
            elif rule is not None:
                self.out_atoms[v] = atoms
            else:
                attrs = net.graph.nodes[v]
                op = attrs.get("op") or type(attrs["module"]).__name__
                why = ("layer_norm mixes channels (not channel-separable)" if op == "layer_norm"
                       else f"op {op!r} has no channel rule")
                self._block(atoms, f"it feeds node {v!r}: {why}")
                self.out_atoms[v] = self._fresh(step.width, v, f"node {v!r}: {why}")
            if step.branch is not None:
                att = net.branch_attention[v]
                if att.heads > 1:
                    for i in step.branch:
                        self._block(self.out_atoms[step.preds[i]],
                                    f"it feeds the {att.heads}-head branch gate of {v!r}")
        for o in plan.outputs:
            self._block(self.out_atoms[o], f"output {o!r}")

    def _collect(self) -> None:
        plan = self.net.plan
        classes: dict[int, Group] = {}
        order = []
        for step in plan.steps:
            if step.source or self._rule(step) != "produce":
                continue
            for row, a in enumerate(self.out_atoms[step.name]):
                r = self.find(a)
                if r in self._reason:
                    continue
                if r not in classes:
                    classes[r] = Group(-1, "")
                    order.append(r)
                classes[r].producers.append((step.name, row))
        for step in plan.steps:
            if step.source:
                continue
            v = step.name
            if self._rule(step) == "produce":
                for col, a in enumerate(self.in_atoms[v]):
                    g = classes.get(self.find(a))
                    if g is not None:
                        g.consumers.append((v, col))
            if step.branch is not None:
                for k, i in enumerate(step.branch):
                    for col, a in enumerate(self.out_atoms[step.preds[i]]):
                        g = classes.get(self.find(a))
                        if g is not None:
                            g.keys.append((v, k, col))
        self.groups: list[Group] = []
        for r in order:
            g = classes[r]
            g.index = len(self.groups)
            g.layer = "+".join(dict.fromkeys(node for node, _ in g.producers))
            self.groups.append(g)
        self._root_group = {r: classes[r].index for r in order}
        self.blocked: dict[str, str] = {}
        for step in plan.steps:
            if not step.source and self._rule(step) == "produce":
                for a in self.out_atoms[step.name]:
                    reason = self._reason.get(self.find(a))
                    if reason is not None:
                        self.blocked.setdefault(step.name, reason)

    # ----------------------------------------------------------------------------------------- queries
    def group_of(self, node: str, position: int, side: str = "out") -> int | None:
        """The group of ``node``'s output (``side="out"``) or merged input (``"in"``) position, if prunable."""
        if side not in ("out", "in"):
            raise ValueError(f"group_of: side must be 'out' or 'in', got {side!r}")
        table = self.out_atoms if side == "out" else self.in_atoms
        if node not in table:
            known = "every node" if side == "out" else "every node but the inputs"
            raise ValueError(f"group_of: no node {node!r} with an {side}put here ({known} has one: "
                             f"{', '.join(map(repr, table))})")
        atoms = table[node]
        if not checks.is_integer(position) or not 0 <= position < len(atoms):
            raise ValueError(f"group_of: position must be an integer in [0, {len(atoms)}) (node {node!r}'s "
                             f"{side}put width), got {position!r}")
        return self._root_group.get(self.find(atoms[position]))

    def _group_indices(self, groups, name: str) -> set[int]:
        """The indices of ``groups`` (:class:`Group`\\ s of ``self.groups`` or their indices); ``name`` names the
        argument in errors: TypeError for what is not a list, ValueError for an item that is not one of the groups."""
        if isinstance(groups, (str, bytes, dict)) or not hasattr(groups, "__iter__"):
            raise TypeError(f"{name} must be a list of groups or their indices (deps.groups), got "
                            f"{type(groups).__name__} {groups!r}")
        gone = set()
        for g in groups:
            index = g.index if isinstance(g, Group) else g
            if (not checks.is_integer(index) or not 0 <= index < len(self.groups)
                    or (isinstance(g, Group) and self.groups[index] is not g and self.groups[index] != g)):
                raise ValueError(f"{name} must be groups or their indices in [0, {len(self.groups)}) (deps.groups), "
                                 f"got {g!r}")
            gone.add(int(index))
        return gone

    def layers(self) -> dict[str, list[int]]:
        """``{layer: [group indices]}`` in topological order."""
        result: dict[str, list[int]] = {}
        for g in self.groups:
            result.setdefault(g.layer, []).append(g.index)
        return result

    def hidden_units(self) -> int:
        """Channels created by linear layers that are not network outputs (the network's hidden neurons)."""
        outputs = set(self.net.plan.outputs)
        return sum(len(self.out_atoms[s.name]) for s in self.net.plan.steps
                   if not s.source and s.name not in outputs and self._rule(s) == "produce")

    def keep(self, removed_groups=(), removed_edges=(), removed_nodes=()) -> tuple[dict, dict]:
        """Kept positions once groups, edges and nodes are gone: ``(in_keep, out_keep)``, node -> LongTensor.

        ``in_keep[v]`` indexes ``v``'s merged input, ``out_keep[v]`` its output, both in the original layout.
        Raises :class:`PruneError` when a node without a channel rule would see its width change.
        """
        gone = self._group_indices(removed_groups, "keep: removed_groups")
        removed_atom = [self._root_group.get(self.find(a)) in gone for a in range(len(self._parent))]
        removed_edges, removed_nodes = check_removed(self.net, removed_edges, removed_nodes, "keep")
        # a removed node takes its edges with it
        removed_edges = set(removed_edges) | {e for n in removed_nodes for e in self.net.graph.out_edges(n)}
        in_keep, out_keep = {}, {}
        for step in self.net.plan.steps:
            v = step.name
            if v in removed_nodes:
                continue
            if step.source:
                out_keep[v] = list(range(step.width))
                continue
            live = [u for u in step.preds if (u, v) not in removed_edges]
            kept_out_of = {u: set(out_keep[u]) for u in live}
            keep_in = []
            for j, (src, pos) in enumerate(self.in_origin[v]):
                srcs = src if isinstance(src, tuple) else (src,)
                if isinstance(src, tuple):  # a sum merge: every live input holds this position
                    ok = all(pos in kept_out_of[u] for u in srcs if u in kept_out_of)
                else:
                    ok = src in kept_out_of and pos in kept_out_of[src]
                if ok and not removed_atom[self.in_atoms[v][j]]:
                    keep_in.append(j)
            in_keep[v] = keep_in
            rule = self._rule(step)
            if rule == "produce":
                out_keep[v] = [j for j, a in enumerate(self.out_atoms[v]) if not removed_atom[a]]
            elif rule is not None:
                out_keep[v] = keep_in
            else:
                if len(keep_in) != len(self.in_atoms[v]):
                    raise PruneError(f"pruning would change the input width of node {v!r} "
                                     f"({len(self.in_atoms[v])} -> {len(keep_in)}), whose op cannot be sliced")
                out_keep[v] = list(range(step.width))
        as_tensor = lambda d: {k: torch.as_tensor(x, dtype=torch.long) for k, x in d.items()}  # noqa: E731
        return as_tensor(in_keep), as_tensor(out_keep)
