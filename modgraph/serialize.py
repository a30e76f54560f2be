"""Saving and loading whole networks (spec + weights) in one file, safely.

The file is a ``torch.save`` of plain data: ``{"format", "spec" (a JSON string), "state_dict"}``. It is written
atomically (a temporary file, then a rename) and read with ``torch.load(weights_only=True)``, which never
unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .errors import CheckpointError
from .io import atomic_write

NET_FORMAT = "modgraph-net/1"


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: readers never see half a file."""
    return atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def safe_torch_load(path: str | os.PathLike, map_location=None):
    """``torch.load(weights_only=True)`` with errors that name the file."""
    path = Path(path)
    _check_map_location(map_location)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupted, or holding objects weights_only refuses
        raise CheckpointError(f"{path}: not a readable modgraph file ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None


def _check_map_location(map_location) -> None:
    """A device named for ``torch.load`` must be one (else its error would read as a damaged file)."""
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return  # torch.load's other forms: a function of (storage, location), or a mapping of locations
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError):
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda:0' (or None: the CPU), got "
                         f"{map_location!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location {map_location!r}: this machine has no CUDA device; load with None or 'cpu'")


def save_network(net, path: str | os.PathLike) -> Path:
    """Save ``net``'s spec and weights to one file (a pruned network keeps its new structure)."""
    if not (isinstance(net, torch.nn.Module) and callable(getattr(net, "to_dict", None))):
        raise TypeError(f"save_network: net must be a modgraph.ModuleGraph (the call is save_network(net, path)), "
                        f"got {type(net).__name__}")
    return atomic_torch_save({"format": NET_FORMAT, "spec": json.dumps(net.to_dict()),
                              "state_dict": net.state_dict()}, path)


def load_network(path: str | os.PathLike, map_location=None):
    """Rebuild the network saved by :func:`save_network`, with its weights, on the CPU (move it with ``.to()``).

    ``map_location`` says where the file's tensors are read; ``None`` reads them onto the CPU, so a network saved
    from a GPU loads on a machine without one."""
    from .module_graph import ModuleGraph

    blob = safe_torch_load(path, "cpu" if map_location is None else map_location)
    if not isinstance(blob, dict) or blob.get("format") != NET_FORMAT:
        raise CheckpointError(f"{path}: not a modgraph network file (expected format {NET_FORMAT!r})")
    for key, kind, want in (("spec", str, "a JSON string"), ("state_dict", dict, "a dict of tensors")):
        if key not in blob:
            raise CheckpointError(f"{path}: damaged network file: no {key!r} (expected {want})")
        if not isinstance(blob[key], kind):
            raise CheckpointError(f"{path}: damaged network file: {key!r} is {type(blob[key]).__name__}, "
                                  f"expected {want}")
    try:
        spec = json.loads(blob["spec"])
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: damaged spec ({type(err).__name__}: {err})") from None
    net = ModuleGraph.from_dict(spec, source=str(path))  # a GraphSpecError names the file and the fault
    load_state(net, blob["state_dict"], str(path))
    return net


def load_state(net, state_dict: dict, source: str = "checkpoint") -> None:
    """``load_state_dict`` that names missing, unexpected and mis-shaped entries instead of a torch traceback."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{source}: damaged weights: expected a dict of tensors, got "
                              f"{type(state_dict).__name__}")
    bad = [k for k, t in state_dict.items() if not isinstance(t, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: damaged weights: entry {bad[0]!r} is {type(state_dict[bad[0]]).__name__}, "
                              f"expected a tensor" + (f" ({len(bad)} such entries)" if len(bad) > 1 else ""))
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(state_dict[k].shape)}"
              for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(map(str, unexpected[:5]))}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{source}: the weights come from another architecture: {'; '.join(parts)}")
    net.load_state_dict(state_dict)
