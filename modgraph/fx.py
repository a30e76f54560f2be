"""Compile a ``ModuleGraph``'s plan into a ``torch.fx.GraphModule``: straight-line code, no per-forward loops.

The generated module shares every submodule and parameter with the ``ModuleGraph``: its four containers
(``nodes``, ``neuron_attention``, ``branch_attention``, ``adjacency_weights``) *are* the network's, so the code looks
its modules up at call time and training, ``.to(device)``, ``load_state_dict`` and a replaced submodule
(``net.nodes["y"] = ...``) act on both without recompiling. Gates run inside their attention modules as usual, so
their hooks still report.

Node names reach the code only as string constants: a name that is a plain identifier is looked up as an attribute
(``self.nodes.h``), any other name the spec accepts (a Python keyword such as ``class``, spaces, dashes, quotes,
unicode, a leading digit) by item (``self.nodes['class']``), so every valid network compiles.
"""

from __future__ import annotations

import keyword
import operator

import torch
import torch.fx as fx

from .merge import neuron_linear, scale_branches, sum_messages

CONTAINERS = ("nodes", "neuron_attention", "branch_attention", "adjacency_weights")


def _call(module, *args):
    """Call a module looked up by item (the code of a node whose name is not a plain identifier)."""
    return module(*args)


class _Lookup:
    """Graph nodes that fetch ``container[key]``: ``get_attr``/``call_module`` where ``key`` can be written as an
    attribute, else ``operator.getitem`` on the container (fx writes such targets into the code unquoted)."""

    def __init__(self, graph: fx.Graph):
        self.graph, self.containers = graph, {}

    @staticmethod
    def plain(key: str) -> bool:
        return key.isidentifier() and not keyword.iskeyword(key)

    def attr(self, container: str, key: str) -> fx.Node:
        if self.plain(key):
            return self.graph.get_attr(f"{container}.{key}")
        if container not in self.containers:
            self.containers[container] = self.graph.get_attr(container)
        return self.graph.call_function(operator.getitem, (self.containers[container], key))

    def call(self, container: str, key: str, args: tuple) -> fx.Node:
        if self.plain(key):
            return self.graph.call_module(f"{container}.{key}", args)
        return self.graph.call_function(_call, (self.attr(container, key), *args))


def compile_plan(net) -> fx.GraphModule:
    """The forward of ``net`` (inputs in ``net.inputs`` order, then ``edge_index``) as a ``GraphModule``."""
    graph = fx.Graph()
    lookup = _Lookup(graph)
    env = {name: graph.placeholder(f"in_{i}") for i, name in enumerate(net.plan.inputs)}
    edge_index = graph.placeholder("edge_index", default_value=None)
    for step in net.plan.steps:
        if step.source:
            continue
        msgs = [env[u] for u in step.preds]
        for i, key, const in step.scales:
            factor = lookup.attr("adjacency_weights", key) if key is not None else const
            msgs[i] = graph.call_function(operator.mul, (msgs[i], factor))
        module = step.name if step.has_module else None
        if step.neuron is not None:
            attention = lookup.attr("neuron_attention", step.neuron)
            layer = lookup.attr("nodes", module)
            env[step.name] = graph.call_function(neuron_linear, (attention, layer, env[step.preds[0]], msgs[0]))
            continue
        if step.branch is not None:
            weights = lookup.call("branch_attention", step.name, ([msgs[i] for i in step.branch],))
            scaled = graph.call_function(scale_branches, (msgs, weights, tuple(step.branch)))
            msgs = [graph.call_function(operator.getitem, (scaled, i)) for i in range(len(msgs))]
        if len(msgs) == 1:
            x = msgs[0]
        elif step.merge == "concat":
            x = graph.call_function(torch.cat, (msgs, -1))
        else:
            x = graph.call_function(sum_messages, (msgs,))
        if module is None:
            env[step.name] = x
        elif step.needs_graph:
            env[step.name] = lookup.call("nodes", module, (x, edge_index))
        else:
            env[step.name] = lookup.call("nodes", module, (x,))
    outputs = net.plan.outputs
    graph.output(env[outputs[0]] if len(outputs) == 1 else {name: env[name] for name in outputs})
    compiled = fx.GraphModule(net, graph, class_name="CompiledModuleGraph")
    for name in CONTAINERS:  # the network's own containers, not fx's copies of the entries it found
        setattr(compiled, name, getattr(net, name))
    return compiled
