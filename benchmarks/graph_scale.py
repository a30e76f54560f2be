"""Time and peak memory per full-batch epoch of graph-edge attention, from 10k to 1M nodes, beside PyG's GATConv.

    python benchmarks/graph_scale.py                          # 10k, 100k, 1M nodes (average degree 10)
    python benchmarks/graph_scale.py --sizes 2000,10000,50000 --reps 2 --json scale.json

Every (size, model) runs in a fresh process (so its peak memory is its own) on a stochastic-block-model graph
(``modgraph.data.sbm_graph``, 32 features, 5 classes): one warm-up epoch, then ``--epochs`` timed epochs of
forward, backward and Adam on the whole graph. Models, with the same widths:

* ``ours``: the attention GCN DAG (``modgraph.models.gcn_net``, two ``attention_conv``: 2 heads x 8 hidden, softmax
  gate per target node, GAT score, ``combine="gcn"``, dropout 0.5);
* ``pyg_gat``: PyG's ``GATConv`` (2 heads x 8, then 1 head), the reference for graph-edge attention;
* ``gather_scatter``: the floor, two layers of message passing reduced to their memory traffic (a linear layer,
  ``h[src]``, a sum into ``dst`` with PyG's ``scatter``; 16 then 5 features): what the memory system alone charges
  per edge at each size. Its slope is the machine's, and the other models' slopes are read against it.

Repetitions are interleaved (ours, GAT, floor, then the reverse order, ...). Memory is the peak resident set during
training minus the resident set before it (the graph and the model; Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``, else ``ru_maxrss``). The growth is fitted as a slope in log-log against the number of
edges: 1.0 is linear; a dense ``N x N`` anywhere would show as 2 (and could not run at a million nodes).

``--order class`` relabels the nodes so that each class's nodes have consecutive ids (``Data.subgraph`` with a
permutation, edges sorted again), the same graph for every model. The generator's ids are random, so a node's
neighbours lie anywhere in the node tables; 80 % of the edges join nodes of one class, so after relabelling most
of an edge's gathers stay within a fifth of the table. Only the memory locality changes, not the work: a time slope
that falls with it comes from the memory hierarchy, not from the algorithm.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------------- one process
def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def graph(nodes: int, avg_degree: float, seed: int, device, order: str = "random"):
    """The benchmark's graph: ``sbm_graph`` (32 features, 5 classes), its node ids as generated (``"random"``) or
    consecutive per class (``"class"``: the same graph relabelled, edges sorted again)."""
    import torch
    from torch_geometric.utils import coalesce

    from modgraph.data import sbm_graph

    data = sbm_graph(nodes, num_classes=5, avg_degree=avg_degree, num_features=32, seed=seed, device=device)
    if order == "class":
        data = data.subgraph(torch.argsort(data.y, stable=True))
        data.edge_index = coalesce(data.edge_index, num_nodes=nodes)
    elif order != "random":
        raise ValueError(f"order must be 'random' or 'class', got {order!r}")
    return data


def worker(nodes: int, model: str, epochs: int, avg_degree: float, threads: int, seed: int,
           device: str = "cpu", order: str = "random") -> dict:
    import resource

    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import GATConv

    import modgraph as mg
    from modgraph import models

    torch.set_num_threads(threads)
    dev = torch.device(device)
    data = graph(nodes, avg_degree, seed, dev, order)
    x, ei, y = data.x, data.edge_index, data.y
    train = data.train_mask
    torch.manual_seed(seed)
    if model == "ours":
        net = mg.ModuleGraph(models.gcn_net(32, 5, conv="attention", hidden=16, heads=2, dropout=0.5,
                                            attention_dropout=0.5, activation="elu")).to(dev)

        def forward():
            return net(x, edge_index=ei)
    elif model == "pyg_gat":
        class GAT(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = GATConv(32, 8, heads=2, dropout=0.5)
                self.conv2 = GATConv(16, 5, heads=1, concat=False, dropout=0.5)

            def forward(self, x, edge_index):
                x = F.dropout(x, 0.5, self.training)
                x = F.elu(self.conv1(x, edge_index))
                x = F.dropout(x, 0.5, self.training)
                return self.conv2(x, edge_index)

        net = GAT().to(dev)

        def forward():
            return net(x, ei)
    elif model == "gather_scatter":
        from torch_geometric.utils import scatter

        class GatherScatter(torch.nn.Module):  # the memory traffic of message passing and nothing else
            def __init__(self):
                super().__init__()
                self.lin1, self.lin2 = torch.nn.Linear(32, 16), torch.nn.Linear(16, 5)

            def forward(self, x, edge_index):
                src, dst = edge_index
                h = F.elu(scatter(self.lin1(x)[src], dst, 0, dim_size=x.size(0), reduce="sum"))
                return scatter(self.lin2(h)[src], dst, 0, dim_size=x.size(0), reduce="sum")

        net = GatherScatter().to(dev)

        def forward():
            return net(x, ei)
    else:
        raise ValueError(f"unknown model {model!r}")
    opt = torch.optim.Adam(net.parameters(), lr=0.005)

    def epoch():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward()[train], y[train]).backward()
        opt.step()

    cuda = dev.type == "cuda"
    if cuda:  # GPU memory: the allocator's peak above what is allocated before training
        torch.cuda.synchronize(dev)
        before_kib = torch.cuda.memory_allocated(dev) / 1024
        torch.cuda.reset_peak_memory_stats(dev)
        reset = True
    else:
        before_kib = _rss_kib("VmRSS")
        reset = _reset_peak()
    times = []
    for i in range(epochs + 1):  # the first is a warm-up
        start = time.perf_counter()
        epoch()
        if cuda:
            torch.cuda.synchronize(dev)
        if i:
            times.append(time.perf_counter() - start)
    if cuda:
        peak_kib = torch.cuda.max_memory_allocated(dev) / 1024
    else:
        peak_kib = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nodes": nodes, "edges": int(ei.size(1)), "model": model, "epoch_s": statistics.median(times),
            "epoch_samples_s": times, "peak_rss_mb": peak_kib / 1024,
            "train_mb": (peak_kib - before_kib) / 1024 if before_kib is not None else None,
            "peak_reset": reset, "threads": threads, "device": str(dev), "order": order,
            "memory": "cuda max_memory_allocated" if cuda else "resident set (VmHWM)"}


def run_worker(nodes: int, model: str, epochs: int, avg_degree: float, threads: int, seed: int = 0,
               device: str = "cpu", order: str = "random") -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--nodes", str(nodes), "--model", model,
           "--epochs", str(epochs), "--avg-degree", str(avg_degree), "--threads", str(threads), "--seed", str(seed),
           "--device", device, "--order", order]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- the benchmark
def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x)."""
    pts = [(math.log(a), math.log(b)) for a, b in zip(xs, ys) if a > 0 and b is not None and b > 0]
    if len(pts) < 2:
        return None
    mx, my = statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def run(sizes: list[int], reps: int = 3, epochs: int = 2, avg_degree: float = 10.0, threads: int = 1,
        log=print, device: str = "cpu", order: str = "random") -> tuple[list[dict], dict]:
    """Rows per size (ours vs PyG GAT: time and memory ratios) and the log-log slopes per model."""
    sys.path.insert(0, str(HERE))
    from timing import median

    models = ("ours", "pyg_gat", "gather_scatter")
    rows, per_model = [], {m: {"edges": [], "time": [], "mem": []} for m in models}
    for nodes in sizes:
        runs: dict[str, list[dict]] = {m: [] for m in models}
        for rep in range(reps):
            for m in (models if rep % 2 == 0 else models[::-1]):
                runs[m].append(run_worker(nodes, m, epochs, avg_degree, threads, seed=0, device=device, order=order))
                log(f"  {nodes} nodes, {m}: {runs[m][-1]['epoch_s']:.3f} s/epoch, "
                    f"{runs[m][-1]['train_mb']:.0f} MiB training, peak RSS {runs[m][-1]['peak_rss_mb']:.0f} MiB")
        med = {m: {"epoch_s": median([r["epoch_s"] for r in runs[m]]),
                   "train_mb": median([r["train_mb"] for r in runs[m]]),
                   "peak_rss_mb": median([r["peak_rss_mb"] for r in runs[m]])} for m in models}
        edges = runs["ours"][0]["edges"]
        for m in models:
            per_model[m]["edges"].append(edges)
            per_model[m]["time"].append(med[m]["epoch_s"])
            per_model[m]["mem"].append(med[m]["train_mb"])
        ours, ref, floor = med["ours"], med["pyg_gat"], med["gather_scatter"]
        rows.append({"name": f"graph_scale/{nodes}", "nodes": nodes, "edges": edges,
                     "ours_s": ours["epoch_s"], "reference": "PyG GATConv (same widths)",
                     "reference_s": ref["epoch_s"], "ratio": ours["epoch_s"] / ref["epoch_s"],
                     "goal": None, "ours_train_mb": ours["train_mb"], "reference_train_mb": ref["train_mb"],
                     "memory_ratio": ours["train_mb"] / ref["train_mb"],
                     "ours_peak_rss_mb": ours["peak_rss_mb"], "reference_peak_rss_mb": ref["peak_rss_mb"],
                     "reps": reps, "epochs_per_rep": epochs, "threads": threads, "device": device, "order": order,
                     "ours_samples_s": [r["epoch_s"] for r in runs["ours"]],
                     "reference_samples_s": [r["epoch_s"] for r in runs["pyg_gat"]],
                     "floor_s": floor["epoch_s"], "floor_train_mb": floor["train_mb"],
                     "ratio_to_floor": ours["epoch_s"] / floor["epoch_s"],
                     "reference_ratio_to_floor": ref["epoch_s"] / floor["epoch_s"]})
    slopes = {m: {"time_vs_edges": slope(v["edges"], v["time"]), "memory_vs_edges": slope(v["edges"], v["mem"])}
              for m, v in per_model.items()}
    return rows, slopes


def node_counts(text: str) -> list[int]:
    """``--sizes``: comma-separated node counts, each at least 5 (the generator's classes)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated node counts, got {text!r}") from None
    if any(v < 5 for v in values):
        raise argparse.ArgumentTypeError(f"every size must be at least 5 nodes (5 classes), got {text!r}")
    return values


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE))
    from timing import positive_int, resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=node_counts, default="10000,100000,1000000",
                   help="node counts, comma-separated, each at least 5 (the classes)")
    p.add_argument("--avg-degree", type=float, default=10.0)
    p.add_argument("--reps", type=positive_int, default=3, help="interleaved repetitions per size (default 3)")
    p.add_argument("--epochs", type=positive_int, default=2,
                   help="timed epochs per process, after one warm-up (default 2)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu (default: auto); on CUDA memory is the allocator's peak")
    p.add_argument("--order", default="random", choices=["random", "class"],
                   help="node ids as generated (random) or consecutive per class (class); see the docstring")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--nodes", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.avg_degree >= 0:
        p.error(f"--avg-degree must be a number >= 0, got {args.avg_degree}")
    if args.worker:
        print(json.dumps(worker(args.nodes, args.model, args.epochs, args.avg_degree, args.threads, args.seed,
                                args.device, args.order)))
        return 0
    from modgraph.io import atomic_write_text

    rows, slopes = run(args.sizes, args.reps, args.epochs, args.avg_degree, args.threads,
                       log=lambda m: print(m, file=sys.stderr), device=str(resolve_device(args.device)),
                       order=args.order)
    print(f"{'nodes':>9s} {'edges':>10s} {'ours s/ep':>10s} {'GAT s/ep':>9s} {'ratio':>6s} {'floor s/ep':>10s} "
          f"{'ours/floor':>10s} {'ours MiB':>9s} {'GAT MiB':>8s} {'mem ratio':>9s}")
    for r in rows:
        print(f"{r['nodes']:9d} {r['edges']:10d} {r['ours_s']:10.3f} {r['reference_s']:9.3f} {r['ratio']:6.2f} "
              f"{r['floor_s']:10.3f} {r['ratio_to_floor']:10.2f} {r['ours_train_mb']:9.0f} "
              f"{r['reference_train_mb']:8.0f} {r['memory_ratio']:9.2f}")
    for m, s in slopes.items():
        print(f"log-log slope vs edges, {m}: time {s['time_vs_edges']:.2f}, memory {s['memory_vs_edges']:.2f} "
              f"(1.0 = linear)")
    if args.json:
        atomic_write_text(args.json, json.dumps({"results": rows, "slopes": slopes, "order": args.order}, indent=2)
                          + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
