"""Prune attention networks by their recorded attention, against magnitude, random and SGL, over a sparsity sweep.

UCI (``--dataset balance,...`` or ``uci``): train the paper's MLP ``d - hidden - C`` with a sigmoid neuron-level
gate on ``hidden -> C``, record every attention weight over the training data with an ``EdgeRecorder``, then for
each criterion and sparsity remove that fraction of the hidden units (``modgraph.prune.prune``: a physically
smaller network), fine-tune it, and measure test accuracy. Protocol: a stratified 60/20/20 train/validation/test
split per seed, standardisation fitted on the training part, every choice on validation.

Graphs (``--dataset cora,citeseer``): train ``experiments/cora.py``'s attention GCN (its recipe and public split),
record both graph gates over the full graph, then remove that fraction of the graph's edges (both directions of an
undirected edge together; self-loops, which the convs add, are kept) by attention, magnitude (the GCN coefficient
``1/sqrt(d_i d_j)``) or at random, fine-tune on the sparsified graph, and measure test accuracy. SGL scores hidden
units, not edges, and is skipped on graphs.

Prints a table per data set and the largest sparsity each criterion reaches within 1 point of the unpruned
accuracy; ``--plot`` draws the accuracy-vs-sparsity curves, ``--json`` writes every row. ``--checkpoint-dir DIR``
saves every prune point (data set, seed, criterion, variant, sparsity) as it finishes; ``--resume`` skips the saved
points and retrains the base network of a data set and seed whose points are not all saved (docs/checkpoints.md).

Examples:
    python experiments/prune.py --dataset glass --seeds 3
    python experiments/prune.py --dataset uci --json runs/prune.json --plot docs/figures/prune_uci.png
    python experiments/prune.py --dataset cora --json runs/cora.json
    python experiments/prune.py --dataset balance --fast
    python experiments/prune.py --dataset uci --checkpoint-dir runs/prune-ckpt --resume
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules common.py and cora.py

import cora  # noqa: E402
from common import (  # noqa: E402
    UsageError,
    add_common_args,
    checkpoint_config,
    integer,
    number,
    open_run_dir,
    progress,
    resolve_device,
    run_main,
    save_outputs,
    script_parser,
    setup_logging,
)

import modgraph as mg  # noqa: E402
from modgraph import models  # noqa: E402
from modgraph.data import load_planetoid, load_uci  # noqa: E402
from modgraph.io import atomic_write_json  # noqa: E402
from modgraph.prune import (  # noqa: E402
    AttentionImportance,
    MagnitudeImportance,
    RandomImportance,
    SGLImportance,
    prune,
    sgl_penalty,
)
from modgraph.record import EdgeRecorder  # noqa: E402
from modgraph.train import RunDir, fit  # noqa: E402

log = logging.getLogger("prune")

#: hidden widths of the paper's Table 1
UCI_HIDDEN = {"balance": 18, "ecoli": 20, "glass": 22, "liver": 22, "sonar": 20, "vehicle": 30}
GRAPH_DATASETS = ("cora", "citeseer")
CRITERIA = ("attention", "magnitude", "random", "sgl")
#: variants per kind of data set and criterion; when several are run, the one with the best mean validation
#: accuracy over the sweep is reported. UCI attention: the recorded mean weight of a unit's connections, averaged
#: ("mean") or maximised ("max") over its outputs, optionally times |W_oi| ("weighted", "weighted-max"); UCI
#: magnitude: L1 of in+out, only out or only in weights. Graph attention: the mean weight ("mean") or the weight
#: relative to a uniform allocation over the target's in-edges ("relative").
VARIANTS = {
    "uci": {"attention": ("mean", "max", "weighted", "weighted-max"), "magnitude": ("both", "out", "in"),
            "random": ("uniform",), "sgl": ("l2",)},
    "graph": {"attention": ("mean", "relative"), "magnitude": ("gcn",), "random": ("uniform",)},
}
#: UCI: fixed on validation in a development run (docs/pruning.md, "Choices made on validation"); graphs: both
#: attention variants run and the one with the better validation accuracy is reported, per data set.
DEFAULT_VARIANTS = {
    "uci": {"attention": ("mean",), "magnitude": ("both",), "random": ("uniform",), "sgl": ("l2",)},
    "graph": {"attention": ("mean", "relative"), "magnitude": ("gcn",), "random": ("uniform",)},
}
SPARSITIES = {"uci": (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9), "graph": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)}


@dataclass
class Budget:
    """Training and fine-tuning of one kind of data set (full-batch steps; evaluation every 5 steps)."""

    steps: int
    patience: int
    finetune_steps: int
    finetune_lr: float
    finetune_patience: int


BUDGETS = {
    "uci": Budget(steps=2000, patience=30, finetune_steps=1000, finetune_lr=0.01, finetune_patience=40),
    # cora.py's attention-GCN recipe (500 epochs, patience 100, lr 0.005), then a short fine-tune per point
    "graph": Budget(steps=cora.RECIPES["attention_gcn"].epochs, patience=cora.RECIPES["attention_gcn"].patience,
                    finetune_steps=50, finetune_lr=cora.RECIPES["attention_gcn"].lr, finetune_patience=10),
}
FAST = {"uci": Budget(300, 30, 60, 0.01, 40), "graph": Budget(20, 10, 5, 0.005, 5)}


# ------------------------------------------------------------------------------------------------- data
def stratified_split(y: np.ndarray, seed: int, fractions=(0.6, 0.2, 0.2)):
    """Positions of a stratified train/validation/test split (each class split in the given fractions)."""
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:])):
            part.extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def uci_split(name: str, seed: int, data_root, device) -> dict:
    ds = load_uci(name, data_root)
    train, val, test = stratified_split(ds.y, seed)
    mean, std = ds.X[train].mean(0), ds.X[train].std(0)
    std[std == 0] = 1.0
    X = (ds.X - mean) / std

    def tensors(idx):
        return (torch.as_tensor(X[idx], dtype=torch.float32, device=device),
                torch.as_tensor(ds.y[idx], dtype=torch.long, device=device))

    return {"train": tensors(train), "val": tensors(val), "test": tensors(test), "features": ds.num_features,
            "classes": ds.num_classes}


def mlp(features: int, hidden: int, classes: int) -> nx.DiGraph:
    """The paper's network: ``x -> h (sigmoid) -> y`` with a sigmoid allocator on every ``h -> y`` connection."""
    return models.attention_mlp(features, hidden, classes, "sigmoid", name="attention-mlp")


# ------------------------------------------------------------------------------------------------- training
def accuracy(net, part) -> float:
    x, y = part
    was = net.training
    net.eval()
    with torch.no_grad():
        acc = (net(x).argmax(-1) == y).float().mean().item()
    net.train(was)
    return acc


def val_score(net, data) -> float:
    """Validation accuracy, ties broken by the lower validation loss (small validation sets tie often)."""
    x, y = data["val"]
    was = net.training
    net.eval()
    with torch.no_grad():
        logits = net(x)
        score = (logits.argmax(-1) == y).float().mean().item() - 1e-3 * F.cross_entropy(logits, y).item()
    net.train(was)
    return score


def train(net, data, steps: int, lr: float = 0.01, penalty=None, patience: int = 30, keep_start: bool = False,
          recorder: EdgeRecorder | None = None, record_every: int = 50):
    """Full-batch Adam on the training part with model selection on validation (``modgraph.train.fit``).

    ``keep_start``: the starting parameters stay a candidate (fine-tuning never ends below where it started).
    ``recorder``: records the training forwards (``fit(recorder=...)``: validation passes are not recorded, an epoch
    closes every ``record_every`` steps and at the end; each step is one full pass over the training data).
    """
    x, y = data["train"]

    def loss_fn(n):
        loss = F.cross_entropy(n(x), y)
        return loss + penalty(n) if penalty is not None else loss

    start = (val_score(net, data), copy.deepcopy(net.state_dict())) if keep_start else None
    result = fit(net, loss_fn, lambda n: val_score(n, data), schedule="joint", steps=steps, eval_every=5,
                 patience=patience, optimizer=lambda params: torch.optim.Adam(params, lr=lr), recorder=recorder,
                 record_every=None if recorder is None else record_every)
    if start is not None and start[0] >= result.best_score:
        net.load_state_dict(start[1])
    return result


def record(net, data) -> EdgeRecorder:
    """The attention statistics of the trained network over the training data (eval mode)."""
    rec = EdgeRecorder()
    with rec.attach(net), torch.no_grad():
        net.eval()
        net(data["train"][0])
    rec.epoch_end()
    net.train()
    return rec


def importance(criterion: str, variant: str, rec, seed: int):
    if criterion == "attention":
        return AttentionImportance(rec, weighted=variant.startswith("weighted"),
                                   reduce="max" if variant.endswith("max") else "mean", relative=variant == "relative")
    if criterion == "magnitude":
        return MagnitudeImportance(p=1, side="both" if variant == "gcn" else variant)
    if criterion == "random":
        return RandomImportance(seed)
    return SGLImportance()


# ------------------------------------------------------------------------------------------------- one run
def point_keys(name: str, seed: int, args, kind: str) -> dict[tuple, str]:
    """``{(criterion, variant, sparsity): unit key}`` of every prune point of one data set and seed."""
    criteria = [c for c in args.criteria if not (kind == "graph" and c == "sgl")]
    return {(c, v, s): f"{name}/seed{seed}/{c}/{v}/{s}" for c in criteria for v in args.variants[kind][c]
            for s in args.sparsities[kind]}


def saved_points(name: str, seed: int, args, kind: str, store: RunDir) -> list[dict] | None:
    """The rows of one data set and seed when every point is finished (and no figure is asked of it), else None."""
    if args.figures is not None and seed == 0:
        return None
    rows = [store.done(key) for key in point_keys(name, seed, args, kind).values()]
    return None if any(r is None for r in rows) else rows


def run_uci(name: str, seed: int, args, store: RunDir) -> list[dict]:
    """Every (criterion, variant, sparsity) row of one UCI data set and seed; each row is a unit of ``store``."""
    done = saved_points(name, seed, args, "uci", store)
    if done is not None:
        return done
    keys = point_keys(name, seed, args, "uci")
    budget = args.budget["uci"]
    torch.manual_seed(seed)
    data = uci_split(name, seed, args.data_root, args.device)
    graph = mlp(data["features"], UCI_HIDDEN[name], data["classes"])
    nets = {}
    net = mg.ModuleGraph(graph).to(args.device)
    figures = args.figures is not None and seed == 0
    during = EdgeRecorder().attach(net) if figures else None
    train(net, data, budget.steps, patience=budget.patience, recorder=during)
    nets["attention"] = nets["magnitude"] = nets["random"] = net
    if "sgl" in args.criteria:
        torch.manual_seed(seed)
        sgl_net = mg.ModuleGraph(graph).to(args.device)
        deps = mg.prune.DependencyGraph(sgl_net)
        train(sgl_net, data, budget.steps, patience=budget.patience,
              penalty=lambda n: args.sgl_lambda * sgl_penalty(n, deps))
        nets["sgl"] = sgl_net
    rec = record(net, data)
    if figures:
        during.detach()
        write_figures(Path(args.figures), name, during, net, rec)
    rows = []
    for criterion in args.criteria:
        base = nets[criterion]
        before = {"test": accuracy(base, data["test"]), "val": accuracy(base, data["val"])}
        for variant in args.variants["uci"][criterion]:
            imp = importance(criterion, variant, rec, seed)
            for sparsity in args.sparsities["uci"]:
                rows.append(store.unit(keys[criterion, variant, sparsity], functools.partial(
                    uci_point, name, seed, data, base, imp, criterion, variant, sparsity, before, budget)))
    return rows


def uci_point(name: str, seed: int, data: dict, base, imp, criterion: str, variant: str, sparsity: float,
              before: dict, budget: Budget) -> dict:
    """One prune point: remove ``sparsity`` of ``base``'s hidden units by ``imp``, fine-tune, measure."""
    torch.manual_seed(seed)
    pruned, report = prune(base, imp, level="neuron", sparsity=sparsity,
                           evaluate=lambda n: accuracy(n, data["test"]),
                           fine_tune=lambda n: train(n, data, budget.finetune_steps, lr=budget.finetune_lr,
                                                     patience=budget.finetune_patience, keep_start=True))
    return {
        "dataset": name, "seed": seed, "criterion": criterion, "variant": variant,
        "sparsity": sparsity, "params_before": report.params_before, "params_after": report.params_after,
        "macs_before": report.macs_before, "macs_after": report.macs_after,
        "neurons_before": report.neurons_before, "neurons_after": report.neurons_after,
        "test_acc_before": before["test"], "test_acc_pruned": report.acc_after,
        "test_acc_after": report.acc_finetuned, "val_acc_before": before["val"],
        "val_acc_after": accuracy(pruned, data["val"]),
    }


_GRAPHS: dict = {}


def graph_data(name: str, data_root, device) -> dict:
    """``cora.prepare`` of a Planetoid data set (public split, sparse row-normalised features), loaded once."""
    if name not in _GRAPHS:
        _GRAPHS[name] = cora.prepare(load_planetoid(name, data_root), device)
    return _GRAPHS[name]


def graph_accuracy(net, d, edge_index, mask: str) -> float:
    was = net.training
    net.eval()
    with torch.no_grad():
        acc = cora.accuracy(net(d["x"], edge_index=edge_index), d["y"], d[mask])
    net.train(was)
    return acc


def train_graph(net, d, edge_index, steps: int, patience: int, lr: float, keep_start: bool = False,
                recorder: EdgeRecorder | None = None, record_every: int = 50):
    """``cora.py``'s training on ``edge_index``: its optimiser and weight decay, selection on validation accuracy
    (ties broken by the validation loss), and as in :func:`train` optionally the start as a candidate."""
    recipe = cora.RECIPES["attention_gcn"].changed({"lr": lr})
    x, y, train_mask, val_mask = d["x"], d["y"], d["train"], d["val"]

    def loss_fn(n):
        return F.cross_entropy(n(x, edge_index=edge_index)[train_mask], y[train_mask])

    def score(n):
        logits = n(x, edge_index=edge_index)
        return cora.accuracy(logits, y, val_mask) - 1e-4 * float(F.cross_entropy(logits[val_mask], y[val_mask]))

    start = None
    if keep_start:
        net.eval()
        with torch.no_grad():
            start = (score(net), copy.deepcopy(net.state_dict()))
        net.train()
    result = fit(net, loss_fn, score, steps=steps, eval_every=1, patience=patience,
                 optimizer=cora.optimizer_factory(net, recipe), recorder=recorder,
                 record_every=None if recorder is None else record_every)
    if start is not None and start[0] >= result.best_score:
        net.load_state_dict(start[1])
    return result


def run_graph(name: str, seed: int, args, store: RunDir) -> list[dict]:
    """Every (criterion, variant, sparsity) row of one graph data set and seed: graph edges pruned; each row is a
    unit of ``store``."""
    done = saved_points(name, seed, args, "graph", store)
    if done is not None:
        return done
    keys = point_keys(name, seed, args, "graph")
    budget = args.budget["graph"]
    d = graph_data(name, args.data_root, args.device)
    recipe = cora.RECIPES["attention_gcn"]
    torch.manual_seed(seed)
    net = mg.ModuleGraph(recipe.build(d["features"], d["classes"], recipe.attention)).to(args.device)
    edge_index = d["edge_index"]
    figures = args.figures is not None and seed == 0
    during = EdgeRecorder().attach(net) if figures else None
    train_graph(net, d, edge_index, budget.steps, budget.patience, recipe.lr, recorder=during)
    rec = EdgeRecorder()
    with rec.attach(net), torch.no_grad():  # the attention over the whole graph, at the selected parameters
        net.eval()
        net(d["x"], edge_index=edge_index)
    rec.epoch_end()
    net.train()
    if figures:
        during.detach()
        write_figures(Path(args.figures), name, during)
    before = {"test": graph_accuracy(net, d, edge_index, "test"), "val": graph_accuracy(net, d, edge_index, "val")}
    rows = []
    for criterion in args.criteria:
        if criterion == "sgl":
            continue
        for variant in args.variants["graph"][criterion]:
            imp = importance(criterion, variant, rec, seed)
            for sparsity in args.sparsities["graph"]:
                rows.append(store.unit(keys[criterion, variant, sparsity], functools.partial(
                    graph_point, name, seed, d, net, imp, criterion, variant, sparsity, before, budget)))
    return rows


def graph_point(name: str, seed: int, d: dict, net, imp, criterion: str, variant: str, sparsity: float,
                before: dict, budget: Budget) -> dict:
    """One prune point: remove ``sparsity`` of the graph's edges by ``imp``, fine-tune, measure."""
    torch.manual_seed(seed)
    edge_index = d["edge_index"]
    pruned, report = prune(
        net, imp, level="graph", sparsity=sparsity, edge_index=edge_index, self_loops="keep",
        symmetric=True, num_nodes=d["x"].size(0), evaluate=lambda n, e: graph_accuracy(n, d, e, "test"),
        fine_tune=lambda n, e: train_graph(n, d, e, budget.finetune_steps, budget.finetune_patience,
                                           budget.finetune_lr, keep_start=True))
    return {
        "dataset": name, "seed": seed, "criterion": criterion, "variant": variant,
        "sparsity": sparsity, "params_before": report.params_before, "params_after": report.params_after,
        "edges_before": report.graph_edges_before, "edges_after": report.graph_edges_after,
        "test_acc_before": before["test"], "test_acc_pruned": report.acc_after,
        "test_acc_after": report.acc_finetuned, "val_acc_before": before["val"],
        "val_acc_after": graph_accuracy(pruned, d, report.edge_index, "val"),
    }


def write_figures(folder: Path, name: str, during: EdgeRecorder, net=None, final: EdgeRecorder | None = None) -> None:
    """Recording figures of one trained network: the weight histograms of ``during`` and, given the network and
    its ``final`` recording (UCI), its neuron heatmaps and DAG. A write that fails (the folder was checked writable
    when the flags were parsed; a full disk) is one line naming ``--figures``, not a traceback."""
    from modgraph.plot import dag_figure, neuron_heatmaps, weight_histograms

    try:
        weight_histograms(during, folder / f"{name}_histograms.png")
        if final is not None:
            neuron_heatmaps(final, folder / f"{name}_heatmap.png")
            dag_figure(net, final, folder / f"{name}_dag.png")
    except OSError as err:
        raise UsageError(f"--figures {folder}: cannot write {err.filename or name + ' figures'} "
                         f"({err.strerror or err})") from None


# ------------------------------------------------------------------------------------------------- summary
def select_variants(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per data set and criterion keep the variant with the best mean validation accuracy over the sweep."""
    chosen, others = [], []
    for key in dict.fromkeys((r["dataset"], r["criterion"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["criterion"]) == key]
        variants = list(dict.fromkeys(r["variant"] for r in mine))
        best = max(variants, key=lambda v: np.mean([r["val_acc_after"] for r in mine if r["variant"] == v]))
        chosen += [r for r in mine if r["variant"] == best]
        others += [r for r in mine if r["variant"] != best]
    return chosen, others


def variant_table(rows: list[dict]) -> str:
    """Mean validation (and test) accuracy change after pruning and fine-tuning, per criterion and variant, over
    the data sets and the sparsities above 0: how the variants were compared (choices use validation only)."""
    pruned = [r for r in rows if r["sparsity"] > 0]
    sparsities = sorted({r["sparsity"] for r in pruned})
    lines = ["\naccuracy change after pruning + fine-tuning (points), per criterion and variant: mean over data sets "
             "per sparsity, and over sparsities",
             "criterion  variant       split " + " ".join(f"{s:6.2f}" for s in sparsities) + "    mean"]
    for criterion, variant in sorted({(r["criterion"], r["variant"]) for r in pruned}):
        for split in ("val", "test"):
            changes = []
            for s in sparsities:
                per_set = [np.mean([r[f"{split}_acc_after"] - r[f"{split}_acc_before"] for r in pruned
                                    if (r["dataset"], r["criterion"], r["variant"], r["sparsity"])
                                    == (d, criterion, variant, s)])
                           for d in dict.fromkeys(r["dataset"] for r in pruned)]
                changes.append(100 * float(np.mean(per_set)))
            lines.append(f"{criterion:10s} {variant:13s} {split:5s} " + " ".join(f"{c:+6.2f}" for c in changes)
                         + f"  {np.mean(changes):+6.2f}")
    return "\n".join(lines)


def mean_by(rows, dataset, criterion, sparsity, field):
    values = [r[field] for r in rows if (r["dataset"], r["criterion"], r["sparsity"]) == (dataset, criterion,
                                                                                         sparsity)]
    return float(np.mean(values)) if values else math.nan


def summarise(rows: list[dict], tolerance: float = 0.01) -> str:
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        sparsities = sorted({r["sparsity"] for r in mine})
        criteria = list(dict.fromkeys(r["criterion"] for r in mine))
        seeds = len({r["seed"] for r in mine})
        unpruned = mean_by(mine, dataset, criteria[0], sparsities[0], "test_acc_before")
        lines.append(f"\n{dataset} ({seeds} seed{'s' if seeds > 1 else ''}): test accuracy after fine-tuning "
                     f"(mean), unpruned {unpruned:.4f}")
        graph = "edges_after" in mine[0]
        head = ["sparsity"] + (["edges"] if graph else ["units", "params"]) + criteria
        table = [head]
        for s in sorted({r["sparsity"] for r in mine}):
            row = next(r for r in mine if r["sparsity"] == s)
            size = [f"{row['edges_after']:,}"] if graph else [str(row["neurons_after"]), f"{row['params_after']:,}"]
            table.append([f"{s:.2f}"] + size + [f"{mean_by(mine, dataset, c, s, 'test_acc_after'):.4f}"
                                                for c in criteria])
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table]
        reach = []
        for c in criteria:
            ok = [s for s in sparsities if mean_by(mine, dataset, c, s, "test_acc_after")
                  >= mean_by(mine, dataset, c, s, "test_acc_before") - tolerance - 1e-9]
            reach.append(f"{c} {max(ok):.2f}" if ok else f"{c} -")
        lines.append(f"largest sparsity within {100 * tolerance:g} point of unpruned: " + ", ".join(reach))
        variants = {r["criterion"]: r["variant"] for r in mine}
        lines.append("variants chosen on validation: " + ", ".join(f"{c} {v}" for c, v in variants.items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI
def parse_list(text: str, cast, flag: str) -> list:
    try:
        items = [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected a comma-separated list, got {text!r}") from None
    if not items:
        raise UsageError(f"{flag}: expected at least one value")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = script_parser(__doc__, "examples:" + __doc__.split("Examples:")[1])
    p.add_argument("--dataset", default="uci",
                   help=f"comma-separated: {', '.join(UCI_HIDDEN)}, {', '.join(GRAPH_DATASETS)}; 'uci' = the six "
                        "UCI sets (default)")
    p.add_argument("--criteria", default=",".join(CRITERIA),
                   help="subset of attention,magnitude,random,sgl (sgl is skipped on graphs)")
    p.add_argument("--sparsities", default=None,
                   help="fractions to remove: hidden units (UCI) or graph edges (default "
                        f"{','.join(map(str, SPARSITIES['uci']))} and {','.join(map(str, SPARSITIES['graph']))})")
    p.add_argument("--steps", type=int, default=None, check=integer(1),
                   help=f"training steps (full batch; default {BUDGETS['uci'].steps} UCI, {BUDGETS['graph'].steps} "
                        "graphs)")
    p.add_argument("--finetune-steps", type=int, default=None, check=integer(1),
                   help=f"fine-tuning steps after pruning (default {BUDGETS['uci'].finetune_steps} UCI, "
                        f"{BUDGETS['graph'].finetune_steps} graphs)")
    p.add_argument("--finetune-lr", type=float, default=None, check=number(0, low_open=True),
                   help=f"fine-tuning learning rate (default {BUDGETS['uci'].finetune_lr} UCI, "
                        f"{BUDGETS['graph'].finetune_lr} graphs)")
    p.add_argument("--finetune-patience", type=int, default=None, check=integer(1),
                   help="fine-tuning stops after this many evaluations without improving (default "
                        f"{BUDGETS['uci'].finetune_patience} UCI, every 5 steps; {BUDGETS['graph'].finetune_patience} "
                        "graphs, every step)")
    p.add_argument("--attention-variants", default=None,
                   help="attention scores to run, the best on validation reported per data set: "
                        f"UCI {', '.join(VARIANTS['uci']['attention'])} (default "
                        f"{','.join(DEFAULT_VARIANTS['uci']['attention'])}); graphs "
                        f"{', '.join(VARIANTS['graph']['attention'])} (default both)")
    p.add_argument("--magnitude-variants", default=None,
                   help=f"UCI magnitude scores to run: {', '.join(VARIANTS['uci']['magnitude'])} (default "
                        f"{','.join(DEFAULT_VARIANTS['uci']['magnitude'])})")
    p.add_argument("--sgl-lambda", type=float, default=0.01, check=number(0),
                   help="SGL penalty weight of the sgl baseline, >= 0 (default 0.01, chosen on validation)")
    p.add_argument("--plot", default=None, output="figure",
                   help="write the accuracy-vs-sparsity curves to this image (PNG; .pdf, .svg, ... by the suffix)")
    p.add_argument("--figures", default=None, output="dir",
                   help="folder for recording figures of seed 0's networks (weights recorded during training)")
    p.add_argument("--from-json", default=None,
                   help="print the tables (and --plot the curves) of an earlier run's --json file instead of running")
    p.add_argument("--fast", action="store_true", help="CI-sized run: 1 seed, 2-3 sparsities, short training")
    return add_common_args(p, seeds=5, threads=1)


#: the fields of a row that the tables need (besides edges_after, or neurons_after and params_after)
ROW_FIELDS = ("dataset", "seed", "criterion", "variant", "sparsity", "test_acc_before", "test_acc_after",
              "val_acc_before", "val_acc_after")
NUMBER_FIELDS = ("sparsity", "test_acc_before", "test_acc_after", "val_acc_before", "val_acc_after", "edges_after",
                 "neurons_after", "params_after")


def read_rows(path: Path) -> list[dict]:
    """The rows (chosen and unselected variants) of a ``--json`` file of an earlier run; anything else (a folder,
    another script's JSON, a row without the fields the tables need) is a one-line :class:`UsageError` naming the
    file and what was expected."""
    expected = "expected the --json file of an earlier experiments/prune.py run"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-json: no such file {path}") from None
    except IsADirectoryError:
        raise UsageError(f"--from-json {path}: is a directory; {expected}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--from-json {path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    try:
        blob = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--from-json {path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}); {expected}") \
            from None
    if not (isinstance(blob, dict) and isinstance(blob.get("results"), list)
            and isinstance(blob.get("unselected_variants", []), list)):
        raise UsageError(f'--from-json {path}: not {{"results": [...], "unselected_variants": [...]}}; {expected}')
    if not blob["results"]:
        raise UsageError(f"--from-json {path}: the results are empty; {expected}")
    parts = [("results", blob["results"]), ("unselected_variants", blob.get("unselected_variants", []))]
    for part, rows in parts:
        for i, row in enumerate(rows):
            where = f"--from-json {path}: {part}[{i}]"
            if not isinstance(row, dict):
                raise UsageError(f"{where} is not an object; {expected}")
            size = ("edges_after",) if "edges_after" in row else ("neurons_after", "params_after")
            missing = [k for k in (*ROW_FIELDS, *size) if k not in row]
            if missing:
                raise UsageError(f"{where} has no {', '.join(missing)}; {expected}")
            for key in NUMBER_FIELDS:
                value = row.get(key, 0)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise UsageError(f"{where}: {key} is {value!r}, expected a number; {expected}")
    return [row for _, rows in parts for row in rows]


def resolve_args(args):
    names = parse_list(args.dataset, str, "--dataset")
    if names == ["uci"]:
        names = list(UCI_HIDDEN)
    unknown = [n for n in names if n not in UCI_HIDDEN and n not in GRAPH_DATASETS]
    if unknown:
        raise UsageError(f"--dataset: unknown {', '.join(unknown)}; valid: uci, {', '.join(UCI_HIDDEN)}, "
                         f"{', '.join(GRAPH_DATASETS)}")
    args.datasets = names
    args.criteria = parse_list(args.criteria, str, "--criteria")
    bad = [c for c in args.criteria if c not in CRITERIA]
    if bad:
        raise UsageError(f"--criteria: unknown {', '.join(bad)}; valid: {', '.join(CRITERIA)}")
    if args.criteria == ["sgl"] and any(n in GRAPH_DATASETS for n in names):
        raise UsageError("--criteria sgl: SGL scores hidden units, not graph edges; add attention, magnitude or random")
    args.variants = {kind: dict(v) for kind, v in DEFAULT_VARIANTS.items()}
    for criterion in ("attention", "magnitude"):
        text = getattr(args, f"{criterion}_variants")
        if text is None:
            continue
        chosen = parse_list(text, str, f"--{criterion}-variants")
        for kind in ("uci", "graph"):
            valid = [v for v in chosen if v in VARIANTS[kind][criterion]]
            if valid:
                args.variants[kind][criterion] = tuple(valid)
        bad = [v for v in chosen if not any(v in VARIANTS[k][criterion] for k in VARIANTS)]
        if bad:
            everything = sorted({v for k in VARIANTS for v in VARIANTS[k][criterion]})
            raise UsageError(f"--{criterion}-variants: unknown {', '.join(bad)}; valid: {', '.join(everything)}")
    if args.sparsities is not None:
        given = tuple(parse_list(args.sparsities, float, "--sparsities"))
        for s in given:
            if not 0.0 <= s < 1.0:
                raise UsageError(f"--sparsities: every sparsity must be in [0, 1), got {s}")
        args.sparsities = {"uci": given, "graph": given}
    else:
        args.sparsities = dict(SPARSITIES)
    args.budget = {}
    for kind in ("uci", "graph"):
        base = FAST[kind] if args.fast else BUDGETS[kind]
        args.budget[kind] = Budget(
            steps=args.steps or base.steps, patience=base.patience,
            finetune_steps=args.finetune_steps or base.finetune_steps,
            finetune_lr=args.finetune_lr or base.finetune_lr,
            finetune_patience=args.finetune_patience or base.finetune_patience)
    if args.fast:
        args.seeds = 1
        if args.sparsities == SPARSITIES:
            args.sparsities = {"uci": (0.0, 0.5, 0.8), "graph": (0.0, 0.3)}
    args.device = resolve_device(args.device)
    return args


def write_results(path: str, chosen: list[dict], others: list[dict], args) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("budget", "device")}
    settings["budget"] = {kind: vars(b) for kind, b in args.budget.items()}
    settings["device"] = str(args.device)
    atomic_write_json(path, {"results": chosen, "unselected_variants": others, "settings": settings}, indent=None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    config = checkpoint_config(args, "prune.py")
    if args.from_json:
        if args.checkpoint_dir:
            raise UsageError("--checkpoint-dir: --from-json runs nothing to checkpoint")
        if args.json:
            raise UsageError(f"--json: --from-json runs nothing, so writes no results (they are in {args.from_json})")
        rows = read_rows(Path(args.from_json))
    else:
        args = resolve_args(args)
        torch.set_num_threads(args.threads)
        store = open_run_dir(args, config)  # one unit per (data set, seed, criterion, variant, sparsity) point
        rows, start = [], time.perf_counter()
        runs = [(name, seed) for name in args.datasets for seed in range(args.seeds)]
        for name, seed in progress(runs, desc="prune", unit="run"):
            t = time.perf_counter()
            run = run_graph if name in GRAPH_DATASETS else run_uci
            rows += run(name, seed, args, store)
            log.info("%s seed %d: %.1f s", name, seed, time.perf_counter() - t)
    chosen, others = select_variants(rows)
    print(summarise(chosen))
    print(variant_table(chosen + others))
    if not args.from_json:
        print(f"\n{len(args.datasets)} data set(s) x {args.seeds} seed(s) in {time.perf_counter() - start:.0f} s")

    def plot():
        from modgraph.plot import sparsity_curves

        sparsity_curves(chosen, args.plot, title="test accuracy after pruning and fine-tuning")

    save_outputs(("--json", args.json, lambda: write_results(args.json, chosen, others, args)),
                 ("--plot", args.plot, plot))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
