"""Run by tests/scale/test_memory.py in a fresh process: graph attention training under a 2 GiB address-space cap.

After the imports the process may map at most 2 GiB more. One dense ``N x N`` float32 matrix of the 50k-node
graph alone would need 10 GB, so any dense allocation fails here; the edge-wise code must pass.
"""

import resource

import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph import models
from modgraph.data import sbm_graph
from modgraph.scale.sampler import neighbor_loader

N = 50_000


def vm_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))


def main() -> None:
    torch.set_num_threads(1)
    limit = vm_bytes() + 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:  # the cap bites: a dense N x N matrix cannot be allocated
        torch.empty(N, N)
        raise SystemExit("the address-space cap did not stop a dense N x N allocation")
    except RuntimeError:
        pass
    data = sbm_graph(N, num_classes=5, avg_degree=10, num_features=32, seed=0)
    for attention in ("softmax", "sparsemax"):
        torch.manual_seed(0)
        net = mg.ModuleGraph(models.gcn_net(32, 5, conv="attention", hidden=16, heads=2, dropout=0.5,
                                            attention_dropout=0.5, attention=attention))
        F.cross_entropy(net(data.x, edge_index=data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        batch = next(iter(neighbor_loader(data, [10, 10], batch_size=1024, input_nodes=data.train_mask)))
        out = net(batch.x, edge_index=batch.edge_index)[:batch.batch_size]
        F.cross_entropy(out, batch.y[:batch.batch_size]).backward()
    print("ok", data.edge_index.size(1))


if __name__ == "__main__":
    main()
