"""Compiling a validated DAG: shape inference, edge settings, and the modules of every node and gate.

``compile_graph`` is the one step from data to modules. It returns a :class:`Plan` (a list of steps, one per
node in topological order) and the modules that ``ModuleGraph`` registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import torch
import torch.nn as nn

from . import checks
from .attention import NEURON_SCORES, BranchAttention, NeuronAttention
from .errors import GraphSpecError
from .functional.normalize import NORMALIZERS, temperature_problem, threshold_problem
from .functional.scores import SCORES
from .gate import Gate
from .ops.basic import Linear
from .registry import build_op, get_op
from .validate import check_structure

ATTENTION_ONLY = ("threshold", "score", "temperature", "heads", "hidden", "level")
GROUP_SETTINGS = ("attention", "threshold", "score", "temperature", "heads", "hidden")


def edge_key(u: str, v: str) -> str:
    return f"{u}->{v}"


@dataclass
class EdgeSettings:
    attention: str | None = None
    threshold: float | None = None
    score: str | None = None
    temperature: float = 1.0
    heads: int = 1
    hidden: int = 32
    level: str | None = None
    learnable: bool = False
    weight: float = 1.0


@dataclass
class Step:
    name: str
    source: bool = False  # an input node
    width: int = 0  # output width
    preds: list = field(default_factory=list)
    scales: list = field(default_factory=list)  # (position, parameter key or None, constant) per scaled in-edge
    neuron: str | None = None  # key of the NeuronAttention on the single in-edge
    branch: list | None = None  # positions of the in-edges weighted by this node's BranchAttention
    merge: str = "sum"
    has_module: bool = False
    needs_graph: bool = False


@dataclass
class Plan:
    inputs: list
    outputs: list
    steps: list
    widths: dict
    levels: dict  # (u, v) -> "neuron" | "branch" for attended edges
    needs_graph: bool = field(init=False)  # whether any step is a graph op (forward then needs edge_index)

    def __post_init__(self) -> None:
        self.needs_graph = any(step.needs_graph for step in self.steps)


def _edge_settings(u, v, attrs) -> EdgeSettings:
    where = f"edge {u!r} -> {v!r}"
    s = EdgeSettings(**{k: attrs[k] for k in attrs})
    if s.attention is None:
        extra = [k for k in ATTENTION_ONLY if k in attrs]
        if extra:
            raise GraphSpecError(f"{where}: setting(s) {', '.join(map(repr, extra))} need 'attention' "
                                 f"({', '.join(NORMALIZERS)})")
    elif s.attention not in NORMALIZERS:
        raise GraphSpecError(f"{where}: unknown attention {s.attention!r}; valid: {', '.join(NORMALIZERS)}")
    problem = (threshold_problem(s.threshold) if s.threshold is not None else None) \
        or temperature_problem(s.temperature)
    if problem is not None:
        raise GraphSpecError(f"{where}: {problem}")
    s.heads = checks.positive_int(f"{where}: heads", s.heads, error=GraphSpecError)
    s.hidden = checks.positive_int(f"{where}: hidden", s.hidden, error=GraphSpecError)
    if s.level not in (None, "neuron", "branch"):
        raise GraphSpecError(f"{where}: level must be 'neuron' or 'branch', got {s.level!r}")
    checks.flag(f"{where}: learnable", s.learnable, error=GraphSpecError)
    s.weight = checks.number(f"{where}: weight", s.weight, error=GraphSpecError)
    return s


def _check_built_width(module: nn.Module, in_width: int, width: int, op: str, where: str) -> None:
    """A registered builder's ``Built.out_features`` against one dry run of its module (builders outside modgraph
    only: ours are tested). A module that cannot run on a ``[2, in]`` zero tensor (a graph op needing ``edge_index``, a
    special input) is trusted; so is an output that is not a tensor."""
    try:
        out = dry_run(module, in_width)
    except Exception:  # noqa: BLE001  (cannot tell: the forward will say)
        return
    if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[-1] != width:
        raise GraphSpecError(f"{where}: the builder of op {op!r} returned Built(out_features={width}), but its module "
                             f"maps {in_width} input features to {out.shape[-1]}; return the width the module "
                             f"produces")


def dry_run(module: nn.Module, in_width: int):
    """``module`` on a ``[2, in_width]`` zero tensor: no grad, eval mode, on the device and in the dtype of its first
    floating parameter or buffer. Every submodule's mode is restored after; the module's exception propagates."""
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    floating = tensor is not None and tensor.is_floating_point()
    x = torch.zeros(2, in_width, device=tensor.device if tensor is not None else None,
                    dtype=tensor.dtype if floating else None)
    modes = [(m, m.training) for m in module.modules()]
    try:
        with torch.no_grad():
            return module.eval()(x)
    finally:
        for m, mode in modes:
            m.training = mode


def _probe_width(module: nn.Module, in_width: int, where: str) -> int:
    try:
        out = dry_run(module, in_width)
    except Exception as err:
        raise GraphSpecError(f"{where}: the module failed on an input of width {in_width}: {err}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise GraphSpecError(f"{where}: the module must map [B, {in_width}] to a [B, F] tensor")
    return out.shape[-1]


def compile_graph(g: nx.DiGraph):
    """Validate and compile ``g``; return ``(plan, node_modules, neuron_attention, branch_attention, adjacency)``."""
    inputs, outputs, order = check_structure(g)
    widths: dict = {}
    steps, levels = [], {}
    node_modules, neuron_att, branch_att = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
    adjacency = nn.ParameterDict()
    for v in order:
        attrs = dict(g.nodes[v])
        where = f"node {v!r}"
        opname, module = attrs.pop("op", None), attrs.pop("module", None)
        merge, declared_in = attrs.pop("merge", None), attrs.pop("in_features", None)
        opdef = get_op(opname, where) if module is None else None
        if opdef is not None and not opdef.takes_input:  # the input op
            if merge is not None or declared_in is not None:
                raise GraphSpecError(f"{where}: an input takes neither 'merge' nor 'in_features'")
            built = build_op(opdef, None, attrs, where)
            widths[v] = built.out_features
            steps.append(Step(v, source=True, width=built.out_features))
            continue
        preds = list(g.predecessors(v))
        settings = {u: _edge_settings(u, v, g.edges[u, v]) for u in preds}
        merge = merge if merge is not None else (opdef.merge if opdef else "sum")
        if merge not in ("sum", "concat"):
            raise GraphSpecError(f"{where}: merge must be 'sum' or 'concat', got {merge!r}")
        in_widths = [widths[u] for u in preds]
        if merge == "sum" and len(set(in_widths)) > 1:
            detail = ", ".join(f"{u!r} -> {v!r} gives {w}" for u, w in zip(preds, in_widths))
            raise GraphSpecError(f"{where}: a sum merge needs in-edges of equal width, but {detail} "
                                 f"(use merge: concat, or project the branches to one width)")
        in_width = sum(in_widths) if merge == "concat" else in_widths[0]
        if declared_in is not None and declared_in != in_width:
            if len(preds) == 1:
                raise GraphSpecError(f"edge {preds[0]!r} -> {v!r}: expected {declared_in} features, got {in_width}")
            raise GraphSpecError(f"{where}: expected {declared_in} input features, got {in_width} from the "
                                 f"{merge} of {', '.join(map(repr, preds))}")
        if module is not None:
            if not isinstance(module, nn.Module):
                raise GraphSpecError(f"{where}: 'module' must be a torch.nn.Module, got {type(module).__name__}")
            out_width = attrs.pop("out_features", None) or _probe_width(module, in_width, where)
            if attrs:
                raise GraphSpecError(f"{where}: a 'module' node takes only in_features/out_features/merge, "
                                     f"got {', '.join(map(repr, attrs))}")
        else:
            built = build_op(opdef, in_width, attrs, where)
            module, out_width = built.module, built.out_features
            if module is not None and not opdef.builder.__module__.startswith("modgraph."):
                _check_built_width(module, in_width, out_width, opdef.name, where)
        step = Step(v, width=out_width, preds=preds, merge=merge, has_module=module is not None,
                    needs_graph=bool(getattr(module, "needs_graph", False)))
        if module is not None:
            node_modules[v] = module
            for m in module.modules():  # gates inside a node's module (graph ops) report under the node's name
                if isinstance(m, Gate) and m.name is None:
                    m.name = v
        # learnable adjacency and fixed edge weights
        for i, u in enumerate(preds):
            s = settings[u]
            if s.learnable:
                adjacency[edge_key(u, v)] = nn.Parameter(torch.tensor(float(s.weight)))
                step.scales.append((i, edge_key(u, v), None))
            elif s.weight != 1.0:
                step.scales.append((i, None, float(s.weight)))
        # attention: neuron level on a single edge into a linear layer, else branch level over attended in-edges
        attended = [u for u in preds if settings[u].attention is not None]
        for u in attended:
            s = settings[u]
            level = s.level or ("neuron" if isinstance(module, Linear) and len(preds) == 1 else "branch")
            if level == "neuron" and not (isinstance(module, Linear) and len(preds) == 1):
                raise GraphSpecError(f"edge {u!r} -> {v!r}: neuron-level attention needs a linear target with "
                                     f"this single in-edge; {v!r} is op {opname!r} with {len(preds)} in-edge(s)")
            levels[(u, v)] = level
        if attended and levels[(attended[0], v)] == "neuron":
            u, s = attended[0], settings[attended[0]]
            score = s.score or "linear"
            if score not in NEURON_SCORES:
                raise GraphSpecError(f"edge {u!r} -> {v!r}: unknown neuron-level score {score!r}; valid: "
                                     f"{', '.join(NEURON_SCORES)}")
            if s.heads != 1:
                raise GraphSpecError(f"edge {u!r} -> {v!r}: neuron-level attention has no heads, got {s.heads}")
            gate = Gate(s.attention, s.threshold, s.temperature, level="neuron", name=(u, v))
            neuron_att[edge_key(u, v)] = NeuronAttention(widths[u], out_width, gate, score)
            step.neuron = edge_key(u, v)
        elif attended:
            first = settings[attended[0]]
            for u in attended[1:]:
                for key in GROUP_SETTINGS:
                    a, b = getattr(first, key), getattr(settings[u], key)
                    if a != b:
                        raise GraphSpecError(f"{where}: its attended in-edges form one group and must agree on "
                                             f"{key!r}: {attended[0]!r} -> {v!r} has {a!r}, {u!r} -> {v!r} has {b!r}")
            if len(attended) == 1 and first.attention != "sigmoid":
                raise GraphSpecError(f"edge {attended[0]!r} -> {v!r}: {first.attention} over a single attended "
                                     f"in-edge is always 1 (the gate would learn nothing); attend two or more "
                                     f"in-edges of {v!r}, use sigmoid (a gate per branch), or, into a linear node, "
                                     f"the neuron level")
            score = first.score or "additive"
            if score not in SCORES:
                raise GraphSpecError(f"edge {attended[0]!r} -> {v!r}: unknown score {score!r}; valid: "
                                     f"{', '.join(SCORES)}")
            dims = [widths[u] for u in attended]
            if any(d % first.heads for d in dims) or first.hidden % first.heads:
                raise GraphSpecError(f"{where}: heads={first.heads} must divide hidden={first.hidden} and every "
                                     f"attended branch width {dims}")
            gate = Gate(first.attention, first.threshold, first.temperature, level="branch", name=v)
            gate.edges = [(u, v) for u in attended]
            branch_att[v] = BranchAttention(dims, gate, score, first.heads, first.hidden)
            step.branch = [preds.index(u) for u in attended]
        widths[v] = out_width
        steps.append(step)
    plan = Plan(inputs, outputs, steps, widths, levels)
    return plan, node_modules, neuron_att, branch_att, adjacency
