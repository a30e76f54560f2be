"""Prune attention networks by their recorded attention, against magnitude, random and SGL, over a sparsity sweep.

For each data set and seed: train the network (the paper's UCI MLPs ``d - hidden - C`` with a sigmoid neuron-level
gate on ``hidden -> C``), record every attention weight over the training data with an ``EdgeRecorder``, then for
each criterion and sparsity remove that fraction of the hidden units (``modgraph.prune.prune``: a physically
smaller network), fine-tune it, and measure test accuracy. Prints a table per data set and the largest sparsity
each criterion reaches within 1 point of the unpruned accuracy; ``--plot`` draws the accuracy-vs-sparsity curves,
``--json`` writes every row.

UCI protocol: a stratified 60/20/20 train/validation/test split per seed, standardisation fitted on the training
part, every choice (early stopping, fine-tuning's best step, the attention and magnitude variants) on validation.

Examples:
    python experiments/prune.py --dataset glass --seeds 0,1,2
    python experiments/prune.py --dataset uci --json runs/prune.json --plot docs/figures/prune_uci.png
    python experiments/prune.py --dataset balance --fast
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.data import load_uci
from modgraph.prune import (
    AttentionImportance,
    MagnitudeImportance,
    RandomImportance,
    SGLImportance,
    prune,
    sgl_penalty,
)
from modgraph.record import EdgeRecorder
from modgraph.train import fit

log = logging.getLogger("prune")

#: hidden widths of the paper's Table 1
UCI_HIDDEN = {"balance": 18, "ecoli": 20, "glass": 22, "liver": 22, "sonar": 20, "vehicle": 30}
GRAPH_DATASETS = ("cora", "citeseer")
CRITERIA = ("attention", "magnitude", "random", "sgl")
#: variants per criterion; the one with the best mean validation accuracy (over the sweep) is reported.
#: attention: the recorded mean weight of a unit's connections, averaged ("mean") or maximised ("max") over its
#: outputs, optionally times |W_oi| ("weighted", "weighted-max"); magnitude: L1 of in+out or only out weights.
VARIANTS = {"attention": ("mean", "max", "weighted", "weighted-max"), "magnitude": ("both", "out", "in"),
            "random": ("uniform",), "sgl": ("l2",)}
#: fixed on validation in a development run (docs/pruning.md, "Choices made on validation")
DEFAULT_VARIANTS = {"attention": ("mean",), "magnitude": ("both",), "random": ("uniform",), "sgl": ("l2",)}
SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9)


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
    g = nx.DiGraph(name="attention-mlp")
    g.add_node("x", op="input", features=features)
    g.add_node("h", op="linear", out_features=hidden, activation="sigmoid")
    g.add_node("y", op="linear", out_features=classes)
    g.add_edge("x", "h")
    g.add_edge("h", "y", attention="sigmoid")
    return g


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
    ``recorder``: an attached recorder; validation passes are not recorded, an epoch closes every ``record_every``
    steps (each step is one full pass over the training data).
    """
    x, y = data["train"]

    def loss_fn(n):
        loss = F.cross_entropy(n(x), y)
        return loss + penalty(n) if penalty is not None else loss

    def evaluate(n):
        if recorder is None:
            return val_score(n, data)
        with recorder.paused():
            return val_score(n, data)

    def callback(trainer):
        if recorder is not None and trainer.step % record_every == 0:
            recorder.epoch_end(trainer.step)

    start = (val_score(net, data), copy.deepcopy(net.state_dict())) if keep_start else None
    result = fit(net, loss_fn, evaluate, schedule="joint", steps=steps, eval_every=5, patience=patience,
                 optimizer=lambda params: torch.optim.Adam(params, lr=lr), callback=callback)
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
                                   reduce="max" if variant.endswith("max") else "mean")
    if criterion == "magnitude":
        return MagnitudeImportance(p=1, side=variant)
    if criterion == "random":
        return RandomImportance(seed)
    return SGLImportance()


# ------------------------------------------------------------------------------------------------- one run
def run_uci(name: str, seed: int, args) -> list[dict]:
    """Every (criterion, variant, sparsity) row of one data set and seed."""
    torch.manual_seed(seed)
    data = uci_split(name, seed, args.data_root, args.device)
    graph = mlp(data["features"], UCI_HIDDEN[name], data["classes"])
    nets = {}
    net = mg.ModuleGraph(graph).to(args.device)
    figures = args.figures is not None and seed == args.seeds[0]
    during = EdgeRecorder().attach(net) if figures else None
    train(net, data, args.steps, recorder=during)
    nets["attention"] = nets["magnitude"] = nets["random"] = net
    if "sgl" in args.criteria:
        torch.manual_seed(seed)
        sgl_net = mg.ModuleGraph(graph).to(args.device)
        deps = mg.prune.DependencyGraph(sgl_net)
        train(sgl_net, data, args.steps, penalty=lambda n: args.sgl_lambda * sgl_penalty(n, deps))
        nets["sgl"] = sgl_net
    rec = record(net, data)
    if figures:
        during.detach()
        write_figures(Path(args.figures), name, net, during, rec)
    rows = []
    for criterion in args.criteria:
        base = nets[criterion]
        before = {"test": accuracy(base, data["test"]), "val": accuracy(base, data["val"])}
        for variant in args.variants[criterion]:
            imp = importance(criterion, variant, rec, seed)
            for sparsity in args.sparsities:
                torch.manual_seed(seed)
                pruned, report = prune(base, imp, level="neuron", sparsity=sparsity,
                                       evaluate=lambda n: accuracy(n, data["test"]),
                                       fine_tune=lambda n: train(n, data, args.finetune_steps, lr=args.finetune_lr,
                                                                 patience=args.finetune_patience, keep_start=True))
                rows.append({
                    "dataset": name, "seed": seed, "criterion": criterion, "variant": variant,
                    "sparsity": sparsity, "params_before": report.params_before, "params_after": report.params_after,
                    "macs_before": report.macs_before, "macs_after": report.macs_after,
                    "neurons_before": report.neurons_before, "neurons_after": report.neurons_after,
                    "test_acc_before": before["test"], "test_acc_pruned": report.acc_after,
                    "test_acc_after": report.acc_finetuned, "val_acc_before": before["val"],
                    "val_acc_after": accuracy(pruned, data["val"]),
                })
    return rows


def write_figures(folder: Path, name: str, net, during: EdgeRecorder, final: EdgeRecorder) -> None:
    """Recording figures of one trained network."""
    from modgraph.plot import dag_figure, neuron_heatmaps, weight_histograms

    weight_histograms(during, folder / f"{name}_histograms.png")
    neuron_heatmaps(final, folder / f"{name}_heatmap.png")
    dag_figure(net, final, folder / f"{name}_dag.png")


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
    lines = ["\nvariants: accuracy change after pruning + fine-tuning (points), mean over data sets, per sparsity",
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


def summarise(rows: list[dict], sparsities, tolerance: float = 0.01) -> str:
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        criteria = list(dict.fromkeys(r["criterion"] for r in mine))
        seeds = len({r["seed"] for r in mine})
        lines.append(f"\n{dataset} ({seeds} seed{'s' if seeds > 1 else ''}): test accuracy after fine-tuning "
                     f"(mean), unpruned {mean_by(mine, dataset, 'attention', sparsities[0], 'test_acc_before'):.4f}")
        head = ["sparsity", "units", "params"] + criteria
        table = [head]
        for s in sparsities:
            row = next(r for r in mine if r["sparsity"] == s)
            table.append([f"{s:.2f}", str(row["neurons_after"]), f"{row['params_after']:,}"]
                         + [f"{mean_by(mine, dataset, c, s, 'test_acc_after'):.4f}" for c in criteria])
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
def parse_list(text: str, cast, what: str):
    try:
        return [cast(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise mg.ModgraphError(f"--{what}: expected a comma-separated list, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("Examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="uci",
                   help="comma-separated: balance, ecoli, glass, liver, sonar, vehicle, cora, citeseer; "
                        "'uci' = the six UCI sets (default)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated split/initialisation seeds (default 0-4)")
    p.add_argument("--criteria", default=",".join(CRITERIA), help="subset of attention,magnitude,random,sgl")
    p.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)),
                   help="fractions of hidden units to remove (default %(default)s)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (full batch; default 2000)")
    p.add_argument("--finetune-steps", type=int, default=1000, help="fine-tuning steps after pruning (default 1000)")
    p.add_argument("--finetune-lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--finetune-patience", type=int, default=40,
                   help="fine-tuning stops after this many evaluations (every 5 steps) without improving (default 40)")
    p.add_argument("--attention-variants", default=",".join(DEFAULT_VARIANTS["attention"]),
                   help=f"attention scores to try, chosen per data set on validation: "
                        f"{', '.join(VARIANTS['attention'])} (default %(default)s)")
    p.add_argument("--magnitude-variants", default=",".join(DEFAULT_VARIANTS["magnitude"]),
                   help=f"magnitude scores to try: {', '.join(VARIANTS['magnitude'])} (default %(default)s)")
    p.add_argument("--sgl-lambda", type=float, default=0.01,
                   help="SGL penalty weight of the sgl baseline (default 0.01, chosen on validation)")
    p.add_argument("--data-root", default=None, help="folder with uci/ and planetoid/ (default $MODGRAPH_DATA)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest on a shared box)")
    p.add_argument("--json", default=None, help='write {"results": [...]} rows to this file')
    p.add_argument("--plot", default=None, help="write the accuracy-vs-sparsity curves to this PNG")
    p.add_argument("--figures", default=None,
                   help="folder for recording figures of the first seed's network (weights recorded during training)")
    p.add_argument("--from-json", default=None,
                   help="print the tables (and --plot the curves) of an earlier run's --json file instead of running")
    p.add_argument("--fast", action="store_true", help="CI-sized run: 1 seed, 3 sparsities, short training")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def read_rows(path: Path) -> list[dict]:
    """The rows (chosen and unselected variants) of a ``--json`` file of an earlier run."""
    try:
        blob = json.loads(path.read_text())
        return blob["results"] + blob.get("unselected_variants", [])
    except FileNotFoundError:
        raise mg.ModgraphError(f"--from-json: no such file {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise mg.ModgraphError(f"--from-json: {path} is not a results file of this script ({err})") from None


def resolve_args(args):
    names = parse_list(args.dataset, str, "dataset")
    if names == ["uci"]:
        names = list(UCI_HIDDEN)
    unknown = [n for n in names if n not in UCI_HIDDEN and n not in GRAPH_DATASETS]
    if unknown:
        raise mg.ModgraphError(f"--dataset: unknown {', '.join(unknown)}; valid: uci, {', '.join(UCI_HIDDEN)}, "
                               f"{', '.join(GRAPH_DATASETS)}")
    graph = [n for n in names if n in GRAPH_DATASETS]
    if graph:
        raise mg.ModgraphError(f"--dataset {','.join(graph)}: graph-edge pruning needs the GCN ops (issue 3), "
                               f"which are not on this branch yet; run a UCI data set")
    args.datasets = names
    args.seeds = parse_list(args.seeds, int, "seeds")
    args.criteria = parse_list(args.criteria, str, "criteria")
    bad = [c for c in args.criteria if c not in CRITERIA]
    if bad:
        raise mg.ModgraphError(f"--criteria: unknown {', '.join(bad)}; valid: {', '.join(CRITERIA)}")
    args.variants = dict(DEFAULT_VARIANTS)
    for criterion in ("attention", "magnitude"):
        chosen = parse_list(getattr(args, f"{criterion}_variants"), str, f"{criterion}-variants")
        bad = [v for v in chosen if v not in VARIANTS[criterion]]
        if bad or not chosen:
            raise mg.ModgraphError(f"--{criterion}-variants: unknown {', '.join(bad) or '(none given)'}; valid: "
                                   f"{', '.join(VARIANTS[criterion])}")
        args.variants[criterion] = tuple(chosen)
    args.sparsities = parse_list(args.sparsities, float, "sparsities")
    for s in args.sparsities:
        if not 0.0 <= s < 1.0:
            raise mg.ModgraphError(f"--sparsities: every sparsity must be in [0, 1), got {s}")
    if args.fast:
        args.seeds, args.sparsities = args.seeds[:1], [0.0, 0.5, 0.8]
        args.steps, args.finetune_steps = min(args.steps, 300), min(args.finetune_steps, 60)
    for flag in ("steps", "finetune_steps", "finetune_patience", "threads"):
        if getattr(args, flag) <= 0:
            raise mg.ModgraphError(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        raise mg.ModgraphError("--device cuda: no CUDA device is available")
    return args


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.from_json:
            rows = read_rows(Path(args.from_json))
            args.sparsities = sorted({r["sparsity"] for r in rows})
        else:
            args = resolve_args(args)
            torch.set_num_threads(args.threads)
            rows, start = [], time.perf_counter()
            for name in args.datasets:
                for seed in args.seeds:
                    t = time.perf_counter()
                    rows += run_uci(name, seed, args)
                    log.info("%s seed %d: %.1f s", name, seed, time.perf_counter() - t)
        chosen, others = select_variants(rows)
        print(summarise(chosen, args.sparsities))
        if others:
            print(variant_table(chosen + others))
        if not args.from_json:
            print(f"\n{len(args.datasets)} data set(s) x {len(args.seeds)} seed(s) in "
                  f"{time.perf_counter() - start:.0f} s")
        if args.json:
            path = Path(args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"results": chosen, "unselected_variants": others,
                                        "settings": vars(args)}, indent=1) + "\n")
        if args.plot:
            from modgraph.plot import sparsity_curves

            sparsity_curves(chosen, args.plot, title="test accuracy after pruning hidden units and fine-tuning")
    except mg.ModgraphError as err:
        print(f"prune.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
