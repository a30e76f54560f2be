"""Plain-text summary of a ``ModuleGraph``: nodes with their widths and parameters, edges with their gates."""

from __future__ import annotations


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def summarize(net) -> str:
    plan = net.plan
    rows = [("node", "op", "in", "out", "params")]
    for step in plan.steps:
        attrs = net.graph.nodes[step.name]
        op = attrs.get("op") or type(attrs.get("module")).__name__
        in_w = "-" if step.source else "+".join(str(plan.widths[u]) for u in step.preds)
        module = net.nodes[step.name] if step.has_module else None
        rows.append((step.name, op, in_w, str(step.width), f"{_count(module):,}"))
    erows = [("edge", "level", "attention", "gate settings", "weight", "params")]
    for u, v, attrs in net.graph.edges(data=True):
        key = f"{u}->{v}"
        level = plan.levels.get((u, v), "-")
        params = 0
        if key in net.neuron_attention:
            params = _count(net.neuron_attention[key])
        elif level == "branch":
            params = _count(net.branch_attention[v])
        settings = ", ".join(f"{k} {attrs[k]:g}" if isinstance(attrs[k], float) else f"{k} {attrs[k]}"
                             for k in GATE_SETTINGS if attrs.get(k) is not None)
        erows.append((f"{u} -> {v}", level, attrs.get("attention") or "-", settings or "-", _weight(net, key, attrs),
                      f"{params:,}" + (" (shared by the merge)" if level == "branch" else "")))
    total = sum(p.numel() for p in net.parameters())
    att = sum(p.numel() for p in net.attention_parameters())
    return "\n".join([_table(rows), "", _table(erows), "",
                      f"parameters: {total:,} ({total - att:,} main, {att:,} attention)"])


GATE_SETTINGS = ("threshold", "temperature", "score", "heads", "hidden")


def _weight(net, key: str, attrs: dict) -> str:
    """The edge's weight: a fixed number, or a learnable one's current value (and the value it started from)."""
    if key in net.adjacency_weights:
        return f"{float(net.adjacency_weights[key].detach()):.4g} (learnable, from {float(attrs.get('weight', 1.0)):g})"
    return f"{float(attrs.get('weight', 1.0)):g}"


def _table(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
