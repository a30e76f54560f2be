"""Run by tests/scale/test_distributed.py under ``torchrun --nproc_per_node 2``: a few data-parallel steps.

Writes ``rank<r>.pt`` into the folder given as the first argument: the parameters after the manual steps, the
parameter spread after a ``fit`` run, and the results of a job sweep.
"""

import os
import sys

import torch

from modgraph.benchmarks.uci import program_cost, run_method
from modgraph.scale import distributed as D
from modgraph.scale.minibatch import MiniBatchTask, seed_loss
from modgraph.scale.sampler import neighbor_loader
from modgraph.train import fit

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_distributed import STEPS, make_data, make_net, train_loader, uci_programs  # noqa: E402


def train(ctx: D.DistContext) -> dict:
    """Everything that holds DistributedDataParallel wrappers; they are freed when this returns (before cleanup)."""
    data = make_data()
    # 1. plain DDP steps (the test repeats them in one process)
    net = make_net()
    model = D.wrap(net, ctx)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    stream = iter(train_loader(data, ctx))
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        seed_loss(model, next(stream)).backward()
        opt.step()
    params = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # 2. fit over MiniBatchTask with dropout differing per process: replicas still agree, same model selected
    torch.manual_seed(ctx.rank)
    net2 = make_net(dropout=0.3)
    val = neighbor_loader(data, [-1, -1], batch_size=64, input_nodes=data.val_mask.nonzero().flatten()[ctx.rank::2])
    task = MiniBatchTask(train_loader(data, ctx), val, forward=D.wrap(net2, ctx), reduce=D.all_reduce_sum)
    result = fit(net2, task.loss, task.evaluate, steps=2 * task.steps_per_epoch, eval_every=task.steps_per_epoch)
    # 3. a sweep of independent jobs, and UCI programs spread by cost (when the offline data is there)
    jobs = D.run_jobs(list(range(5)), lambda j: (j, j * j, ctx.rank), ctx)
    uci = None
    if os.environ.get("MODGRAPH_DATA"):
        programs = uci_programs()
        uci = D.run_jobs(programs, lambda job: (run_method(*job).row["test_acc_runs"], ctx.rank), ctx,
                         cost=[program_cost(*job) for job in programs])
    torch.manual_seed(0)
    disagree = torch.nn.Linear(3, 2)  # the same on both ranks but one weight: 0 on rank 0, 1.5 on rank 1
    with torch.no_grad():
        disagree.weight[1, 2] = 1.5 * ctx.rank
    return {"params": params, "spread": D.parameter_spread(net), "fit_spread": D.parameter_spread(net2),
            "disagree": D.parameter_spread(disagree),
            "fit_best": result.best_score, "fit_val": task.last_eval, "jobs": jobs, "uci": uci}


def main(out: str) -> None:
    torch.set_num_threads(1)
    ctx = D.init_distributed("cpu", timeout_s=60)
    assert ctx.world_size == 2 and ctx.backend == "gloo"
    try:
        torch.save(train(ctx), f"{out}/rank{ctx.rank}.pt")
    finally:
        D.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
