"""Mini-batch training of a graph network on a large synthetic graph, on one process or many (torchrun).

    python experiments/scale.py --nodes 100000 --epochs 2
    python experiments/scale.py --nodes 1000000 --avg-degree 10 --epochs 1 --json scale.json
    python experiments/scale.py --nodes 1000000 --epochs 5 --checkpoint-dir runs/scale   # killed? add --resume
    torchrun --standalone --nproc_per_node 2 experiments/scale.py --nodes 1000000 --epochs 1

The graph is a stochastic block model with class-correlated features (``modgraph.data.sbm_graph``; every process
builds the same graph from ``--seed``). Batches come from ``torch_geometric.loader.NeighborLoader``
(``--num-neighbors 10,10``: ten in-neighbours per node and hop); the loss and the accuracies count the seed nodes
only. Training runs through ``modgraph.train.fit``, one step per batch, evaluating on the validation nodes once
per epoch and keeping the best epoch. Under ``torchrun`` every process trains on its share of the seed nodes
inside ``DistributedDataParallel`` (gloo on CPU, nccl on GPU); accuracies are summed over the processes and rank 0
prints and writes the results. The JSON row holds the time per epoch (training steps only), the peak resident
memory of every process and the largest parameter difference between the replicas at the end (0: in sync).

``--checkpoint-dir DIR`` saves the training (every process its own file) at the end of every epoch; ``--resume``
continues from the last epoch end with the batch order, sampling and dropout of the uninterrupted run (the
neighbour sampler must be the plain-torch one, which draws from torch's global RNG; see docs/checkpoints.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    UsageError,
    add_common_args,
    checkpoint_config,
    format_table,
    integer,
    number,
    open_run_dir,
    run_main,
    save_outputs,
    script_parser,
    setup_logging,
    write_json,
)

import modgraph as mg  # noqa: E402
from modgraph import models  # noqa: E402
from modgraph.data import sbm_graph  # noqa: E402
from modgraph.errors import CheckpointError, ModgraphError  # noqa: E402
from modgraph.scale import distributed as D  # noqa: E402
from modgraph.scale.memory import peak_rss_mb  # noqa: E402
from modgraph.scale.minibatch import MiniBatchTask, evaluate_loader  # noqa: E402
from modgraph.scale.sampler import TorchNeighborSampler, has_compiled_sampler, neighbor_loader  # noqa: E402
from modgraph.train import RunDir, Trainer  # noqa: E402

log = logging.getLogger("scale")

MODELS = ("attention_gcn", "gcn")


def build_parser() -> argparse.ArgumentParser:
    p = script_parser(__doc__)
    p.add_argument("--nodes", type=int, default=100_000,
                   check=integer(5, "20% of the nodes validate and 20% test, at least one each"),
                   help="nodes of the synthetic graph, at least 5 and at least --classes (default 100000)")
    p.add_argument("--avg-degree", type=float, default=10.0, check=number(0),
                   help="mean neighbours per node (default 10)")
    p.add_argument("--features", type=int, default=32, check=integer(1), help="node features (default 32)")
    p.add_argument("--classes", type=int, default=5, check=integer(2, "with one class every prediction is right"),
                   help="classes, at least 2 (default 5)")
    p.add_argument("--model", default="attention_gcn", choices=MODELS, help="default attention_gcn")
    p.add_argument("--attention", default="softmax", choices=["sigmoid", "softmax", "sparsemax"])
    p.add_argument("--hidden", type=int, default=64, check=integer(1),
                   help="hidden width, all heads together (default 64)")
    p.add_argument("--heads", type=int, default=8, check=integer(1),
                   help="attention heads of the first conv; they divide --hidden (default 8)")
    p.add_argument("--dropout", type=float, default=0.5, check=number(0, 1, high_open=True),
                   help="dropout, in [0, 1) (default 0.5)")
    p.add_argument("--lr", type=float, default=0.005, check=number(0, low_open=True),
                   help="Adam learning rate, > 0 (default 0.005)")
    p.add_argument("--batch-size", type=int, default=1024, check=integer(1),
                   help="seed nodes per batch and process (default 1024)")
    p.add_argument("--num-neighbors", default="10,10", help="neighbours per hop, comma-separated; -1: all "
                                                            "(default 10,10)")
    p.add_argument("--epochs", type=int, default=1, check=integer(1),
                   help="passes over the training nodes (default 1)")
    p.add_argument("--steps", type=int, default=None, check=integer(1),
                   help="stop after at most this many optimisation steps in all, at most --epochs of them "
                        "(default: every batch of every epoch)")
    p.add_argument("--eval-nodes", type=int, default=None, check=integer(1, "an accuracy over no nodes means nothing"),
                   help="validate and test on at most this many nodes each (default: all)")
    p.add_argument("--workers", type=int, default=0, check=integer(0),
                   help="DataLoader worker processes per process (default 0)")
    p.add_argument("--seed", type=int, default=0, check=integer(0),
                   help="graph, initialisation and shuffling seed (default 0)")
    p.add_argument("--save", default=None, metavar="PATH", output="file",
                   help="rank 0 saves the trained network (spec + weights)")
    # --device, --json (rank 0 writes it), --log-level, --threads (per process), --checkpoint-dir, --resume; one
    # --seed instead of --seeds, and no --data-root: the graph is synthetic
    return add_common_args(p, seeds=None, threads=None, data_root=False,
                           device_help="auto: cuda:LOCAL_RANK when available, else cpu (default: auto)")


def parse_neighbors(value: str) -> list[int]:
    try:
        hops = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        hops = []
    if not hops or any(k == 0 or k < -1 for k in hops):
        raise UsageError(f"--num-neighbors: expected positive integers or -1, comma-separated, got {value!r}")
    return hops


def build_network(args) -> mg.ModuleGraph:
    if args.model == "gcn":
        spec = models.gcn_net(args.features, args.classes, conv="gcn", hidden=args.hidden, dropout=args.dropout,
                              activation="relu")
    else:
        spec = models.attention_gcn(args.features, args.classes, attention=args.attention, hidden=args.hidden,
                                    heads=args.heads, dropout=args.dropout, attention_dropout=args.dropout)
    return mg.ModuleGraph(spec)


def check_shape(args, hops: int) -> None:
    """The flags that must agree with each other (before the graph is built)."""
    if hops != 2:
        raise UsageError(f"--num-neighbors: the models have two graph convolutions, so give two hops, got {hops}")
    if args.nodes < args.classes:
        raise UsageError(f"--nodes {args.nodes}: fewer nodes than --classes {args.classes}")
    if args.model == "attention_gcn" and args.hidden % args.heads:
        raise UsageError(f"--heads {args.heads} must divide --hidden {args.hidden} (the heads share the hidden width)")


def eval_loader(data, mask: torch.Tensor, hops: list[int], args, ctx: D.DistContext, sampler):
    """This process's share of the nodes in ``mask`` (at most ``--eval-nodes`` in all), unshuffled."""
    nodes = mask.nonzero().flatten()
    if args.eval_nodes is not None:
        nodes = nodes[:args.eval_nodes]
    nodes = nodes[ctx.rank::ctx.world_size]  # uneven shares are fine: evaluation runs no collective
    return neighbor_loader(data, hops, batch_size=args.batch_size, input_nodes=nodes, neighbor_sampler=sampler,
                           num_workers=args.workers)


def resumable(trainer: Trainer, task: MiniBatchTask, store: RunDir, ctx: D.DistContext, compiled: bool):
    """The training's callback saving it at every epoch end (``None`` without ``--checkpoint-dir``); a saved
    training is restored first, and the batch stream continues with the epoch after it."""
    if store.path is None:
        return None
    if compiled:
        raise UsageError("--checkpoint-dir: pyg-lib's compiled neighbour sampler draws from its own RNG, which a "
                         "checkpoint cannot restore; uninstall pyg-lib to use the plain-torch sampler")
    path = store.progress_path(f"train-rank{ctx.rank}")
    saved, error = path.exists(), None
    try:
        callback = store.checkpointer(trainer, f"train-rank{ctx.rank}", every=task.steps_per_epoch)
    except (ModgraphError, UsageError) as err:
        error = str(err)
    agree_on_progress(store, ctx, trainer.step if saved and error is None else None, error)
    if trainer.step % task.steps_per_epoch:
        raise CheckpointError(f"{store.progress_path(f'train-rank{ctx.rank}')}: saved at step {trainer.step}, not at "
                              f"an epoch end ({task.steps_per_epoch} steps per epoch)")
    task.stream.epoch = trainer.step // task.steps_per_epoch  # the loader is between epochs at a save
    return callback


def agree_on_progress(store: RunDir, ctx: D.DistContext, step: int | None, error: str | None) -> None:
    """Every process's saved training must be at the same step (``step``: ``None`` when this process has none)
    before any trains: ranks resumed from different steps would train from different states while DDP averages
    their gradients (and soon wait in different collectives). A rank that could not read its file stops every
    rank with its error; files at different steps (or some missing) stop every rank with one line naming them.
    Each process keeps one file (its last epoch end), so there is no earlier step they could all fall back to."""
    if not ctx.distributed:
        if error is not None:
            raise CheckpointError(error)
        return
    states = D.gather_objects((step, error))
    errors = [e for _, e in states if e is not None]
    if errors:
        raise CheckpointError(errors[0])
    steps = [s for s, _ in states]
    if len(set(steps)) > 1:
        shown = ", ".join(f"rank {r}: {'missing' if s is None else s}" for r, s in enumerate(steps))
        raise CheckpointError(
            f"{store.path / 'progress'}: the processes' files train-rank<r>.pt are at different steps ({shown}); the "
            f"run cannot continue from them; remove {store.path / 'progress'} and resume to train again from step 0")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    config = checkpoint_config(args, "scale.py")  # the numbers and outputs: checked when parsed
    # the DataLoader worker processes draw the neighbour samples with their own seeds: here --workers changes the
    # results, so a folder is tied to it (it is execution-only for the other scripts)
    config["--workers"] = args.workers
    hops = parse_neighbors(args.num_neighbors)
    check_shape(args, len(hops))
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ctx = D.init_distributed(args.device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    failed = True
    try:
        store = open_run_dir(args, {**config, "processes": ctx.world_size}, ctx)
        code = run(args, hops, ctx, store)
        failed = False
        return code
    finally:
        D.cleanup(failed=failed)  # no barrier after an error: the other processes may never reach it


def run(args, hops: list[int], ctx: D.DistContext, store: RunDir) -> int:
    start = time.perf_counter()
    data = sbm_graph(args.nodes, num_classes=args.classes, avg_degree=args.avg_degree, num_features=args.features,
                     seed=args.seed)
    graph_s = time.perf_counter() - start
    # one CSC form of the graph for every loader (sorting ten million edges takes seconds)
    sampler = None if has_compiled_sampler() else TorchNeighborSampler(data, hops)
    train_nodes = data.train_mask.nonzero().flatten()
    shares = D.seed_sampler(train_nodes.numel(), ctx, shuffle=True, seed=args.seed) if ctx.distributed else None
    train = neighbor_loader(data, hops, batch_size=args.batch_size, input_nodes=train_nodes,
                            shuffle=shares is None, neighbor_sampler=sampler, num_workers=args.workers,
                            **({"sampler": shares} if shares is not None else {}))
    val = eval_loader(data, data.val_mask, hops, args, ctx, sampler)
    test = eval_loader(data, data.test_mask, hops, args, ctx, sampler)

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    net = build_network(args).to(ctx.device)
    model = D.wrap(net, ctx)
    task = MiniBatchTask(train, val, ctx.device, forward=model, reduce=D.all_reduce_sum)
    steps = args.epochs * task.steps_per_epoch  # --steps stops earlier, never later than --epochs
    steps = min(args.steps, steps) if args.steps else steps
    eval_time = []

    def evaluate(n):
        t = time.perf_counter()
        score = task.evaluate(n)
        eval_time.append(time.perf_counter() - t)
        if ctx.is_main:  # the score is the same on every process (summed over them)
            log.info("epoch %d: validation accuracy %.4f", task.stream.epoch, score)
        return score

    torch.manual_seed(args.seed + 1 + ctx.rank)  # dropout and sampling differ per process
    fit_start = time.perf_counter()
    trainer = Trainer(net, task.loss, evaluate, steps=steps, eval_every=min(task.steps_per_epoch, steps),
                      optimizer=lambda params: torch.optim.Adam(params, lr=args.lr), progress=ctx.is_main)
    result = trainer.run(resumable(trainer, task, store, ctx, compiled=sampler is None))
    fit_s = time.perf_counter() - fit_start
    train_s = fit_s - sum(eval_time)
    net.eval()
    test_metrics = evaluate_loader(net, test, ctx.device, D.all_reduce_sum)
    spread = D.parameter_spread(net)
    peaks = D.gather_objects(peak_rss_mb())
    if not ctx.is_main:
        return 0
    row = {
        "nodes": args.nodes, "edges": int(data.edge_index.size(1)), "avg_degree": args.avg_degree,
        "features": args.features, "classes": args.classes, "model": args.model, "attention": args.attention,
        "hidden": args.hidden, "heads": args.heads, "batch_size": args.batch_size, "num_neighbors": hops,
        "processes": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
        "threads": torch.get_num_threads(), "sampler": "pyg" if sampler is None else "torch",
        "steps": result.steps, "steps_per_epoch": task.steps_per_epoch,
        "epochs": result.steps / task.steps_per_epoch, "train_s": train_s,
        "train_s_per_epoch": train_s * task.steps_per_epoch / result.steps, "eval_s": sum(eval_time),
        "graph_s": graph_s, "total_s": time.perf_counter() - start,
        "best_val_acc": result.best_score, "best_step": result.best_step, "test_acc": test_metrics["accuracy"],
        "test_nodes": test_metrics["seeds"], "peak_rss_mb_per_process": peaks, "peak_rss_mb_max": max(peaks),
        "parameter_spread": spread,
    }
    print(format_table([row], [
        ("nodes", "nodes", str), ("edges", "edges", str), ("processes", "processes", str),
        ("steps", "steps", str), ("s/epoch (train)", "train_s_per_epoch", lambda v: f"{v:.1f}"),
        ("best val acc", "best_val_acc", lambda v: f"{100 * v:.1f}"),
        ("test acc", "test_acc", lambda v: f"{100 * v:.1f}"),
        ("peak RSS/process (MiB)", "peak_rss_mb_max", lambda v: f"{v:.0f}"),
        ("replica spread", "parameter_spread", lambda v: f"{v:.1e}"),
    ]))
    save_outputs(("--json", args.json, lambda: write_json(args.json, [row])),
                 ("--save", args.save, lambda: mg.save_network(net, args.save)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
