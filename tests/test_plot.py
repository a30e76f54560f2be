"""Figures: each writes a PNG of the expected size and draws what it says (lines per epoch, curves per criterion)."""

import numpy as np
import pytest
import torch

import modgraph as mg
from modgraph import models, plot
from modgraph.record import EdgeRecorder

from .helpers import legend_texts, mlp_graph


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


@pytest.fixture
def recorded():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    rec = EdgeRecorder().attach(net)
    for _ in range(3):
        net(torch.randn(16, 5))
        rec.epoch_end()
    return net, rec


def test_recording_figures(tmp_path, recorded, drawn):
    net, rec = recorded
    assert list(rec.gates) == ["h->y"] and rec.gates["h->y"].level == "neuron"
    _png(plot.weight_histograms(rec, tmp_path / "hist.png"))
    _png(plot.neuron_heatmaps(rec, tmp_path / "heat.png"))
    _png(plot.dag_figure(net, rec, tmp_path / "dag.png"))
    assert plot._epochs(rec, "h->y", None) == [0, 1, 2]

    # histograms: one panel per gate titled by it, one curve per epoch, each the histogram of that epoch's 6 x 3 means
    (ax,) = drawn["hist.png"].axes
    assert ax.get_title() == "neuron gate h->y"
    assert legend_texts(ax) == ["epoch 0", "epoch 1", "epoch 2"]
    assert len(ax.patches) == 3
    for epoch, stairs in enumerate(ax.patches):
        counts = stairs.get_data().values
        assert counts.sum() == 18  # every entry counted once: the sigmoid means all lie in [0, 1]
        want = torch.histc(rec.stats("h->y", epoch).mean.float(), bins=20, min=0.0, max=1.0)
        np.testing.assert_array_equal(counts, want.numpy())

    # heatmap: the [in, out] = [h, y] matrix of mean weights, plus its colour bar
    heat_ax, colour_bar = drawn["heat.png"].axes
    assert heat_ax.get_title() == "h->y: mean weight" and not colour_bar.get_title()
    assert (heat_ax.get_ylabel(), heat_ax.get_xlabel()) == ("unit of h (in)", "unit of y (out)")
    (image,) = heat_ax.images
    np.testing.assert_allclose(image.get_array(), rec.stats("h->y").mean.numpy())

    # DAG: every node labelled with its op and width; the attended edge labelled and widened by its mean weight
    (ax,) = drawn["dag.png"].axes
    mean = rec.stats("h->y").mean.mean().item()
    assert ax.get_title() == "mean attention weight per edge"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["x\ninput 5", "h\nlinear 6", "y\nlinear 3",
                                                            f"{mean:.2f}"])
    widths = sorted(a.get_linewidth() for a in ax.patches)  # one arrow per edge: x->h plain, h->y attended
    assert widths == pytest.approx(sorted([0.8, 0.5 + 8 * mean]))
    assert plot._edge_means(rec, -1) == {("h", "y"): pytest.approx(rec.stats("h->y").mean.mean().item())}


def test_sparsity_curves(tmp_path, drawn):
    shift = {"attention": 0.0, "magnitude": -0.2}
    rows = [{"dataset": d, "criterion": c, "sparsity": s, "seed": seed,
             "test_acc_after": 0.9 - s / 10 + shift[c] + 0.02 * seed, "test_acc_before": 0.9 + 0.02 * seed}
            for d in ("glass", "sonar") for c in ("attention", "magnitude") for s in (0.0, 0.5) for seed in (0, 1)]
    _png(plot.sparsity_curves(rows, tmp_path / "curves.png", title="after pruning"))
    fig = drawn["curves.png"]
    assert fig.get_suptitle() == "after pruning"
    assert [ax.get_title() for ax in fig.axes] == ["glass", "sonar"]  # a panel per data set
    for ax in fig.axes:
        assert legend_texts(ax) == ["attention", "magnitude", "unpruned"]  # a line per criterion, and the unpruned one
        assert len(ax.lines) == 3
        for line in ax.lines[:2]:  # the mean over the two seeds: 0.91 - s / 10, shifted per criterion
            assert list(line.get_xdata()) == [0.0, 0.5]
            want = [0.91 - s / 10 + shift[line.get_label()] for s in (0.0, 0.5)]
            assert list(line.get_ydata()) == pytest.approx(want)
        assert list(ax.lines[2].get_ydata()) == pytest.approx([0.91, 0.91])  # axhline at the unpruned mean
    with pytest.raises(ValueError, match="no rows to plot"):
        plot.sparsity_curves([], tmp_path / "none.png")


def test_empty_recorders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no neuron-level gate"):
        plot.neuron_heatmaps(EdgeRecorder(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no gates to draw"):
        plot.weight_histograms(EdgeRecorder(), tmp_path / "x.png")


def test_a_failed_write_leaves_the_old_figure_and_no_temporary_file(tmp_path, recorded, monkeypatch):
    from matplotlib.figure import Figure

    net, rec = recorded
    path = plot.dag_figure(net, rec, tmp_path / "dag.png")
    before = _png(path)

    def broken(fig, f, *args, **kwargs):
        f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="No space left"):
        plot.dag_figure(net, rec, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["dag.png"]
    with pytest.raises(ValueError, match=r"x\.bmpx: cannot draw to a '\.bmpx' file; supported: .*png"):
        plot.dag_figure(net, rec, tmp_path / "x.bmpx")


def test_training_curves(tmp_path, drawn):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    result = mg.train.fit(net, lambda n: torch.nn.functional.cross_entropy(n(x), y),
                          lambda n: (n(x).argmax(1) == y).float().mean(), schedule="alternating", steps=40)
    assert len(result.phases) > 1 and len(result.history) == result.steps
    _png(plot.training_curves({"alternating": result, "history only": result.history}, tmp_path / "curves.png"))
    loss_ax, score_ax = drawn["curves.png"].axes
    assert (loss_ax.get_ylabel(), score_ax.get_ylabel()) == ("training loss", "validation score")
    assert loss_ax.get_yscale() == "log"
    steps = [h["step"] for h in result.history]
    for ax, field in ((loss_ax, "loss"), (score_ax, "score")):
        assert [line.get_label() for line in ax.lines] == ["alternating", "history only"]  # one line per run
        for line in ax.lines:
            assert list(line.get_xdata()) == steps
            assert list(line.get_ydata()) == pytest.approx([float(h[field]) for h in result.history])
        spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]  # the first run's phases, shaded once
        assert spans == [(float(ph["start"]), float(ph["end"])) for ph in result.phases]
    assert legend_texts(score_ax) == ["alternating", "history only"]
    phase_labels = [t for t in legend_texts(loss_ax) if t not in ("alternating", "history only")]
    assert len(legend_texts(loss_ax)) == 2 + len(phase_labels)
    assert phase_labels and all(t.startswith("alternating: ") for t in phase_labels)
    assert {t.split(": ", 1)[1].split(" (")[0] for t in phase_labels} == {ph["name"] for ph in result.phases}
    with pytest.raises(ValueError, match="no runs to plot"):
        plot.training_curves({}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="no evaluations"):
        plot.training_curves({"empty": []}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="ensemble"):
        plot.training_curves({"k": [{"step": 1, "loss": 1.0, "score": [0.5, 0.6]}]}, tmp_path / "none.png")


def test_dag_layout_follows_the_spec_order():
    """Nodes of one generation are stacked top to bottom in the spec's order (not in set order, which varies
    with the hash seed), so the same spec gives the same picture on every run."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_edges_from([("x", name) for name in ("zeta", "alpha", "mid")] + [(n, "y") for n in ("zeta", "alpha", "mid")])
    layers = {v: i for i, gen in enumerate(nx.topological_generations(g)) for v in gen}
    pos = plot._layered_positions(g, layers)
    assert [pos[v][0] for v in ("x", "zeta", "alpha", "mid", "y")] == [0.0, 1.0, 1.0, 1.0, 2.0]
    assert pos["zeta"][1] > pos["alpha"][1] > pos["mid"][1] and pos["x"][1] == pos["y"][1] == 0.0


def test_branch_profile(tmp_path, drawn):
    torch.manual_seed(0)
    net = mg.ModuleGraph(models.hop_attention(6, 3, steps=2, dropout=0.0))
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    net(torch.rand(4, 6), edge_index=edge_index)
    weights = {u: w for (u, v), w in net.edge_weights().items() if v == "out"}
    groups = {"even": torch.tensor([True, False, True, False]), "odd": torch.tensor([False, True, False, True])}
    path = plot.branch_profile(weights, tmp_path / "p.png", groups=groups, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = drawn["p.png"].axes
    assert ax.get_title() == "t" and ax.get_xlabel() == "branch"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in weights] and len(weights) == 3
    assert legend_texts(ax) == ["even (2)", "odd (2)"]  # one line per group, with its sample count
    for line, mask in zip(ax.lines, groups.values()):
        want = torch.stack([w.reshape(-1)[mask].mean() for w in weights.values()])  # the group's mean per branch
        assert list(line.get_ydata()) == pytest.approx(want.tolist(), abs=1e-6)
    plot.branch_profile(weights, tmp_path / "all.png")
    (ax,) = drawn["all.png"].axes
    assert legend_texts(ax) == ["all (4)"] and not ax.get_title()
    want = torch.stack([w.reshape(-1).mean() for w in weights.values()])
    assert list(ax.lines[0].get_ydata()) == pytest.approx(want.tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="no branch weights"):
        plot.branch_profile({}, tmp_path / "q.png")
    with pytest.raises(ValueError, match="group 'bad' has 3 entries, the weights 4 samples"):
        plot.branch_profile(weights, tmp_path / "q.png", groups={"bad": torch.ones(3, dtype=torch.bool)})


# ----------------------------------------------------------------------------------------------------
# bad arguments: named before any drawing, nothing written


def test_weight_histogram_arguments_are_checked(tmp_path, recorded):
    net, rec = recorded
    cases = [
        ({"gates": ["h->z"]}, ValueError, r"weight_histograms: no recorded gate 'h->z'; recorded gates: 'h->y'"),
        ({"gates": "h->y"}, TypeError, r"weight_histograms: gates must be a list, got 'h->y'"),  # before: KeyError 'h'
        ({"epochs": [7]}, ValueError, r"weight_histograms: epoch 7 was not recorded for the gates drawn; recorded "
                                      r"epochs: \[0, 1, 2\]"),  # before: a figure without its curve
        ({"epochs": 1}, TypeError, r"weight_histograms: epochs must be a list, got 1"),
        ({"bins": 0}, ValueError, r"weight_histograms: bins must be a positive integer, got 0"),  # before: drawn
        ({"bins": 2.5}, ValueError, r"weight_histograms: bins must be a positive integer, got 2.5"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            plot.weight_histograms(rec, tmp_path / "h.png", **kwargs)
    with pytest.raises(TypeError, match=r"weight_histograms: recorder must be a modgraph.record.EdgeRecorder, got "
                                        r"ModuleGraph"):
        plot.weight_histograms(net, tmp_path / "h.png")  # before: "'method' object is not iterable"
    with pytest.raises(ValueError, match=r"neuron_heatmaps: field must be one of 'mean', 'std', 'min', 'max', "
                                         r"'under', got 'meen'"):
        plot.neuron_heatmaps(rec, tmp_path / "h.png", field="meen")  # before: AttributeError
    with pytest.raises(TypeError, match=r"dag_figure: net must be a modgraph.ModuleGraph, got dict"):
        plot.dag_figure(net.to_dict(), None, tmp_path / "h.png")
    with pytest.raises(TypeError, match=r"dag_figure: recorder must be a modgraph.record.EdgeRecorder, got PosixPath"):
        plot.dag_figure(net, tmp_path / "h.png", rec)  # before: "'PosixPath' object has no attribute 'gates'"
    assert list(tmp_path.iterdir()) == []


def test_result_plot_arguments_are_checked(tmp_path):
    row = {"dataset": "a", "criterion": "attention", "sparsity": 0.1, "test_acc_after": 0.9}
    with pytest.raises(ValueError, match=r"sparsity_curves: row 0 has no 'acc' \(y\); its keys: 'dataset', "):
        plot.sparsity_curves([row], tmp_path / "s.png", y="acc")  # before: KeyError 'acc'
    with pytest.raises(ValueError, match=r"sparsity_curves: row 1 has no 'test_acc_after' \(y\)"):
        plot.sparsity_curves([row, {k: v for k, v in row.items() if k != "test_acc_after"}], tmp_path / "s.png")
    with pytest.raises(TypeError, match=r"sparsity_curves: rows must be a list of dicts \(one per result\), got dict"):
        plot.sparsity_curves(row, tmp_path / "s.png")
    with pytest.raises(TypeError, match=r"training_curves: runs must be a dict \{label: FitResult or its history\}, "
                                        r"got list"):
        plot.training_curves([{"step": 1, "loss": 1.0, "score": 0.5}], tmp_path / "t.png")
    with pytest.raises(ValueError, match=r"run 'a': history\[1\] has no 'score'"):  # before: KeyError 'score'
        plot.training_curves({"a": [{"step": 0, "loss": 1.0, "score": 0.5}, {"step": 1, "loss": 1.0}]},
                             tmp_path / "t.png")
    with pytest.raises(ValueError, match=r"branch_profile: every branch needs one weight per sample, got 'a': 4, "
                                         r"'b': 5"):  # before: numpy's "all input arrays must have the same shape"
        plot.branch_profile({"a": torch.rand(4), "b": torch.rand(5)}, tmp_path / "b.png")
    with pytest.raises(TypeError, match=r"branch_profile: weights must be a dict \{branch label: weights \[N\]\}, "
                                        r"got list"):
        plot.branch_profile([torch.rand(4)], tmp_path / "b.png")
    assert list(tmp_path.iterdir()) == []


def test_recording_figure_arguments_are_named_and_nothing_is_written(tmp_path, recorded):
    net, rec = recorded
    open_rec = EdgeRecorder().attach(net)
    net(torch.randn(4, 5))  # recorded, but no epoch closed
    open_rec.detach()
    other = mg.ModuleGraph(mlp_graph(5, 6, 3, None))  # the same DAG without attention
    calls = [
        (lambda p: plot.weight_histograms(rec, p, epochs=[]), ValueError, r"weight_histograms: epochs is empty"),
        (lambda p: plot.weight_histograms(rec, p, epochs=[True]), TypeError,  # before: epoch 1
         r"weight_histograms: epochs\[0\] must be an integer \(an epoch number\), got True"),
        (lambda p: plot.weight_histograms(rec, p, epochs=[1.0]), TypeError, r"epochs\[0\] must be an integer .*1\.0"),
        (lambda p: plot.weight_histograms(open_rec, p), ValueError,  # before: an empty panel
         r"weight_histograms: gate 'h->y' has no closed epoch; call epoch_end\(\)"),
        (lambda p: plot.neuron_heatmaps(rec, p, epoch=7), ValueError,  # before: a KeyError
         r"neuron_heatmaps: epoch 7 was not recorded for gate 'h->y'; recorded epochs: \[0, 1, 2\]"),
        (lambda p: plot.neuron_heatmaps(rec, p, epoch=True), TypeError,
         r"neuron_heatmaps: epoch must be an integer \(an epoch number; -1: the last\), got True"),
        (lambda p: plot.dag_figure(net, rec, p, epoch=1.5), TypeError, r"dag_figure: epoch must be an integer .*1\.5"),
        (lambda p: plot.dag_figure(net, rec, p, epoch=7), ValueError, r"dag_figure: epoch 7 was not recorded"),
        (lambda p: plot.dag_figure(net, open_rec, p), ValueError,  # before: drawn without the weights
         r"dag_figure: the recorder has no closed epoch; call epoch_end\(\)"),
        (lambda p: plot.dag_figure(other, rec, p), ValueError,  # before: drawn with another network's weights
         r"dag_figure: the recorder records the neuron gate 'h->y', which the network has not \(its gates: none\)"),
        (lambda p: plot.neuron_heatmaps(rec, 5), TypeError,
         r"path must be the image file's path \(a str or a Path\), got int 5"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call(tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []
    _png(plot.dag_figure(net, rec, tmp_path / "ok.png", epoch=np.int64(1)))


def test_result_figure_values_are_named_and_nothing_is_written(tmp_path):
    row = {"sparsity": 0.1, "test_acc_after": 0.9, "criterion": "a", "dataset": "d"}
    hist = [{"step": 1, "loss": 0.5, "score": 0.7}]
    calls = [
        (lambda p: plot.sparsity_curves([{**row, "test_acc_after": "x"}], p), ValueError,
         r"sparsity_curves: row 0: 'test_acc_after' \(y\) must be a number, got 'x'"),
        (lambda p: plot.sparsity_curves([row, {**row, "sparsity": None}], p), ValueError,
         r"sparsity_curves: row 1: 'sparsity' \(x\) must be a number, got None"),
        (lambda p: plot.sparsity_curves([{**row, "criterion": ["a"]}], p), TypeError,
         r"sparsity_curves: row 0: 'criterion' \(line\) must be a label \(a str or a number\), got list"),
        (lambda p: plot.sparsity_curves([{**row, "test_acc_before": 0.9}, row], p), ValueError,  # a KeyError before
         r"sparsity_curves: row 1 has no 'test_acc_before', but row 0 has; give it in every row"),
        (lambda p: plot.sparsity_curves([{**row, "test_acc_before": "x"}], p), ValueError,
         r"sparsity_curves: row 0: 'test_acc_before' must be a number, got 'x'"),
        (lambda p: plot.training_curves({"a": None}, p), TypeError,  # an AttributeError before
         r"training_curves: run 'a' must be a FitResult or its history list, got NoneType"),
        (lambda p: plot.training_curves({"a": [{**hist[0], "loss": "x"}]}, p), ValueError,  # drawn before
         r"run 'a': history\[0\]\['loss'\] must be a number, got 'x'"),
        (lambda p: plot.training_curves({"a": [{**hist[0], "score": True}]}, p), ValueError,
         r"run 'a': history\[0\]\['score'\] must be a number, got True"),
        (lambda p: plot.training_curves({"a": [*hist, {**hist[0], "score": [0.1, 0.2]}]}, p), ValueError,
         r"run 'a': per-member \(ensemble\) scores are not plotted"),
        (lambda p: plot.training_curves({"a": mg.train.FitResult(
            **{**_fit_result_fields(), "history": hist, "phases": [{"name": "x"}, {"name": "y"}]})}, p), ValueError,
         r"run 'a': phases\[0\] has no 'trains', 'attention', 'start', 'end'"),
        (lambda p: plot.branch_profile({"a": torch.rand(4, 2), "b": torch.rand(8)}, p), ValueError,  # flattened before
         r"branch_profile: weights\['a'\] must be weights \[N\], got shape \(4, 2\); pick one head"),
        (lambda p: plot.branch_profile({"a": ["x", "y"]}, p), ValueError,
         r"branch_profile: weights\['a'\] must be weights \[N\] of numbers, got <U1 values"),
        (lambda p: plot.branch_profile({"a": []}, p), ValueError, r"branch_profile: the weights hold no samples"),
        (lambda p: plot.branch_profile({"a": [0.1, 0.2]}, p, groups=[[True, False]]), TypeError,
         r"branch_profile: groups must be a dict \{group label: bool mask \[N\]\} \(or None\), got list"),
        (lambda p: plot.branch_profile({"a": [0.1, 0.2, 0.3]}, p, groups={"g": [0, 2, 2]}), ValueError,  # a mask before
         r"branch_profile: groups\['g'\] must be a bool mask \[N\], got int64 values"),
        (lambda p: plot.branch_profile({"a": [0.1, 0.2]}, p, groups={"g": [False, False]}), ValueError,
         r"branch_profile: no group holds a sample"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call(tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []
    w = torch.rand(4, 1, requires_grad=True)  # [N, 1] (one head) and a tensor that requires grad are taken
    _png(plot.branch_profile({"a": w, "b": torch.rand(4)}, tmp_path / "ok.png",
                             groups={"g": torch.tensor([True, False, True, True])}))


def _fit_result_fields() -> dict:
    import dataclasses

    return {f.name: None for f in dataclasses.fields(mg.train.FitResult)}
