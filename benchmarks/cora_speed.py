"""Time 200 Cora epochs of modgraph's GCN and attention GCNs beside PyG's GCN and GAT example models.

    python benchmarks/cora_speed.py                 # 5 interleaved repetitions, medians and ratios
    python benchmarks/cora_speed.py --reps 7 --threads 1 --json speed.json

Every model runs the same loop: per epoch one training step (Adam) and one evaluation forward, as PyG's
``examples/gcn.py``. The PyG models are those examples: dense row-normalised features with dense dropout,
``GCNConv(cached=True)`` and ``GATConv`` (8 heads x 8, dropout 0.6). The modgraph models are the DAGs of
``experiments/cora.py`` with sparse (CSR) features and dropout over the nonzeros; ``+dense`` rows feed them the
dense matrix instead, to measure what the sparse input path gains; ``+recorder`` rows train with an
``EdgeRecorder`` attached (every training forward recorded, paused during evaluation, an epoch closed every epoch),
to measure what recording every graph edge's weight costs. Repetitions are interleaved (every model once per round)
so that load from other processes hits all of them alike; the table shows medians and the ratio to PyG's GCN.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv, GCNConv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from common import format_table, positive, resolve_device, run_main, write_json  # noqa: E402
from cora import RECIPES, optimizer_factory, prepare  # noqa: E402

import modgraph as mg  # noqa: E402
from modgraph.data import load_planetoid  # noqa: E402
from modgraph.record import EdgeRecorder  # noqa: E402


class PyGGCN(torch.nn.Module):
    """PyG's examples/gcn.py model."""

    def __init__(self, features, hidden, classes):
        super().__init__()
        self.conv1 = GCNConv(features, hidden, cached=True)
        self.conv2 = GCNConv(hidden, classes, cached=True)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.5, training=self.training)
        x = self.conv1(x, edge_index).relu()
        x = F.dropout(x, p=0.5, training=self.training)
        return self.conv2(x, edge_index)


class PyGGAT(torch.nn.Module):
    """PyG's examples/gat.py model."""

    def __init__(self, features, hidden, classes, heads=8):
        super().__init__()
        self.conv1 = GATConv(features, hidden, heads, dropout=0.6)
        self.conv2 = GATConv(hidden * heads, classes, heads=1, concat=False, dropout=0.6)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        return self.conv2(x, edge_index)


def make_models(d: dict, dense_x: torch.Tensor) -> dict:
    """name -> (build() -> (model, optimizer, recorder or None), features)."""
    f, c = d["features"], d["classes"]

    def pyg(cls, hidden, lr):
        def build():
            model = cls(f, hidden, c).to(dense_x.device)
            return model, torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4), None
        return build

    def ours(name, record=False):
        recipe = RECIPES[name].for_dataset("cora")

        def build():
            net = mg.ModuleGraph(recipe.build(f, c, recipe.attention)).to(dense_x.device)
            return (net, optimizer_factory(net, recipe)(list(net.parameters())),
                    EdgeRecorder().attach(net) if record else None)
        return build

    return {
        "PyG GCN example": (pyg(PyGGCN, 16, 0.01), dense_x),
        "PyG GAT example": (pyg(PyGGAT, 8, 0.005), dense_x),
        "modgraph gcn": (ours("gcn"), d["x"]),
        "modgraph gcn +dense": (ours("gcn"), dense_x),
        "modgraph attention_gcn": (ours("attention_gcn"), d["x"]),
        "modgraph attention_gcn +dense": (ours("attention_gcn"), dense_x),
        "modgraph attention_gcn +recorder": (ours("attention_gcn", record=True), d["x"]),
        "modgraph hop_attention": (ours("hop_attention"), d["x"]),
        "modgraph hop_attention +recorder": (ours("hop_attention", record=True), d["x"]),
    }


def minor_faults() -> int:
    """The process's minor page faults so far (0 where ``resource`` is missing, e.g. on Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_epochs(build, x, d: dict, epochs: int, seed: int) -> tuple[float, int]:
    """Seconds for ``epochs`` epochs of the model ``build()`` makes, and the minor page faults of the process
    meanwhile (fresh memory written for the first time: ``getrusage``; 0 where the system does not count them)."""
    torch.manual_seed(seed)
    model, opt, recorder = build()
    ei, y, train = d["edge_index"], d["y"], d["train"]
    paused = recorder.paused if recorder is not None else contextlib.nullcontext

    def forward(m):
        return m(x, edge_index=ei) if isinstance(m, mg.ModuleGraph) else m(x, ei)

    if x.is_cuda:
        torch.cuda.synchronize()
    faults = minor_faults()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(forward(model)[train], y[train]).backward()
        opt.step()
        model.eval()
        with torch.no_grad(), paused():
            forward(model).argmax(-1)
        if recorder is not None:
            recorder.epoch_end()
    if x.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    faults = minor_faults() - faults
    if recorder is not None:
        recorder.detach()
    return seconds, faults


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu (default: auto)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    for flag in ("epochs", "reps", "threads"):
        positive(f"--{flag}", getattr(args, flag))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_planetoid("cora", args.data_root)
    d = prepare(data, device)
    dense_x = (data.x / data.x.sum(-1, keepdim=True).clamp(min=1.0)).to(device)
    models = make_models(d, dense_x)
    times: dict[str, list[float]] = {name: [] for name in models}
    faults: dict[str, list[int]] = {name: [] for name in models}
    for build, x in models.values():  # warm-up: lazy init, caches, allocator
        time_epochs(build, x, d, 3, seed=0)
    for rep in range(args.reps):
        for name, (build, x) in models.items():
            seconds, minor = time_epochs(build, x, d, args.epochs, seed=rep)
            times[name].append(seconds)
            faults[name].append(minor)
        print(f"round {rep + 1}/{args.reps}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()),
              file=sys.stderr)
    base = statistics.median(times["PyG GCN example"])
    rows = [{"model": name, "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
             "ratio_to_pyg_gcn": statistics.median(t) / base, "times_s": t,
             "minor_faults_per_epoch": statistics.median(faults[name]) / args.epochs} for name, t in times.items()]
    print(f"Cora, {args.epochs} epochs (train step + eval forward), {args.reps} interleaved repetitions, "
          f"device {device}, torch threads {torch.get_num_threads()}")
    print(format_table(rows, [("model", "model", str), ("median (s)", "median_s", lambda v: f"{v:.2f}"),
                              ("min (s)", "min_s", lambda v: f"{v:.2f}"), ("max (s)", "max_s", lambda v: f"{v:.2f}"),
                              ("x PyG GCN", "ratio_to_pyg_gcn", lambda v: f"{v:.2f}"),
                              ("page faults / epoch", "minor_faults_per_epoch", lambda v: f"{v:.0f}")]))
    if args.json:
        meta = {"epochs": args.epochs, "reps": args.reps, "device": str(device), "threads": torch.get_num_threads(),
                "torch": torch.__version__}
        path = write_json(args.json, [{**r, **meta} for r in rows])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
