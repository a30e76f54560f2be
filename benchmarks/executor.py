"""The DAG executor against the equivalent hand-written ``nn.Module``: forward + backward, side by side.

    python benchmarks/executor.py                    # 11 interleaved repetitions, medians, ratios
    python benchmarks/executor.py --reps 5 --steps 50 --json executor.json

Three networks, each built once as a ``ModuleGraph`` and once as a plain PyTorch module written by hand with the
same parameters (copied, and the outputs checked equal before timing):

* ``uci_mlp``: the paper's attention MLP on Vehicle, 18 - 30 (sigmoid) - 4 with sigmoid neuron-level attention on
  ``h -> y`` (an allocator ``Linear(30, 30 * 4)``), a batch of 508 rows (Vehicle's training fold);
* ``uci_mlp_plain``: the same MLP without attention;
* ``random_dag_20``: a 20-node random DAG (``gnp(20, 0.25)`` oriented by node order, width 8, tanh), every merge
  weighted by softmax branch attention (additive score), a batch of 256.

One timed sample is ``--steps`` iterations of ``zero_grad, forward, loss, backward``; rows give seconds per step.
``ModuleGraph.forward`` runs the plan as ``torch.fx``-compiled straight-line code; ``--interpret`` adds rows for
the step-by-step reference executor (``ModuleGraph.interpret``). Goal: ratio <= 1.10. ``--profile`` times nothing:
it lists, per network, the ATen operators whose calls per step differ between the two sides (``torch.profiler``).

The ratio of one process does not repeat in the next: on the 2-core machine of ``docs/benchmarks.md`` three runs
of ``--reps 7 --processes 1`` measured 1.23, 1.10 and 0.95 for ``uci_mlp``, the same operators on both sides. So the
measurement runs in ``--processes`` fresh processes (default 5), one after the other, and reports per network the
median of their ratios (``ratio``, each process's in ``process_ratios``) and the medians of their times.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import timing  # noqa: E402
from timing import Sample, interleaved, machine, resolve_device, row, timed  # noqa: E402

import modgraph as mg  # noqa: E402
from modgraph import models  # noqa: E402
from modgraph.io import atomic_write_text  # noqa: E402

GOAL = 1.10


# ------------------------------------------------------------------------------------------- the networks
class HandAttentionMLP(nn.Module):
    """The attention MLP written by hand: ``y = (h * A(h)) W^T + b`` with ``A(h) = sigmoid(h U + c)`` [B, in, out]."""

    def __init__(self, features: int, hidden: int, classes: int, attention: bool = True):
        super().__init__()
        self.hidden_features, self.classes = hidden, classes
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, classes)
        self.allocator = nn.Linear(hidden, hidden * classes) if attention else None

    def forward(self, x):
        h = torch.sigmoid(self.hidden(x))  # (B, hidden)
        if self.allocator is None:
            return self.out(h)
        a = torch.sigmoid(self.allocator(h)).view(-1, self.hidden_features, self.classes)  # (B, hidden, out)
        return torch.einsum("bi,bio,io->bo", h, a, self.out.weight.t()) + self.out.bias


class HandDAG(nn.Module):
    """A DAG of linear layers written by hand: a loop over a fixed topological order, merges weighted by softmax."""

    def __init__(self, order: list, preds: dict, width: int, outputs: list):
        super().__init__()
        self.order, self.preds, self.outputs = order, preds, outputs
        self.layers = nn.ModuleDict({v: nn.Linear(width, width) for v in order})
        self.keys = nn.ModuleDict({v: nn.ModuleList(nn.Linear(width, 32) for _ in preds[v])
                                   for v in order if len(preds[v]) > 1})
        self.query = nn.ParameterDict({v: nn.Parameter(torch.zeros(32)) for v in self.keys})
        self.v = nn.ParameterDict({v: nn.Parameter(torch.zeros(32)) for v in self.keys})

    def forward(self, x):
        out = {"x": x}
        for v in self.order:
            msgs = [out[u] for u in self.preds[v]]
            if len(msgs) > 1:
                keys = torch.stack([lin(m) for lin, m in zip(self.keys[v], msgs)], 1)  # (B, K, 32)
                w = torch.softmax((torch.tanh(keys + self.query[v]) * self.v[v]).sum(-1), dim=1)  # (B, K)
                x_v = msgs[0] * w[:, :1]
                for k in range(1, len(msgs)):
                    x_v = x_v + msgs[k] * w[:, k:k + 1]
            else:
                x_v = msgs[0]
            out[v] = torch.tanh(self.layers[v](x_v))
        return out[self.outputs[0]] if len(self.outputs) == 1 else {o: out[o] for o in self.outputs}


def hand_mlp_like(net: mg.ModuleGraph, attention: bool) -> HandAttentionMLP:
    h, y = net.nodes["h"], net.nodes["y"]
    ref = HandAttentionMLP(h.in_features, h.out_features, y.out_features, attention)
    with torch.no_grad():
        ref.hidden.weight.copy_(h.weight), ref.hidden.bias.copy_(h.bias)
        ref.out.weight.copy_(y.weight), ref.out.bias.copy_(y.bias)
        if attention:
            alloc = net.neuron_attention["h->y"].allocator
            ref.allocator.weight.copy_(alloc.weight), ref.allocator.bias.copy_(alloc.bias)
    return ref


def hand_dag_like(net: mg.ModuleGraph, width: int) -> HandDAG:
    steps = [s for s in net.plan.steps if not s.source]
    ref = HandDAG([s.name for s in steps], {s.name: list(s.preds) for s in steps}, width, list(net.outputs))
    with torch.no_grad():
        for s in steps:
            ref.layers[s.name].weight.copy_(net.nodes[s.name].weight)
            ref.layers[s.name].bias.copy_(net.nodes[s.name].bias)
            if s.name in ref.keys:
                att = net.branch_attention[s.name]
                for mine, theirs in zip(ref.keys[s.name], att.keys):
                    mine.weight.copy_(theirs.weight), mine.bias.copy_(theirs.bias)
                ref.query[s.name].copy_(att.query[0]), ref.v[s.name].copy_(att.scorer.v[0])
    return ref


def cases(seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """name -> (ModuleGraph, hand-written module, input, target), on ``device``."""
    torch.manual_seed(seed)
    out = {}
    for name, attention in (("uci_mlp", "sigmoid"), ("uci_mlp_plain", None)):
        net = mg.ModuleGraph(models.attention_mlp(18, 30, 4, attention))
        x, y = torch.randn(508, 18), torch.randint(0, 4, (508,))
        out[name] = (net, hand_mlp_like(net, attention is not None), x, y)
    net = mg.ModuleGraph(models.random_dag(20, 0.25, seed))
    x = torch.randn(256, 8)
    out["random_dag_20"] = (net, hand_dag_like(net, 8), x, None)
    return {k: (net.to(device), ref.to(device), x.to(device), None if y is None else y.to(device))
            for k, (net, ref, x, y) in out.items()}


def loss_of(output, target):
    if target is not None:
        return F.cross_entropy(output, target)
    if isinstance(output, dict):
        return sum(o.square().mean() for o in output.values())
    return output.square().mean()


def check_equal(net, ref, x) -> None:
    """The hand-written module computes what the DAG computes (else the comparison would mean nothing)."""
    with torch.no_grad():
        a, b = net(x), ref(x)
    a, b = (a, b) if isinstance(a, dict) else ({"y": a}, {"y": b})
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)


def train_steps(model, forward, x, y, steps: int) -> None:
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_of(forward(x), y).backward()


def sampler(model, forward, x, y, steps: int):
    """A timed sample: ``steps`` iterations of zero_grad, forward, loss, backward."""
    return lambda: timed(lambda: train_steps(model, forward, x, y, steps), sync=x.device)


# views and indexing: no arithmetic, no copy; the only operators a step of ours may add to the reference's (see
# ``operator_differences``)
NO_COMPUTE = frozenset({"aten::detach", "aten::unflatten", "aten::view", "aten::reshape", "aten::select",
                        "aten::select_backward", "aten::slice", "aten::slice_backward"})


def operator_counts(model, forward, x, y, steps: int = 5) -> collections.Counter:
    """ATen operator -> calls per step, from a ``torch.profiler`` trace of ``steps`` training steps."""
    from torch.profiler import ProfilerActivity, profile

    train_steps(model, forward, x, y, 1)  # warm-up: the fx compile is not part of a step
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_steps(model, forward, x, y, steps)
    counts = collections.Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            counts[event.key] += event.count
    return collections.Counter({k: v / steps for k, v in counts.items()})


def operator_differences(seed: int = 0, steps: int = 5) -> dict:
    """network -> {operator: (calls per step ours, reference)} for every operator whose counts differ."""
    out = {}
    for name, (net, ref, x, y) in cases(seed).items():
        ours, theirs = operator_counts(net, net, x, y, steps), operator_counts(ref, ref, x, y, steps)
        out[name] = {k: (ours[k], theirs[k]) for k in sorted(set(ours) | set(theirs)) if ours[k] != theirs[k]}
    return out


def print_profile(steps: int) -> None:
    for name, diff in operator_differences(steps=steps).items():
        print(f"{name}: " + ("the same ATen operators, the same number of calls per step" if not diff else
                             "ATen operators called a different number of times per step (ours / hand-written):"))
        for op, (a, b) in diff.items():
            print(f"    {op:28s} {a:7.1f} / {b:7.1f}" + ("" if op in NO_COMPUTE else "   <- computes"))


def run(reps: int = 11, steps: int = 100, interpret: bool = False, seed: int = 0,
        device: torch.device | str = "cpu") -> list[dict]:
    rows = []
    for name, (net, ref, x, y) in cases(seed, device).items():
        check_equal(net, ref, x)
        variants = {"ours": sampler(net, net, x, y, steps), "reference": sampler(ref, ref, x, y, steps)}
        if interpret:
            variants["interpret"] = sampler(net, net.interpret, x, y, steps)
        for fn in variants.values():  # warm-up: the fx compile, allocator
            fn()
        samples = {k: [Sample(float(v) / steps, v.cpu / steps) for v in vs]  # seconds per step
                   for k, vs in interleaved(variants, reps).items()}
        detail = {"unit": "s per step", "steps_per_sample": steps, "batch": int(x.shape[0]),
                  "nodes": net.graph.number_of_nodes(),
                  "edges": net.graph.number_of_edges(), "parameters": sum(p.numel() for p in net.parameters()),
                  "threads": torch.get_num_threads(), "device": str(x.device)}
        rows.append(row(f"executor/{name}", samples["ours"], "hand-written nn.Module", samples["reference"], GOAL,
                        **detail))
        if interpret:
            rows.append(row(f"executor/{name} (interpret)", samples["interpret"], "hand-written nn.Module",
                            samples["reference"], None, **detail))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=timing.positive_int, default=11, help="interleaved repetitions (default 11)")
    parser.add_argument("--steps", type=timing.positive_int, default=100,
                        help="forward+backward iterations per sample (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: tiny ops, shared "
                                                                "cores; 0 keeps torch's choice)")
    parser.add_argument("--interpret", action="store_true", help="also time ModuleGraph.interpret")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu (default: auto)")
    parser.add_argument("--profile", action="store_true",
                        help="no timing: list the ATen operators whose calls per step differ between ours and the "
                             "hand-written module (torch.profiler, --steps steps, CPU)")
    timing.add_processes_option(parser)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 (torch's choice) or positive, got {args.threads}")
    if args.profile:
        print_profile(args.steps)
        return 0
    rows = timing.rows_of_processes(parser, args, __file__, argv)
    if rows is not None:
        print(f"medians of {args.processes} processes:")
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = run(args.reps, args.steps, args.interpret, device=resolve_device(args.device))
    for r in rows:
        goal = f"(goal <= {r['goal']:.2f}: {'met' if r['met'] else 'MISSED'})" if r["goal"] else ""
        print(f"{r['name']:34s} ours {1e3 * r['ours_s']:7.3f} ms/step  reference "
              f"{1e3 * r['reference_s']:7.3f} ms/step  ratio {r['ratio']:.3f} "
              f"(CPU time {r['cpu_ratio']:.3f}) {goal}"
              + (f" processes: {', '.join(f'{q:.3f}' for q in r['process_ratios'])}" if "process_ratios" in r else ""))
    if args.json:
        atomic_write_text(args.json, json.dumps({"results": rows, "machine": machine()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
