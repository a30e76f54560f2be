"""``Ensemble``: K networks of one architecture trained as one batched tensor program.

The members' parameters are stacked into tensors ``[K, ...]`` (``torch.func.stack_module_state``) that this module
registers as its own parameters; the forward pass runs one member's network under ``torch.vmap`` over the member
dimension (``torch.func.functional_call``), as in PyTorch's "model ensembling" tutorial. The ensemble exposes
``main_parameters()``, ``attention_parameters()`` and ``set_attention()``, so :func:`modgraph.train.fit` drives it
like a single ``ModuleGraph``, with selection and early stopping per member when ``evaluate`` returns ``[K]``
scores: ``fit`` tells the ensemble which members still train (:meth:`Ensemble.set_active`), and the training forward
pass computes only those.

Why this equals ``K`` separate trainings: with a loss that is the *sum* of the members' losses, the gradient of a
member's parameters is the gradient of its own loss; Adam (and SGD) update every entry on its own, so one optimiser
over the stacked tensors takes the same steps as ``K`` optimisers (global-norm clipping would couple them; do not
use it). ``tests/train/test_ensemble.py`` checks this against separate runs, with early stopping too.

Every normaliser runs inside: sigmoid and softmax are torch's, and sparsemax (dense and per segment) and the fused
neuron-level kernel are autograd functions of ours with ``vmap`` rules that make one call on the stacked members.

Limits: members must share the architecture (same spec); buffers that a module updates in place during the forward
pass (``batch_norm`` running statistics in training mode) are not supported under ``vmap``; the last-forward
attention weights of ``ModuleGraph.edge_weights()`` are not recorded inside the batched program (use
:meth:`Ensemble.member` to get a standalone copy of one member).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_leaves, tree_map

from .. import checks
from ..errors import GraphSpecError

SEP = "/"  # parameter names "nodes.h.weight" are registered as "nodes/h/weight" ("." is not allowed in a name)


class Ensemble(nn.Module):
    """``K`` copies of one network whose parameters are stacked tensors ``[K, ...]``, run as one vmapped program.

    Args:
        members: ``K >= 1`` networks with identical structure (parameter names and shapes), e.g. ``ModuleGraph``\\ s
            built from one spec under different seeds. Their current parameters become the stacked initial values;
            the members themselves are not modified or kept.

    Shapes:
        ``forward(inputs)``: a tensor ``[K, B, ...]`` (member ``k`` gets ``inputs[k]``) or, with
        ``shared=True``, ``[B, ...]`` (every member gets the same batch); a dict of such tensors for multi-input
        networks. Output: the member network's output with a leading ``K``.

    Example::

        nets = [mg.ModuleGraph(g) for _ in range(4)]
        ens = Ensemble(nets)
        ens(torch.randn(4, 32, 5)).shape               # torch.Size([4, 32, 3])
        ens.stacked("nodes.h.weight").shape            # torch.Size([4, 18, 5])
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        try:
            if isinstance(members, nn.Module) and not isinstance(members, nn.ModuleList):
                raise TypeError
            members = list(members)
        except TypeError:
            raise TypeError(f"Ensemble needs a list of member networks, got {type(members).__name__}; for one network "
                            f"write Ensemble([net])") from None
        if not members:
            raise ValueError("Ensemble needs at least one member network, got none")
        for i, m in enumerate(members):
            if not isinstance(m, nn.Module):
                raise TypeError(f"Ensemble: member {i} must be a network (an nn.Module), got {type(m).__name__}")
        first = dict(members[0].named_parameters())
        for i, m in enumerate(members[1:], start=1):
            shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
            want = {n: tuple(p.shape) for n, p in first.items()}
            if shapes != want:
                diff = sorted(set(shapes.items()) ^ set(want.items()))[:3]
                raise ValueError(f"Ensemble members must share one architecture; member {i} differs from member 0 "
                                 f"in parameters {diff}")
        _check_specs(members)
        params, buffers = stack_module_state(members)
        self.size = len(members)
        self._keys = {n: _escape(n) for n in [*params, *buffers]}
        if len(set(self._keys.values())) != len(self._keys):
            raise ValueError(f"Ensemble: parameter names collide once '.' becomes {SEP!r}: {sorted(self._keys)}")
        self.params = nn.ParameterDict({self._keys[n]: nn.Parameter(p.detach().clone()) for n, p in params.items()})
        self.buffer_names = list(buffers)
        for n, b in buffers.items():
            self.register_buffer("buf" + SEP + self._keys[n], b.detach().clone())
        # the per-member attention switch; a buffer, so per-member selection in fit() snapshots and restores it
        self.register_buffer("attention_enabled", torch.ones(self.size, dtype=torch.bool))
        self._active = None  # indices (on the CPU) of the members the training forward pass computes (None: all)
        base = copy.deepcopy(members[0]).to("meta")  # structure only: functional_call supplies every tensor
        if hasattr(base, "keep_weights"):
            base.keep_weights = False  # no side effects inside vmap
        self._base = [base]  # a list, so the meta copy is not registered as a submodule
        att = {id(p) for p in _attention_parameters(members[0])}
        self.attention_names = [n for n, p in first.items() if id(p) in att]

    # ------------------------------------------------------------------------------------------ access
    @property
    def base(self) -> nn.Module:
        """The shared structure (on the ``meta`` device): gate settings, the spec; no values."""
        return self._base[0]

    def stacked(self, name: str) -> nn.Parameter:
        """The stacked parameter ``[K, ...]`` of a member parameter name such as ``"nodes.h.weight"``."""
        if not isinstance(name, str):
            raise TypeError(f"stacked: name must be a member parameter name (a str such as 'nodes.h.weight'), got "
                            f"{type(name).__name__} {name!r:.60}")
        key = self._keys.get(name)
        if key not in self.params:
            raise KeyError(f"no parameter {name!r}; the members have {', '.join(self.parameter_names())}")
        return self.params[key]

    def parameter_names(self) -> list[str]:
        """The member parameter names, in order (``"nodes.h.weight"``, ...)."""
        return [n for n in self._keys if n not in self.buffer_names]

    def _buffer(self, name: str) -> torch.Tensor:
        return self.get_buffer("buf" + SEP + self._keys[name])

    def attention_parameters(self) -> list[nn.Parameter]:
        """The stacked attention parameters (the members' ``attention_parameters()``)."""
        return [self.stacked(n) for n in self.attention_names]

    def main_parameters(self) -> list[nn.Parameter]:
        """Every stacked parameter that is not an attention parameter."""
        att = set(self.attention_names)
        return [self.stacked(n) for n in self.parameter_names() if n not in att]

    def set_attention(self, enabled) -> None:
        """Attention on or off for every member (a bool), or per member (a ``[K]`` bool tensor, as ``fit`` passes)."""
        flags = isinstance(enabled, (list, tuple)) and all(isinstance(e, bool) for e in enabled)
        mask = isinstance(enabled, torch.Tensor) and enabled.dtype == torch.bool
        if not (isinstance(enabled, bool) or flags or mask):
            raise TypeError(f"set_attention: expected a bool or a [{self.size}] bool tensor, got "
                            f"{enabled!r:.80}")  # torch.as_tensor would take 0.5 or a float tensor as True
        value = torch.as_tensor(enabled, dtype=torch.bool, device="cpu")
        if value.dim() not in (0, 1) or (value.dim() == 1 and value.numel() != self.size):
            raise ValueError(f"set_attention: expected a bool or a [{self.size}] bool tensor, got shape "
                             f"{tuple(value.shape)}")
        self.attention_enabled.copy_(value.expand(self.size))
        self._hold_flags(value.expand(self.size).clone())

    def _hold_flags(self, flags: torch.Tensor) -> None:
        buf = self.attention_enabled
        self.__dict__["_host_flags"] = (buf, None if buf.is_inference() else buf._version, flags)

    def _flags(self) -> torch.Tensor:
        """``attention_enabled`` on the CPU (``[K]`` bool). The forward pass decides from it which passes to run;
        it is read from the buffer only after the buffer changed (``load_state_dict``, an in-place write, a new
        tensor), so a forward on a GPU does not wait for the device to read ``K`` flags."""
        buf = self.attention_enabled
        held = self.__dict__.get("_host_flags")
        if held is None or held[0] is not buf or held[1] is None or buf.is_inference() or held[1] != buf._version:
            self._hold_flags(buf.detach().cpu())
            held = self.__dict__["_host_flags"]
        return held[2]

    def _apply(self, fn, recurse=True):
        # .to(device) / .to("meta") / .half() make a new buffer with the same flags: carry the host copy over (a
        # buffer on the meta device has no values to read back)
        flags = self._flags()
        out = super()._apply(fn, recurse)
        self._hold_flags(flags)
        return out

    def set_active(self, active) -> None:
        """Which members the forward pass computes in training mode: ``None`` (all) or a ``[K]`` bool tensor.

        :func:`modgraph.train.fit` sets it to the members whose early stopping has not run out. In training mode the
        others' outputs are zeros, constant (no gradient reaches their parameters); in eval mode every member runs.
        """
        if active is None:
            self._active = None
            return
        flags = isinstance(active, (list, tuple)) and all(isinstance(a, bool) for a in active)
        if not (flags or (isinstance(active, torch.Tensor) and active.dtype == torch.bool)):
            raise TypeError(f"set_active: expected None or a [{self.size}] bool tensor (True: the member trains), got "
                            f"{active!r:.80}")  # as_tensor would take indices [0, 2] or 0.5 as a mask
        active = torch.as_tensor(active, dtype=torch.bool)
        if active.shape != (self.size,):
            raise ValueError(f"set_active: expected None or a [{self.size}] bool tensor, got shape "
                             f"{tuple(active.shape)}")
        active = active.cpu()
        self._active = None if bool(active.all()) else active.nonzero().squeeze(1)

    def _active_index(self) -> torch.Tensor:
        """``_active`` on the device of the members' state, copied there once per :meth:`set_active`."""
        device = self.attention_enabled.device
        held = self.__dict__.get("_active_on")
        if held is None or held[0] is not self._active or held[1] != device:
            held = self.__dict__["_active_on"] = (self._active, device, self._active.to(device))
        return held[2]

    def member(self, k: int) -> nn.Module:
        """A standalone copy of member ``k`` (an ordinary network with that member's parameters and attention)."""
        k = checks.integer("Ensemble.member: k", k, error=TypeError)
        if not -self.size <= k < self.size:
            raise IndexError(f"member {k} out of range for an ensemble of {self.size}")
        device = next(iter(self.params.values())).device
        net = copy.deepcopy(self.base).to_empty(device=device)
        if hasattr(net, "keep_weights"):
            net.keep_weights = True
        state = {n: self.stacked(n)[k].detach().clone() for n in self.parameter_names()}
        state.update({n: self._buffer(n)[k].clone() for n in self.buffer_names})
        net.load_state_dict(state)
        if hasattr(net, "set_attention"):
            net.set_attention(bool(self._flags()[k]))
        return net

    def train(self, mode: bool = True) -> "Ensemble":
        super().train(mode)
        self.base.train(mode)  # the structure decides dropout etc.; it is not a registered submodule
        return self

    # ------------------------------------------------------------------------------------------ forward
    def _run(self, inputs, in_dims, args, kwargs, index=None):
        params = {n: self.stacked(n) for n in self.parameter_names()}
        buffers = {n: self._buffer(n) for n in self.buffer_names}
        if index is not None:  # only these members
            params = {n: p.index_select(0, index) for n, p in params.items()}
            buffers = {n: b.index_select(0, index) for n, b in buffers.items()}
            if in_dims is not None:
                inputs = tree_map(lambda t: t.index_select(0, index), inputs)
        base = self.base

        def one(p, b, x):
            return functional_call(base, (p, b), (x, *args), kwargs)

        return vmap(one, in_dims=(0, 0, in_dims), randomness="different")(params, buffers, inputs)

    def forward(self, inputs, *args, shared: bool = False, **kwargs):
        """Every member's forward pass at once; extra ``args``/``kwargs`` (e.g. ``edge_index``) are shared."""
        if shared is not True and shared is not False:
            checks.flag("Ensemble: shared", shared, error=TypeError)
        in_dims = None if shared else 0
        if not shared:  # O(number of inputs): member k gets inputs[k]
            for t in tree_leaves(inputs):
                if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] != self.size:
                    got = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
                    raise ValueError(f"Ensemble of {self.size}: inputs must be tensors [{self.size}, B, ...] (member k "
                                     f"gets inputs[k]), or [B, ...] with shared=True (every member gets the same "
                                     f"batch), got {got}")
        if self._active is None or not self.training:
            return self._forward(inputs, in_dims, args, kwargs, None, None)
        index = self._active_index()
        out = self._forward(inputs, in_dims, args, kwargs, self._active, index)
        # every member's place in the output; the stopped members' rows are zeros
        return tree_map(lambda t: t.new_zeros((self.size, *t.shape[1:])).index_copy(0, index, t), out)

    def _forward(self, inputs, in_dims, args, kwargs, members, index):
        """The members ``members`` (CPU indices; ``None``: all), ``index`` the same on the state's device. Which
        passes run is decided on the CPU copy of the flags: no read from the device."""
        flags = self._flags() if members is None else self._flags().index_select(0, members)
        set_gates = getattr(self.base, "set_attention", None)
        if set_gates is None or bool(flags.all()):
            if set_gates is not None:
                set_gates(True)
            return self._run(inputs, in_dims, args, kwargs, index)
        set_gates(False)
        off_out = self._run(inputs, in_dims, args, kwargs, index)
        if not bool(flags.any()):
            return off_out
        # members differ (after per-member selection): run both and pick per member
        set_gates(True)
        on_out = self._run(inputs, in_dims, args, kwargs, index)
        on = self.attention_enabled if index is None else self.attention_enabled.index_select(0, index)
        return tree_map(lambda a, b: torch.where(on.view(-1, *[1] * (a.dim() - 1)), a, b), on_out, off_out)

    def extra_repr(self) -> str:
        return f"size={self.size}, member={type(self.base).__name__}"


def _spec(net: nn.Module) -> tuple | None:
    """``net``'s spec as ``(nodes, edges)`` (edges in a fixed order), or ``None`` for a network without one (a ready
    module in a node): then the parameters' names and shapes alone are compared."""
    to_dict = getattr(net, "to_dict", None)
    if to_dict is None:
        return None
    try:
        spec = to_dict()
    except GraphSpecError:
        return None
    edges = sorted(spec.get("edges", []), key=lambda e: json.dumps(e, sort_keys=True, default=str))
    return spec.get("nodes", {}), edges


def _check_specs(members: list) -> None:
    """ValueError naming the first member whose spec differs from member 0's (equal shapes are not enough: the
    ensemble runs every member with member 0's structure: its activations, gate settings, ...)."""
    first, seen = _spec(members[0]), {id(members[0])}
    if first is None:
        return
    for i, m in enumerate(members[1:], start=1):
        if id(m) in seen:
            continue
        seen.add(id(m))
        spec = _spec(m)
        if spec is None or spec == first:
            continue
        (nodes0, edges0), (nodes, edges) = first, spec
        diff = next((f"node {n!r} is {nodes.get(n)} in member {i} but {nodes0.get(n)} in member 0"
                     for n in sorted(set(nodes0) | set(nodes)) if nodes0.get(n) != nodes.get(n)), None)
        if diff is None:
            a = [e for e in edges0 if e not in edges]
            b = [e for e in edges if e not in edges0]
            diff = f"edge {b[0] if b else None} in member {i} but {a[0] if a else None} in member 0"
        raise ValueError(f"Ensemble members must share one architecture (the ensemble runs member 0's for all); "
                         f"member {i} differs: {diff}")


def _attention_parameters(net: nn.Module) -> list:
    return list(net.attention_parameters()) if hasattr(net, "attention_parameters") else []


def _escape(name: str) -> str:
    return name.replace(".", SEP)


class MemberAdam(torch.optim.Adam):
    """Adam over stacked ensemble parameters ``[K, ...]`` with one learning rate per member.

    Adam's step is linear in the learning rate (``p -= lr * m_hat / (sqrt(v_hat) + eps)``; the moments do not
    depend on it), so this takes Adam's step at ``lr.max()`` and scales each member's change by ``lr[k] / lr.max()``:
    member ``k`` follows exactly the trajectory of Adam with learning rate ``lr[k]`` (up to float rounding).

    Args:
        params: stacked parameters, each with leading dimension ``K``.
        lr: ``[K]`` positive learning rates.
        **kwargs: further ``torch.optim.Adam`` arguments (``betas``, ``eps``, ``weight_decay``).

    Example::

        fit(ens, loss_fn, evaluate, optimizer=lambda p: MemberAdam(p, lr=torch.tensor([1e-3, 1e-2, 3e-2])))
    """

    def __init__(self, params, lr: torch.Tensor, **kwargs):
        flags = (lr.dtype == torch.bool if isinstance(lr, torch.Tensor)
                 else isinstance(lr, bool) or (isinstance(lr, (list, tuple)) and any(isinstance(v, bool) for v in lr)))
        try:
            lr = torch.as_tensor(lr, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"MemberAdam: lr must be a 1-D tensor [K] of finite positive learning rates, got "
                            f"{lr!r:.80}") from None
        if flags:  # True would be a learning rate of 1
            raise TypeError(f"MemberAdam: lr must be a 1-D tensor [K] of finite positive learning rates, got bools "
                            f"{lr.bool().tolist()}")
        if lr.dim() != 1 or not lr.numel() or not bool((lr > 0).all()) or not bool(torch.isfinite(lr).all()):
            raise ValueError(f"MemberAdam: lr must be a 1-D tensor [K] of finite positive learning rates, got "
                             f"{lr.tolist()}")
        super().__init__(params, lr=float(lr.max()), **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() == 0 or p.shape[0] != lr.numel():
                    raise ValueError(f"MemberAdam: every parameter needs a leading member dimension "
                                     f"{lr.numel()}, got shape {tuple(p.shape)}")
        self.member_scale = lr / lr.max()  # (K,)

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        before = [p.detach().clone() for p in params]
        loss = super().step(closure)
        if params:  # p <- (p - old) * scale + old, for all parameters in three multi-tensor operations
            torch._foreach_sub_(params, before)
            torch._foreach_mul_(params, [self._scale(p) for p in params])
            torch._foreach_add_(params, before)
        return loss

    def _scale(self, p: torch.Tensor) -> torch.Tensor:
        """``member_scale`` ``[K, 1, ...]`` in ``p``'s dtype and device, made once per kind of parameter."""
        key = (p.device, p.dtype, p.dim())
        cache = self.__dict__.setdefault("_scales", {})
        if key not in cache:
            cache[key] = self.member_scale.to(p.device, p.dtype).view(-1, *[1] * (p.dim() - 1))
        return cache[key]


def stack_padded(arrays: Sequence, dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``K`` arrays ``[n_k, ...]`` of different lengths into ``[K, max n_k, ...]`` plus a mask ``[K, max n_k]``.

    ``dtype``: of the result (default: the arrays' common dtype, ``torch.promote_types``); ``device``: where it
    lives (default: the CPU). Padding rows are zeros with mask ``False``; weigh per-sample losses by the mask
    (divided by ``n_k``) so each member sees exactly its own samples.

    Example:
        >>> x, mask = stack_padded([torch.ones(2, 3), torch.ones(1, 3)])
        >>> x.shape, mask.tolist()
        (torch.Size([2, 2, 3]), [[True, True], [True, False]])
    """
    if isinstance(arrays, (str, bytes)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"stack_padded: expected a list of K arrays [n_k, ...], got {type(arrays).__name__}")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"stack_padded: dtype must be a torch.dtype (or None: the arrays'), got {dtype!r}")
    try:
        device = None if device is None else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"stack_padded: device must be a torch.device such as 'cpu' or 'cuda:0' (or None), got "
                         f"{device!r}") from None
    tensors = []
    for i, a in enumerate(arrays):
        try:
            tensors.append(torch.as_tensor(a))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"stack_padded: array {i} is not an array of numbers ({type(a).__name__}: "
                             f"{str(err).splitlines()[0]})") from None
    if not tensors:
        raise ValueError("stack_padded: expected at least one array, got none")
    tail = tensors[0].shape[1:]
    for i, t in enumerate(tensors):
        if t.dim() < 1 or t.shape[1:] != tail:
            want = ", ".join(["n", *map(str, tail)])
            raise ValueError(f"stack_padded: array {i} has shape {tuple(t.shape)}, expected [{want}]")
    longest = max(t.shape[0] for t in tensors)
    if dtype is None:  # every array's values kept: [1, 2] and [0.5] stack as floats, not truncated to [0]
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
    out = torch.zeros(len(tensors), longest, *tail, dtype=dtype, device=device)
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool, device=device)
    for k, t in enumerate(tensors):
        out[k, : t.shape[0]] = t.to(out.device, out.dtype)
        mask[k, : t.shape[0]] = True
    return out, mask
