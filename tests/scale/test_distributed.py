import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modgraph as mg
from modgraph import models
from modgraph.data import sbm_graph
from modgraph.scale import distributed as D
from modgraph.scale.minibatch import seed_loss
from modgraph.scale.sampler import neighbor_loader

STEPS = 4
HERE = Path(__file__).resolve().parent


def make_data():
    return sbm_graph(240, num_classes=3, avg_degree=6, num_features=8, seed=0)


def make_net(dropout=0.0):
    torch.manual_seed(0)
    return mg.ModuleGraph(models.gcn_net(8, 3, conv="attention", hidden=8, heads=2, dropout=dropout,
                                         attention_dropout=dropout))


def train_loader(data, ctx):
    """This rank's share of the training seeds; all neighbours, so the batches are the same in every run."""
    seeds = data.train_mask.nonzero().flatten()
    return neighbor_loader(data, [-1, -1], batch_size=16, input_nodes=seeds,
                           sampler=D.seed_sampler(seeds.numel(), ctx, shuffle=True, seed=0))


@pytest.fixture
def one_thread():
    """One torch thread, as the workers: the same summation order, the same numbers (and no waiting on busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def uci_programs():
    """Three small UCI programs (data set, method, protocol) for the job-sweep check."""
    from modgraph.benchmarks.uci import Protocol
    from modgraph.data import load_uci

    protocol = Protocol(folds=3, steps=60, eval_every=10, patience=5)
    balance, liver = load_uci("balance", None), load_uci("liver", None)
    return [(balance, "wd", protocol), (balance, "attention", protocol), (liver, "wd", protocol)]


def test_shard_jobs_is_round_robin_and_covers_every_job():
    jobs = list("abcdefg")
    shares = [D.shard_jobs(jobs, r, 3) for r in range(3)]
    assert shares[1] == [(1, "b"), (4, "e")]
    assert sorted(i for share in shares for i, _ in share) == list(range(7))
    with pytest.raises(ValueError, match="rank must be in \\[0, world_size\\), got rank 3 of world_size 3"):
        D.shard_jobs(jobs, 3, 3)
    assert D.run_jobs(jobs, str.upper) == list("ABCDEFG")  # one process: all jobs here


def test_costly_jobs_are_balanced_over_the_processes():
    cost = [1, 8, 3, 3, 2, 7]
    shares = [D.shard_jobs(list("abcdef"), r, 2, cost) for r in range(2)]
    assert [i for i, _ in shares[0]] == [1, 3, 0] and [i for i, _ in shares[1]] == [5, 2, 4]  # 12 and 12
    assert sorted(i for share in shares for i, _ in share) == list(range(6))
    with pytest.raises(ValueError, match="one number per job: 2 costs for 6 jobs"):
        D.shard_jobs(list("abcdef"), 0, 2, [1, 2])


def test_seed_shares_are_equal_and_cover_the_seeds():
    shares = [list(D.seed_sampler(11, D.DistContext(rank=r, world_size=2), seed=0)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 6  # padded: both ranks run the same number of steps
    assert set(shares[0]) | set(shares[1]) == set(range(11))


def test_seed_shares_follow_the_documented_shuffle_padding_and_drop_last():
    """Hand computation of the docstring: a permutation drawn with seed + epoch, padded with its first positions to
    a multiple of the world size (drop_last: cut to one), process r taking positions r, r + world, ..."""

    def expected(n, world, rank, seed, epoch, drop_last=False):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        order = order[:n - n % world] if drop_last else order + order[:-n % world]
        return order[rank::world]

    for seed, epoch in ((0, 0), (0, 1), (5, 0)):
        for rank in range(3):
            sampler = D.seed_sampler(10, D.DistContext(rank=rank, world_size=3), seed=seed)
            sampler.set_epoch(epoch)
            assert list(sampler) == expected(10, 3, rank, seed, epoch)
    assert expected(10, 3, 0, 0, 0) != expected(10, 3, 0, 0, 1) != [0, 3, 6, 9]  # the reference does shuffle
    cut = D.seed_sampler(10, D.DistContext(rank=2, world_size=3), seed=0, drop_last=True)
    assert list(cut) == expected(10, 3, 2, 0, 0, drop_last=True) and len(cut) == 3
    assert list(D.seed_sampler(10, D.DistContext(rank=1, world_size=3), shuffle=False)) == [1, 4, 7, 0]  # padded with 0


def test_single_process_context_and_device():
    ctx = D.init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main, ctx.distributed) == (0, 1, None, True, False)
    assert D.DistContext(rank=1, world_size=2, backend="gloo").distributed
    assert D.wrap(torch.nn.Linear(2, 2), ctx).__class__ is torch.nn.Linear
    net = torch.nn.Linear(2, 2)  # a process group of one process: nothing to average, no wrapper either
    assert D.wrap(net, D.DistContext(world_size=1, backend="gloo")) is net
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda', got 'gpu'"):
        D.resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            D.resolve_device("cuda")


def test_every_local_rank_gets_a_gpu_of_its_own_or_a_clear_error(monkeypatch):
    """(CUDA simulated: two GPUs.) Local rank r takes cuda:r; a third process on the node used to share cuda:0
    silently (and nccl then failed); an explicit cuda:N is taken as given."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [D.resolve_device(d, r) for d, r in (("cuda", 0), ("auto", 1), ("cuda:1", 5))] == [
        torch.device("cuda:0"), torch.device("cuda:1"), torch.device("cuda:1")]
    with pytest.raises(ValueError, match=r"local rank 2 has no GPU of its own \(2 on this node\); start at most 2 "
                                         r"processes per node \(torchrun --nproc_per_node 2\)"):
        D.resolve_device("cuda", 2)


def test_a_torchrun_process_joins_the_group_on_its_local_gpu(monkeypatch):
    """(CUDA and the process group simulated.) Rank 3 of 4 with local rank 1 (second node) takes cuda:1, not cuda:3,
    and joins with nccl, its rank and the world size from torchrun's environment."""
    import datetime

    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    calls = {}
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: "init" in calls)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.setdefault("init", kw))
    monkeypatch.setattr(dist, "get_rank", lambda: calls["init"]["rank"])
    monkeypatch.setattr(dist, "get_world_size", lambda: calls["init"]["world_size"])
    monkeypatch.setattr(dist, "get_backend", lambda: calls["init"]["backend"])
    ctx = D.init_distributed("auto", timeout_s=30)
    assert ctx == D.DistContext(3, 4, 1, torch.device("cuda:1"), "nccl") and calls["set_device"] == ctx.device
    assert calls["init"] == {"backend": "nccl", "init_method": "env://", "rank": 3, "world_size": 4,
                             "timeout": datetime.timedelta(seconds=30)}


def torchrun(worker: str, folder, timeout: float = 240) -> None:
    """Run ``worker`` (a file next to this one) on 2 CPU processes under torchrun with ``folder`` as its argument."""
    exe = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([exe, "--standalone", "--nproc_per_node", "2", str(HERE / worker), str(folder)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        _, stderr = proc.communicate()
        pytest.fail(f"the two processes did not finish in {timeout} s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not found")


@needs_torchrun
def test_two_processes_agree_and_match_single_process_training(tmp_path, one_thread):
    torchrun("ddp_worker.py", tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    # the replicas agree exactly, after plain DDP steps and after fit (same model selected on both)
    for key, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][key]), key
    assert ranks[0]["spread"] == ranks[1]["spread"] == 0.0
    assert ranks[0]["disagree"] == ranks[1]["disagree"] == 1.5  # one weight differs by 1.5
    assert ranks[0]["fit_spread"] == 0.0 and ranks[0]["fit_best"] == ranks[1]["fit_best"]
    assert ranks[0]["fit_val"] == ranks[1]["fit_val"] and ranks[0]["fit_val"]["seeds"] == 48  # all val nodes
    assert ranks[0]["jobs"] == ranks[1]["jobs"] == [(j, j * j, j % 2) for j in range(5)]
    if os.environ.get("MODGRAPH_DATA"):  # UCI programs spread over the ranks give one process's results
        from modgraph.benchmarks.uci import run_method

        assert ranks[0]["uci"] == ranks[1]["uci"]
        assert {rank for _, rank in ranks[0]["uci"]} == {0, 1}
        alone = [run_method(*job).row["test_acc_runs"] for job in uci_programs()]
        assert [runs for runs, _ in ranks[0]["uci"]] == alone
    # single process on the same global batches: each step averages the two ranks' losses
    data, net = make_data(), make_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    streams = [iter(train_loader(data, D.DistContext(rank=r, world_size=2))) for r in range(2)]
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        (sum(seed_loss(net, next(s)) for s in streams) / 2).backward()
        opt.step()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(ranks[0]["params"][key], value, rtol=1e-5, atol=1e-6)


@needs_torchrun
def test_a_job_sweep_waits_for_its_slowest_process_past_the_group_timeout(tmp_path):
    """Rank 1's job outlasts the process group's timeout (4 s) while rank 0, done, waits in the gather: the sweep
    completes with every result on both processes (it used to fail with a gloo timeout)."""
    import json

    from . import jobs_worker

    assert jobs_worker.SLEEP_S > 2 * jobs_worker.TIMEOUT_S
    torchrun("jobs_worker.py", tmp_path, timeout=120)
    for r in range(2):
        assert json.loads((tmp_path / f"jobs{r}.json").read_text()) == [0, 10]


def test_run_jobs_refuses_a_wait_that_is_not_positive():
    with pytest.raises(ValueError, match=r"wait_s must be a finite number > 0 \(seconds\), got 0"):
        D.run_jobs([1], lambda j: j, wait_s=0)
    with pytest.raises(ValueError, match=r"wait_s must be a finite number > 0 \(seconds\), got nan"):
        D.run_jobs([1], lambda j: j, wait_s=float("nan"))
    with pytest.raises(ValueError, match=r"wait_s must be a finite number > 0 \(seconds\), got inf"):
        D.run_jobs([1], lambda j: j, wait_s=float("inf"))  # a timedelta of inf seconds overflowed


def test_the_helpers_name_arguments_of_the_wrong_kind(monkeypatch):
    ctx = D.DistContext()
    net = torch.nn.Linear(2, 2)
    assert D.wrap(net, ctx) is net and len(D.seed_sampler(3, ctx)) == 3
    assert D.shard_jobs(["a", "b", "c"], 1, 2, cost=[1, 2, 0]) == [(0, "a"), (2, "c")]
    calls = [
        (lambda: D.resolve_device("cpu", -1), ValueError, r"resolve_device: local_rank must be a non-negative"),
        (lambda: D.init_distributed("cpu", timeout_s=float("nan")), ValueError,
         r"init_distributed: timeout_s must be a finite number > 0 \(seconds\), got nan"),
        (lambda: D.wrap(net, None), TypeError, r"wrap: ctx must be a DistContext \(init_distributed\(\) returns it\), "
                                              r"got NoneType"),
        (lambda: D.wrap("net", ctx), TypeError, r"wrap: net must be a network \(a torch\.nn\.Module\), got str"),
        (lambda: D.seed_sampler(-3, ctx), ValueError, r"seed_sampler: num_seeds must be a non-negative integer, "
                                                      r"got -3"),
        (lambda: D.seed_sampler(True, ctx), ValueError, r"seed_sampler: num_seeds must be .*got True"),
        (lambda: D.seed_sampler(3, ctx, shuffle="no"), TypeError, r"seed_sampler: shuffle must be true or false"),
        (lambda: D.seed_sampler(3, ctx, seed="a"), ValueError, r"seed_sampler: seed must be an integer"),
        (lambda: D.parameter_spread("x"), TypeError, r"parameter_spread: net must be a network"),
        (lambda: D.shard_jobs([1, 2, 3], 1.5, 2), ValueError, r"shard_jobs: rank must be a non-negative integer, "
                                                              r"got 1\.5"),
        (lambda: D.shard_jobs([1, 2, 3], True, 2), ValueError, r"shard_jobs: rank must be .*got True"),
        (lambda: D.shard_jobs([1, 2, 3], 0, "2"), ValueError, r"shard_jobs: world_size must be a positive integer"),
        (lambda: D.shard_jobs([1, 2, 3], 0, 2, cost=[1, float("nan"), 2]), ValueError,
         r"shard_jobs: cost\[1\] must be a finite number >= 0 \(the job's cost\), got nan"),
        (lambda: D.shard_jobs([1, 2, 3], 0, 2, cost=5), TypeError, r"shard_jobs: cost must be a list of numbers"),
        (lambda: D.shard_jobs(5, 0, 2), TypeError, r"shard_jobs: jobs must be a list of jobs, got int"),
        (lambda: D.run_jobs([1, 2], 5), TypeError, r"run_jobs: fn must be callable as fn\(job\) -> result, got int"),
        (lambda: D.run_jobs([1, 2], str, ctx="x"), TypeError, r"run_jobs: ctx must be a DistContext"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"init_distributed: the environment variable WORLD_SIZE must be a "
                                         r"non-negative integer \(torchrun sets it\), got 'two'"):
        D.init_distributed("cpu")
