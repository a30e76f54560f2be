"""Run by tests/scale/test_distributed.py under ``torchrun --nproc_per_node 2``: a job sweep whose processes finish
far apart (rank 1's job sleeps past the process group's timeout). Writes ``jobs<r>.json`` into the folder given."""

import json
import sys
import time

from modgraph.scale import distributed as D

TIMEOUT_S, SLEEP_S = 4, 10


def job(j):
    if j == 1:  # rank 1's job (round robin): rank 0 waits for it in the gather
        time.sleep(SLEEP_S)
    return j * 10


def main(out: str) -> None:
    ctx = D.init_distributed("cpu", timeout_s=TIMEOUT_S)
    assert ctx.world_size == 2
    try:
        results = D.run_jobs([0, 1], job, ctx)
        with open(f"{out}/jobs{ctx.rank}.json", "w") as f:
            json.dump(results, f)
    finally:
        D.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
