"""Redraw every figure in docs/figures: from the committed results where they exist, else from a short recorded run.

=================================  =======================================================================  ======
figure                             made from                                                                group
=================================  =======================================================================  ======
branches.png                       ``examples/branches.yaml`` (``modgraph draw``: the DAG, attended edges)  dag
prune_uci.png, prune_cora.png,     ``docs/results/prune_*.json`` (``experiments/prune.py --plot``):          prune
prune_citeseer.png                 accuracy against sparsity, mean ± std over seeds
<name>_dag.png, <name>_heatmap     the six UCI attention MLPs of ``experiments/prune.py --figures``         uci
.png, <name>_histograms.png        (seed 0, same split, training and recording): DAG with edge widths by
                                   weight, ``[hidden, out]`` attention heatmap, weight histograms over
                                   training (an epoch = 50 full-batch steps)
cora_histograms.png                the attention GCN on Cora, recorded during training as                   cora
                                   ``experiments/prune.py --dataset cora --figures`` does (seed 0)
training_curves.png                glass attention MLP, joint against the paper's alternating schedule:      curves
                                   training loss and validation score per evaluation, phases shaded
cora_hop_weights.png               ``hop_attention`` on Cora (``experiments/cora.py``'s default, seed 0):      hops
                                   the weight each node's gate gives each propagation depth, by degree
=================================  =======================================================================  ======

    python docs/make_figures.py                          # everything into docs/figures (a few minutes, 1 thread)
    python docs/make_figures.py --only prune,dag         # the ones drawn from files alone (seconds, no data)
    python docs/make_figures.py --quick --out /tmp/figs  # every kind with tiny budgets and one UCI table (seconds)

The recorded runs read the offline data (``--data-root``, else ``$MODGRAPH_DATA``). On a CPU the same seed gives
the same weights bit for bit, so the full run redraws the committed pictures; ``--quick`` pictures are for tests
and are not meant to be committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
RESULTS = ROOT / "docs" / "results"
GROUPS = ("dag", "prune", "uci", "cora", "curves", "hops")
UCI = ("balance", "ecoli", "glass", "liver", "sonar", "vehicle")


def _experiment():
    """``experiments/prune.py`` as a module: the figures reuse its split, network, training and recording."""
    name = "modgraph_docs_prune_experiment"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "prune.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def dag(out: Path, quick: bool, data_root) -> list[Path]:
    import modgraph as mg
    from modgraph.plot import dag_figure

    return [dag_figure(mg.ModuleGraph.from_file(ROOT / "examples" / "branches.yaml"), None, out / "branches.png")]


def prune_curves(out: Path, quick: bool, data_root) -> list[Path]:
    from modgraph.plot import sparsity_curves

    paths = []
    for name in ("uci", "cora", "citeseer"):
        rows = json.loads((RESULTS / f"prune_{name}.json").read_text())["results"]  # the variants chosen on val
        paths.append(sparsity_curves(rows, out / f"prune_{name}.png",
                                     title="test accuracy after pruning and fine-tuning"))
    return paths


def uci_recordings(out: Path, quick: bool, data_root) -> list[Path]:
    import modgraph as mg
    from modgraph.record import EdgeRecorder

    ex = _experiment()
    budget = ex.FAST["uci"] if quick else ex.BUDGETS["uci"]
    paths = []
    for name in ("glass",) if quick else UCI:
        torch.manual_seed(0)  # as run_uci(name, seed=0) with --figures
        data = ex.uci_split(name, 0, data_root, torch.device("cpu"))
        net = mg.ModuleGraph(ex.mlp(data["features"], ex.UCI_HIDDEN[name], data["classes"]))
        during = EdgeRecorder().attach(net)
        ex.train(net, data, budget.steps, patience=budget.patience, recorder=during)
        final = ex.record(net, data)
        during.detach()
        ex.write_figures(out, name, during, net, final)
        paths += [out / f"{name}_{kind}.png" for kind in ("histograms", "heatmap", "dag")]
    return paths


def cora_recording(out: Path, quick: bool, data_root) -> list[Path]:
    import modgraph as mg
    from modgraph.plot import weight_histograms
    from modgraph.record import EdgeRecorder

    ex = _experiment()
    budget = ex.FAST["graph"] if quick else ex.BUDGETS["graph"]
    d = ex.graph_data("cora", data_root, torch.device("cpu"))
    recipe = ex.cora.RECIPES["attention_gcn"]
    torch.manual_seed(0)  # as run_graph("cora", seed=0) with --figures
    net = mg.ModuleGraph(recipe.build(d["features"], d["classes"], recipe.attention))
    during = EdgeRecorder().attach(net)
    ex.train_graph(net, d, d["edge_index"], budget.steps, budget.patience, recipe.lr, recorder=during,
                   record_every=10 if quick else 50)
    during.detach()
    return [weight_histograms(during, out / "cora_histograms.png")]


def training_curves(out: Path, quick: bool, data_root) -> list[Path]:
    """The glass attention MLP of ``experiments/prune.py`` (seed 0 split), trained with each schedule."""
    import modgraph as mg
    from modgraph.plot import training_curves as draw
    from modgraph.train import fit

    ex = _experiment()
    data = ex.uci_split("glass", 0, data_root, torch.device("cpu"))
    x, y = data["train"]
    runs = {}
    for schedule in ("joint", "alternating"):
        torch.manual_seed(0)
        net = mg.ModuleGraph(ex.mlp(data["features"], ex.UCI_HIDDEN["glass"], data["classes"]))
        runs[schedule] = fit(net, lambda n: F.cross_entropy(n(x), y), lambda n: ex.val_score(n, data),
                             schedule=schedule, steps=100 if quick else 2000, eval_every=5,
                             optimizer=lambda params: torch.optim.Adam(params, lr=0.01))
    title = "glass, attention MLP 9-22-6: training loss and validation score (accuracy - 0.001 x loss)"
    return [draw(runs, out / "training_curves.png", title=title)]


def hop_weights(out: Path, quick: bool, data_root) -> list[Path]:
    """``hop_attention`` trained on Cora as ``experiments/cora.py`` trains it (seed 0), its depth weights by degree."""
    from torch_geometric.utils import degree

    import modgraph as mg
    from modgraph.plot import branch_profile
    from modgraph.train import fit

    cora = _experiment().cora
    d = cora.prepare(cora.load_planetoid("cora", data_root), torch.device("cpu"))
    recipe = cora.RECIPES["hop_attention"].for_dataset("cora")
    torch.manual_seed(0)
    net = mg.ModuleGraph(recipe.build(d["features"], d["classes"], recipe.attention))
    x, ei, y = d["x"], d["edge_index"], d["y"]
    fit(net, lambda n: F.cross_entropy(n(x, edge_index=ei)[d["train"]], y[d["train"]]),
        lambda n: cora.selection_score(n, d),
        steps=20 if quick else recipe.epochs, optimizer=cora.optimizer_factory(net, recipe), patience=recipe.patience)
    net.eval()
    with torch.no_grad():
        net(x, edge_index=ei)
    weights = {u: w for (u, v), w in net.edge_weights().items() if v == "out"}
    weights = {k.lstrip("z"): weights[k] for k in sorted(weights, key=lambda k: int(k[1:]))}
    deg = degree(ei[1], d["x"].shape[0])
    groups = {"in-degree 1": deg == 1, "2-3": (deg >= 2) & (deg <= 3), "4-7": (deg >= 4) & (deg <= 7),
              ">= 8": deg >= 8}
    title = "hop_attention, Cora, seed 0: gate weight per depth, nodes by in-degree"
    return [branch_profile(weights, out / "cora_hop_weights.png", groups=groups, xlabel="depth k of z_k",
                           title=title)]


MAKERS = {"dag": dag, "prune": prune_curves, "uci": uci_recordings, "cora": cora_recording,
          "curves": training_curves, "hops": hop_weights}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(FIGURES), help="folder to write the PNGs to (default docs/figures)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups: {', '.join(GROUPS)}")
    p.add_argument("--quick", action="store_true", help="tiny budgets and one UCI table: seconds, for tests")
    p.add_argument("--data-root", default=None, help="offline data folder (default $MODGRAPH_DATA, else ./data)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in MAKERS]
    if unknown:
        print(f"make_figures: error: --only: unknown {', '.join(unknown)}; valid: {', '.join(GROUPS)}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from modgraph.errors import ModgraphError

    for group in groups:
        start = time.perf_counter()
        try:
            paths = MAKERS[group](out, args.quick, args.data_root)
        except ModgraphError as err:
            print(f"make_figures: error: {group}: {err}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"wrote {path}")
        print(f"{group}: {len(paths)} figure(s) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
