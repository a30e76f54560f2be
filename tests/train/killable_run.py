"""A small training run with checkpoints, used by test_checkpoint.py to kill and resume a real process."""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import networkx as nx
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.train import Checkpointer, Trainer, load_checkpoint


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    args = p.parse_args(argv)
    torch.manual_seed(7)
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("h", op="linear", out_features=12, activation="tanh")
    g.add_node("d", op="dropout", p=0.3)  # consumes the RNG every step
    g.add_node("y", op="linear", out_features=3)
    g.add_edges_from([("x", "h"), ("h", "d")])
    g.add_edge("d", "y", attention="sigmoid")
    net = mg.ModuleGraph(g)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 5, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    def loss_fn(n):
        if args.sleep:
            time.sleep(args.sleep)
        idx = torch.randint(0, 128, (32,))  # a mini-batch drawn from the global RNG
        return F.cross_entropy(n(x[idx]), y[idx])

    def evaluate(n):
        return (n(x).argmax(1) == y).float().mean().item()

    trainer = Trainer(net, loss_fn, evaluate, "alternating", steps=60, rounds=2, tol=-1.0)
    callback = None
    if args.checkpoint_dir:
        callback = Checkpointer(args.checkpoint_dir, every=1)
        if args.resume and callback.path.exists():
            load_checkpoint(callback.path, trainer)
    result = trainer.run(callback)
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in net.state_dict().values())).hexdigest()
    Path(args.out).write_text(json.dumps({"digest": digest, "best": result.best_score, "steps": result.steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
