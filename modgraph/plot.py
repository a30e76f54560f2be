"""Figures of recorded attention and of pruning results, written as PNG files.

Built with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state), so they work on
headless machines and inside tests. Every function saves to ``path`` and returns it.

* :func:`weight_histograms` - per gate, the distribution of its entries' mean weights, one curve per epoch;
* :func:`dag_figure` - the DAG with edge widths by mean attention weight;
* :func:`neuron_heatmaps` - the ``[in, out]`` mean-weight matrix of every neuron-level gate;
* :func:`sparsity_curves` - accuracy against sparsity, one line per criterion, one panel per data set;
* :func:`training_curves` - training loss and validation score against the step, the schedule's phases shaded;
* :func:`branch_profile` - the mean weight a merge gives each of its branches, one line per group of samples.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import checks
from .io import atomic_write


def _figure(panels: int, width: float = 4.0, height: float = 3.2, cols: int | None = None):
    cols = cols or min(panels, 3)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]
    return fig, axes


def figure_format(path: str | os.PathLike) -> str:
    """The image format named by ``path``'s suffix (``png`` without one); a ``ValueError`` naming the file and the
    supported formats for any other suffix (a ``TypeError`` for a ``path`` that is not a str or a Path)."""
    fmt = checks.path("path", path, what="the image file's path").suffix[1:].lower() or "png"
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"{path}: cannot draw to a '.{fmt}' file; supported: {', '.join(sorted(supported))}")
    return fmt


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically: a failed write leaves no half-written image (or the old one)."""
    fmt = figure_format(path)
    return atomic_write(path, lambda f: fig.savefig(f, dpi=110, format=fmt), binary=True)


def _check_recorder(where: str, recorder) -> None:
    from .record import EdgeRecorder

    if not isinstance(recorder, EdgeRecorder):
        raise TypeError(f"{where}: recorder must be a modgraph.record.EdgeRecorder, got {type(recorder).__name__}")


def _epoch(where: str, epoch) -> int:
    """``epoch`` as an int: an epoch number (``-1``: the last); a TypeError naming ``where`` otherwise."""
    return checks.integer(f"{where}: epoch", epoch, why="an epoch number; -1: the last", error=TypeError)


def _stats(where: str, recorder, key: str, epoch: int):
    """``recorder.stats(key, epoch)``, or a ValueError naming ``where``, the gate and the recorded epochs."""
    history = recorder.gates[key].history
    if epoch != -1 and all(e != epoch for e, _ in history):
        raise ValueError(f"{where}: epoch {epoch} was not recorded for gate {key!r}; recorded epochs: "
                         f"{[e for e, _ in history]} (-1: the last)")
    return recorder.stats(key, epoch)


def _epochs(recorder, key: str, epochs, most: int = 6) -> list:
    recorded = [e for e, _ in recorder.gates[key].history]
    if epochs is not None:
        return [e for e in epochs if e in recorded]
    if len(recorded) <= most:
        return recorded
    picks = np.linspace(0, len(recorded) - 1, most).round().astype(int)
    return [recorded[i] for i in dict.fromkeys(picks.tolist())]


def weight_histograms(recorder, path, gates=None, epochs=None, bins: int = 20) -> Path:
    """Histograms of each gate's per-entry mean weights (``[0, 1]``), one line per epoch (darker = later).

    Args:
        recorder: an :class:`~modgraph.record.EdgeRecorder` with closed epochs.
        path: the PNG to write.
        gates: gate keys to draw (default: all); epochs: epoch numbers (default: up to 6, evenly spaced).
        bins: histogram bins over ``[0, 1]``.
    """
    _check_recorder("weight_histograms", recorder)
    bins = checks.positive_int("weight_histograms: bins", bins)
    for name, value in (("gates", gates), ("epochs", epochs)):
        if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Iterable)):
            raise TypeError(f"weight_histograms: {name} must be a list, got {value!r}")
    keys = list(recorder.gates) if gates is None else list(gates)
    if not keys:
        raise ValueError("the recorder has no gates to draw")
    unknown = [k for k in keys if k not in recorder.gates]
    if unknown:
        raise ValueError(f"weight_histograms: no recorded gate {unknown[0]!r}; recorded gates: "
                         f"{', '.join(map(repr, recorder.gates)) or 'none'}")
    unclosed = [k for k in keys if not recorder.gates[k].history]
    if unclosed:  # else an empty panel
        raise ValueError(f"weight_histograms: gate {unclosed[0]!r} has no closed epoch; call epoch_end() after "
                         f"running the network")
    if epochs is not None:
        epochs = [checks.integer(f"weight_histograms: epochs[{i}]", e, why="an epoch number", error=TypeError)
                  for i, e in enumerate(epochs)]
        if not epochs:
            raise ValueError("weight_histograms: epochs is empty; give epoch numbers to draw (None: up to 6)")
        recorded = {e for k in keys for e, _ in recorder.gates[k].history}
        missing = [e for e in epochs if e not in recorded]
        if missing:  # else a panel without its curve, silently
            raise ValueError(f"weight_histograms: epoch {missing[0]!r} was not recorded for the gates drawn; recorded "
                             f"epochs: {sorted(recorded)}")
    fig, axes = _figure(len(keys))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, key in zip(axes, keys):
        chosen = _epochs(recorder, key, epochs)
        colours = [(0.2 + 0.6 * i / max(len(chosen) - 1, 1)) for i in range(len(chosen))]
        for epoch, shade in zip(chosen, colours):
            mean = recorder.stats(key, epoch).mean.reshape(-1).cpu().numpy()
            counts, _ = np.histogram(mean[~np.isnan(mean)], bins=edges)
            ax.stairs(counts, edges, color=(0.1, 0.2 + 0.5 * shade, 0.9 - 0.6 * shade), label=f"epoch {epoch}")
        info = recorder.gates[key]
        ax.set_title(f"{info.level} gate {key}", fontsize=10)
        ax.set_xlabel("mean weight")
        ax.set_ylabel("entries")
        ax.legend(fontsize=7)
    return _save(fig, path)


def _edge_means(recorder, epoch) -> dict:
    means = {}
    for key, info in recorder.gates.items():
        if not info.history or info.level == "graph":
            continue
        mean = _stats("dag_figure", recorder, key, epoch).mean
        if info.level == "neuron":
            means[tuple(info.edges[0])] = float(mean.mean())
        else:
            for k, edge in enumerate(info.edges):
                means[tuple(edge)] = float(mean[k].mean())
    return means


def _layered_positions(g: nx.DiGraph, layers: dict) -> dict:
    """Node positions: column = topological generation, rows top to bottom in the spec's node order.

    Written out rather than ``nx.multipartite_layout``, whose order within a layer follows set iteration and so
    changes with Python's hash seed; this layout is the same on every run.
    """
    columns: dict[int, list] = {}
    for v in g.nodes:
        columns.setdefault(layers[v], []).append(v)
    pos = {}
    for layer, nodes in columns.items():
        for row, v in enumerate(nodes):
            pos[v] = np.array([float(layer), (len(nodes) - 1) / 2 - row])
    return pos


def dag_figure(net, recorder, path, epoch: int = -1) -> Path:
    """The network's DAG, left to right by topological generation; attended edges drawn with width by their mean
    weight (neuron gates: the mean over connections) and labelled with it, the others thin and dashed.

    With ``recorder=None`` (a spec not yet trained: ``modgraph draw``) attended edges are drawn solid at one width.
    """
    from .module_graph import ModuleGraph

    if not isinstance(net, ModuleGraph):
        raise TypeError(f"dag_figure: net must be a modgraph.ModuleGraph, got {type(net).__name__}")
    epoch = _epoch("dag_figure", epoch)
    if recorder is not None:
        _check_recorder("dag_figure", recorder)
        _check_gates_of(net, recorder)
    g = net.graph
    layers = {v: i for i, gen in enumerate(nx.topological_generations(g)) for v in gen}
    pos = _layered_positions(g, layers)
    if recorder is not None:
        means = _edge_means(recorder, epoch)
    else:
        means = {(u, v): 0.25 for u, v, a in g.edges(data=True) if a.get("attention")}
    fig, (ax,) = _figure(1, width=1.8 + 1.6 * (max(layers.values()) + 1), height=4.5)
    attended = [e for e in g.edges if e in means]
    plain = [e for e in g.edges if e not in means]
    labels = {v: f"{v}\n{g.nodes[v].get('op', 'module')} {net.plan.widths[v]}" for v in g.nodes}
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#dde7f3", node_size=1400, edgecolors="#4a6d8c")
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    nx.draw_networkx_edges(g, pos, edgelist=plain, ax=ax, style="dashed", width=0.8, edge_color="#999999",
                           node_size=1400, arrowsize=10)
    if attended:
        nx.draw_networkx_edges(g, pos, edgelist=attended, ax=ax, width=[0.5 + 8 * means[e] for e in attended],
                               edge_color="#c0392b", node_size=1400, arrowsize=12)
        if recorder is not None:
            nx.draw_networkx_edge_labels(g, pos, edge_labels={e: f"{means[e]:.2f}" for e in attended}, ax=ax,
                                         font_size=7)
    title = "mean attention weight per edge" if recorder is not None else "attended edges (solid) and plain edges"
    ax.set_title(title + ("" if epoch == -1 else f" (epoch {epoch})"), fontsize=10)
    ax.set_axis_off()
    return _save(fig, path)


def _check_gates_of(net, recorder) -> None:
    """ValueError unless ``recorder`` holds a closed epoch and records gates of ``net`` only (else edges would be
    drawn by another network's weights, or none at all, silently)."""
    from .record.recorder import gate_key

    if not any(info.history for info in recorder.gates.values()):
        raise ValueError("dag_figure: the recorder has no closed epoch; call epoch_end() after running the network "
                         "(or pass recorder=None to draw the attended edges alone)")
    levels = {gate_key(gate): gate.level for gate in net.gates()}
    for key, info in recorder.gates.items():
        if levels.get(key) != info.level:
            raise ValueError(f"dag_figure: the recorder records the {info.level} gate {key!r}, which the network has "
                             f"not (its gates: {', '.join(map(repr, levels)) or 'none'}); draw a network with the "
                             f"recorder attached to it")


def neuron_heatmaps(recorder, path, epoch: int = -1, field: str = "mean") -> Path:
    """One heatmap per neuron-level gate: ``field`` (``mean``, ``std``, ``under``, ...) as ``[in, out]``."""
    from .record.stats import STAT_FIELDS

    _check_recorder("neuron_heatmaps", recorder)
    epoch = _epoch("neuron_heatmaps", epoch)
    checks.choice("neuron_heatmaps: field", field, tuple(f for f in STAT_FIELDS if f != "count"))  # the tensors
    keys = [k for k, info in recorder.gates.items() if info.level == "neuron" and info.history]
    if not keys:
        raise ValueError("the recorder has no neuron-level gate with a closed epoch")
    fig, axes = _figure(len(keys), width=3.0, height=4.2)
    for ax, key in zip(axes, keys):
        matrix = getattr(_stats("neuron_heatmaps", recorder, key, epoch), field).cpu().numpy()
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(1.0, float(np.nanmax(matrix))),
                          interpolation="nearest")
        u, v = recorder.gates[key].edges[0]
        ax.set_title(f"{key}: {field} weight", fontsize=10)
        ax.set_xlabel(f"unit of {v} (out)")
        ax.set_ylabel(f"unit of {u} (in)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def sparsity_curves(rows: list[dict], path, y: str = "test_acc_after", x: str = "sparsity",
                    line: str = "criterion", panel: str = "dataset", title: str | None = None) -> Path:
    """Mean ``y`` against ``x`` (with the standard deviation over repeats shaded), a line per value of ``line``
    and a panel per value of ``panel``; a dotted line marks the unpruned ``test_acc_before`` mean."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TypeError(f"sparsity_curves: rows must be a list of dicts (one per result), got {type(rows).__name__}")
    for i, r in enumerate(rows):
        absent = [f"{k!r} ({role})" for role, k in (("x", x), ("y", y), ("line", line), ("panel", panel)) if k not in r]
        if absent:
            raise ValueError(f"sparsity_curves: row {i} has no {', '.join(absent)}; its keys: "
                             f"{', '.join(map(repr, r))}")
        for role, k in (("x", x), ("y", y)):
            if not checks.is_real(r[k]):
                raise ValueError(f"sparsity_curves: row {i}: {k!r} ({role}) must be a number, got {r[k]!r:.60}")
        for role, k in (("line", line), ("panel", panel)):
            try:
                hash(r[k])
            except TypeError:
                raise TypeError(f"sparsity_curves: row {i}: {k!r} ({role}) must be a label (a str or a number), got "
                                f"{type(r[k]).__name__}") from None
    before = [i for i, r in enumerate(rows) if "test_acc_before" in r]
    if before and len(before) < len(rows):  # else a KeyError, or a panel's line from another panel's first row
        missing = next(i for i, r in enumerate(rows) if "test_acc_before" not in r)
        raise ValueError(f"sparsity_curves: row {missing} has no 'test_acc_before', but row {before[0]} has; give it "
                         f"in every row (the unpruned line) or in none")
    for i in before:
        if not checks.is_real(rows[i]["test_acc_before"]):
            raise ValueError(f"sparsity_curves: row {i}: 'test_acc_before' must be a number, got "
                             f"{rows[i]['test_acc_before']!r:.60}")
    panels = list(dict.fromkeys(r[panel] for r in rows))
    if not panels:
        raise ValueError("no rows to plot")
    fig, axes = _figure(len(panels))
    styles = {"attention": "#c0392b", "magnitude": "#2471a3", "random": "#7f8c8d", "sgl": "#229954"}
    for ax, name in zip(axes, panels):
        mine = [r for r in rows if r[panel] == name]
        for kind in dict.fromkeys(r[line] for r in mine):
            points = sorted({r[x] for r in mine if r[line] == kind})
            values = [[r[y] for r in mine if r[line] == kind and r[x] == p] for p in points]
            mean = np.array([np.mean(v) for v in values])
            std = np.array([np.std(v) for v in values])
            colour = styles.get(kind)
            ax.plot(points, mean, marker="o", ms=3, label=kind, color=colour)
            ax.fill_between(points, mean - std, mean + std, alpha=0.15, color=colour)
        if "test_acc_before" in mine[0]:
            ax.axhline(np.mean([r["test_acc_before"] for r in mine]), ls=":", color="black", lw=0.8,
                       label="unpruned")
        ax.set_title(str(name), fontsize=10)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


# (trains, attention on): the alternating schedule's warm-up, attention phase, main phase and joint fine-tune
_PHASE_COLOURS = {("main", False): "#e8e8e8", ("attention", True): "#dbe9f6", ("main", True): "#f4ecd8",
                  ("all", True): "#e3f1e0"}


def training_curves(runs: dict, path, title: str | None = None) -> Path:
    """Training loss and validation score against the optimisation step, one line per run, one panel each.

    Args:
        runs: ``{label: result}`` with ``result`` a :class:`~modgraph.train.FitResult` (or its ``history`` list of
            ``{"step", "phase", "loss", "score"}``). The phases of the first run with more than one phase (its
            ``phases`` log) are shaded behind both panels: main network alone, attention alone, joint.
        path: the PNG to write.
        title: an optional figure title.
    """
    if not isinstance(runs, dict):
        raise TypeError(f"training_curves: runs must be a dict {{label: FitResult or its history}}, got "
                        f"{type(runs).__name__}")
    if not runs:
        raise ValueError("no runs to plot")
    fig, (loss_ax, score_ax) = _figure(2, width=5.0, height=3.4, cols=2)
    shaded = False
    for label, result in runs.items():
        if not isinstance(result, list) and not (hasattr(result, "history") and hasattr(result, "phases")):
            raise TypeError(f"training_curves: run {label!r} must be a FitResult or its history list, got "
                            f"{type(result).__name__}")
        history = result if isinstance(result, list) else result.history
        phases = [] if isinstance(result, list) else result.phases
        if not history:
            raise ValueError(f"run {label!r} has no evaluations to plot")
        for i, h in enumerate(history):
            absent = [k for k in ("step", "loss", "score") if not isinstance(h, dict) or k not in h]
            if absent:
                raise ValueError(f"run {label!r}: history[{i}] has no {', '.join(map(repr, absent))}; expected "
                                 f"{{'step', 'loss', 'score', ...}} as FitResult.history holds them")
            score = h["score"]
            if score is None or isinstance(score, (list, tuple)) or (hasattr(score, "shape")
                                                                     and not checks.is_real(score)):
                raise ValueError(f"run {label!r}: per-member (ensemble) scores are not plotted; plot one member")
            for k in ("step", "loss", "score"):
                if not checks.is_real(h[k]):
                    raise ValueError(f"run {label!r}: history[{i}][{k!r}] must be a number, got {h[k]!r:.60}")
        for i, ph in enumerate(phases):
            absent = [k for k in ("name", "trains", "attention", "start", "end")
                      if not isinstance(ph, dict) or k not in ph]
            if absent:
                raise ValueError(f"run {label!r}: phases[{i}] has no {', '.join(map(repr, absent))}; expected "
                                 f"{{'name', 'trains', 'attention', 'start', 'end'}} as FitResult.phases holds them")
        steps = [h["step"] for h in history]
        loss_ax.plot(steps, [h["loss"] for h in history], lw=1.2, label=label)
        score_ax.plot(steps, [h["score"] for h in history], lw=1.2, label=label)
        if not shaded and len(phases) > 1:
            shaded = True
            seen = set()
            for ph in phases:
                colour = _PHASE_COLOURS.get((ph["trains"], bool(ph["attention"])), "#f5f5f5")
                name = f"{ph['name']} ({'attention on' if ph['attention'] else 'attention off'})"
                for ax in (loss_ax, score_ax):
                    ax.axvspan(ph["start"], ph["end"], color=colour, lw=0,
                               label=None if (name in seen or ax is score_ax) else f"{label}: {name}")
                seen.add(name)
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("training loss")
    score_ax.set_xlabel("step")
    score_ax.set_ylabel("validation score")
    loss_ax.legend(fontsize=7)
    score_ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def branch_profile(weights: dict, path, groups=None, xlabel: str = "branch", title: str | None = None) -> Path:
    """Mean branch-attention weight per branch of one merge, one line per group of samples (or one line).

    Args:
        weights: ``{branch label: weights [N]}`` in branch order, e.g. ``{k: w for (u, v), w in
            net.edge_weights().items() if v == "out"}`` for the ``N`` samples (nodes) of the last forward.
        path: the PNG to write.
        groups: optional ``{group label: bool mask [N]}``; each group's line is its samples' mean, its band one
            standard deviation.
        xlabel, title: axis label and optional title.
    """
    if not isinstance(weights, dict):
        raise TypeError(f"branch_profile: weights must be a dict {{branch label: weights [N]}}, got "
                        f"{type(weights).__name__}")
    if not weights:
        raise ValueError("no branch weights to plot")
    labels = [str(k) for k in weights]
    columns = {k: _samples(f"branch_profile: weights[{k!r}]", v, "weights [N]") for k, v in weights.items()}
    if len({c.shape[0] for c in columns.values()}) > 1:
        raise ValueError(f"branch_profile: every branch needs one weight per sample, got "
                         f"{', '.join(f'{k!r}: {c.shape[0]}' for k, c in columns.items())}")
    w = np.stack(list(columns.values()), axis=1)  # (N, K)
    if not w.shape[0]:
        raise ValueError("branch_profile: the weights hold no samples (N = 0); nothing to plot")
    if groups is not None and not isinstance(groups, dict):
        raise TypeError(f"branch_profile: groups must be a dict {{group label: bool mask [N]}} (or None), got "
                        f"{type(groups).__name__}")
    groups = groups or {"all": np.ones(w.shape[0], dtype=bool)}
    masks = {name: _samples(f"branch_profile: groups[{name!r}]", mask, "bool mask [N]", boolean=True)
             for name, mask in groups.items()}
    for name, mask in masks.items():
        if mask.shape[0] != w.shape[0]:
            raise ValueError(f"group {name!r} has {mask.shape[0]} entries, the weights {w.shape[0]} samples")
    if not any(m.any() for m in masks.values()):
        raise ValueError("branch_profile: no group holds a sample (every mask is all False); nothing to plot")
    fig, (ax,) = _figure(1, width=6.0, height=3.6)
    x = np.arange(len(labels))
    for name, mask in masks.items():
        if not mask.any():
            continue
        mean, std = w[mask].mean(0), w[mask].std(0)
        ax.plot(x, mean, marker="o", ms=3, lw=1.2, label=f"{name} ({int(mask.sum())})")
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xticks(x, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean attention weight")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _samples(name: str, value, what: str, boolean: bool = False) -> np.ndarray:
    """``value`` (a tensor, an array or a list) as a 1-D numpy array of numbers (``boolean``: of bools), or the
    error naming ``name``: a ``[N, heads]`` or ``[B, in, out]`` array flattened would mix heads or units into the
    samples, a float mask would be taken as True wherever it is not 0."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be {what}, got {type(value).__name__} ({err})") from None
    if boolean and array.dtype != bool:
        raise ValueError(f"{name} must be a {what}, got {array.dtype} values; compare to get a mask, e.g. y == 0")
    if not boolean and (array.dtype == bool or not np.issubdtype(array.dtype, np.number)
                        or np.issubdtype(array.dtype, np.complexfloating)):
        raise ValueError(f"{name} must be {what} of numbers, got {array.dtype} values")
    if array.ndim == 2 and array.shape[1] == 1:  # [N, 1]: one head
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be {'a ' if boolean else ''}{what}, got shape {array.shape}"
                         + ("" if boolean else "; pick one head (w[:, h]) or unit"))
    return array if boolean else array.astype(float)
