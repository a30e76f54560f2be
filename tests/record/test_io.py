"""Tidy rows, CSV and JSON files of recorded statistics, and reading them back."""

import json

import pytest
import torch

import modgraph as mg
from modgraph.record import COLUMNS, EdgeRecorder

from ..helpers import default_dtype
from .test_recorder import branch_net


def recorded():
    torch.manual_seed(0)
    net = branch_net(heads=2)
    g = net.graph.copy()
    g.add_node("h", op="linear", out_features=3, activation="sigmoid")
    g.add_node("z", op="linear", out_features=2)
    g.add_edge("m", "h")
    g.add_edge("h", "z", attention="sigmoid")
    net = mg.ModuleGraph(g)
    gate = mg.Gate("softmax", level="graph", name="conv")
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 2]])
    rec = EdgeRecorder(threshold=0.3).attach(gates=net.gates() + [gate])
    for _ in range(2):
        net(torch.randn(8, 4))
        gate(torch.randn(4, 2), index=edge_index[1], num_segments=3, edge_index=edge_index)
        rec.epoch_end()
    return rec


def test_rows_are_tidy_one_per_entry_head_and_epoch():
    rec = recorded()
    rows = rec.to_rows()
    per_epoch = 3 * 2 + 3 * 2 + 4 * 2  # branch [3 edges, 2 heads], neuron [3, 2], graph [4 edges, 2 heads]
    assert len(rows) == 2 * per_epoch
    assert all(tuple(r) == COLUMNS for r in rows)
    neuron = [r for r in rows if r["level"] == "neuron" and r["epoch"] == 1]
    stats = rec.stats("h->z", epoch=1)
    for r in neuron:
        assert (r["source"], r["target"]) == ("h", "z")
        assert r["mean"] == pytest.approx(stats.mean[r["source_index"], r["target_index"]].item())
    graph = [r for r in rows if r["level"] == "graph" and r["epoch"] == 0 and r["head"] == 0]
    assert [(r["source_index"], r["target_index"]) for r in graph] == [(0, 1), (1, 0), (1, 2), (2, 2)]
    branch = {(r["source"], r["head"]) for r in rows if r["level"] == "branch"}
    assert branch == {(b, h) for b in "abc" for h in (0, 1)}
    assert len(rec.to_rows(epochs=[1])) == per_epoch


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_files_round_trip(tmp_path, suffix):
    rec = recorded()
    path = getattr(rec, f"to_{suffix}")(tmp_path / f"rec.{suffix}")
    back = EdgeRecorder.load(path)
    assert back.epochs == rec.epochs and list(back.gates) == list(rec.gates)
    for key, info in rec.gates.items():
        other = back.gates[key]
        assert other.level == info.level and other.shape == info.shape and other.edges == info.edges
        if info.edge_index is not None:
            assert torch.equal(other.edge_index, info.edge_index)
        for epoch in rec.epochs:
            a, b = rec.stats(key, epoch), back.stats(key, epoch)
            assert a.count == b.count
            for name in ("mean", "std", "min", "max", "under"):
                torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-7, rtol=1e-6)
    for a, b in zip(back.to_rows(), rec.to_rows()):
        assert {k: a[k] for k in COLUMNS[:9]} == {k: b[k] for k in COLUMNS[:9]}
    assert [p.name for p in tmp_path.iterdir()] == [f"rec.{suffix}"]


def test_loading_keeps_float32_whatever_the_default_dtype(tmp_path):
    rec = recorded()
    path = rec.to_csv(tmp_path / "rec.csv")
    with default_dtype(torch.float64):
        back = EdgeRecorder.load(path)
    a, b = rec.stats("h->z"), back.stats("h->z")
    assert b.mean.dtype == torch.float32
    torch.testing.assert_close(a.mean, b.mean, atol=1e-7, rtol=1e-6)  # dtype-checked: both float32


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,level\n0,neuron\n")
    with pytest.raises(mg.DataError, match=r"bad.csv: not a recording file: missing column\(s\) gate"):
        EdgeRecorder.load(bad)
    rec = recorded()
    path = rec.to_csv(tmp_path / "r.csv")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("neuron", "nevron") if "neuron" in lines[3] else lines[3].replace(",0,", ",x,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(mg.DataError, match=r"r.csv, line 4: "):
        EdgeRecorder.load(path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(mg.DataError, match="other.json: not a recording file"):
        EdgeRecorder.load(other)
    with pytest.raises(mg.DataError, match="no such recording file"):
        EdgeRecorder.load(tmp_path / "none.csv")
    with pytest.raises(mg.DataError, match="unknown recording file type '.txt'"):
        (tmp_path / "x.txt").write_text("")
        EdgeRecorder.load(tmp_path / "x.txt")


def _damage(tmp_path, name, edit):
    """Write ``recorded()`` to ``name`` (CSV), let ``edit(lines)`` change its lines (header at index 0), return it."""
    path = recorded().to_csv(tmp_path / name)
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows_of(lines, level):
    return [i for i, line in enumerate(lines) if f",{level}," in line]


def _set(lines, i, column, value):
    fields = lines[i].split(",")
    fields[COLUMNS.index(column)] = value
    lines[i] = ",".join(fields)


def test_a_duplicated_row_hiding_a_missing_one_is_named(tmp_path):
    """Before: the row count matched, so the missing connection's statistics were silently NaN."""
    def dup(lines):
        first, second = _rows_of(lines, "neuron")[:2]
        lines[second] = lines[first]  # the row of h[0] -> z[0] twice, the one of h[0] -> z[1] gone

    path = _damage(tmp_path, "dup.csv", dup)
    with pytest.raises(mg.DataError, match=r"dup\.csv, line 9: gate 'h->z', epoch 0: connection h\[0\] -> z\[0\] "
                                           r"\(source_index 0, target_index 0\) again \(first at line 8\)"):
        EdgeRecorder.load(path)


def test_a_missing_row_is_named(tmp_path):
    def missing(lines):
        del lines[_rows_of(lines, "neuron")[2]]  # h[1] -> z[0], on line 10

    path = _damage(tmp_path, "missing.csv", missing)
    with pytest.raises(mg.DataError, match=r"missing\.csv: gate 'h->z', epoch 0: no row for connection h\[1\] -> "
                                           r"z\[0\] \(source_index 1, target_index 0\); expected after line 9"):
        EdgeRecorder.load(path)


def test_duplicated_branch_and_graph_rows_are_named(tmp_path):
    def branch(lines):
        rows = _rows_of(lines, "branch")
        lines[rows[3]] = lines[rows[1]]

    with pytest.raises(mg.DataError, match=r"b\.csv, line 5: gate 'm', epoch 0: edge 'a' -> 'm', head 1 again "
                                           r"\(first at line 3\)"):
        EdgeRecorder.load(_damage(tmp_path, "b.csv", branch))

    def graph(lines):
        rows = _rows_of(lines, "graph")
        lines[rows[3]] = lines[rows[2]]  # edge 1 -> 0: head 0 twice, head 1 gone

    with pytest.raises(mg.DataError, match=r"g\.csv, line \d+: gate 'conv', epoch 0: expected edge 1 -> 0 \(column 1 "
                                           r"of edge_index\), head 1 here .* got edge 1 -> 0, head 0"):
        EdgeRecorder.load(_damage(tmp_path, "g.csv", graph))


@pytest.mark.parametrize("level, column, value, pattern", [
    ("neuron", "source_index", "", r"source_index is empty; a neuron row needs it \(the input unit\)"),
    ("neuron", "target_index", "", r"target_index is empty; a neuron row needs it \(the output unit\)"),
    ("graph", "target_index", "", r"target_index is empty; a graph row needs it \(the edge's target node\)"),
    ("neuron", "source_index", "-1", r"source_index must be a non-negative integer, got -1"),
    ("branch", "head", "-2", r"head must be a non-negative integer, got -2"),
    ("neuron", "threshold", "5", r"threshold must be a number in \[0, 1\] \(the recorder's\), got '5'"),
    ("neuron", "threshold", "nan", r"threshold must be a number in \[0, 1\]"),
    ("neuron", "threshold", "0.5", r"threshold 0\.5 differs from the first row's 0\.3"),
])  # fmt: skip
def test_a_bad_field_names_the_file_and_line(tmp_path, level, column, value, pattern):
    lines_seen = {}

    def edit(lines):
        i = _rows_of(lines, level)[0]
        lines_seen["line"] = i + 1
        _set(lines, i, column, value)

    path = _damage(tmp_path, "bad.csv", edit)
    with pytest.raises(mg.DataError, match=rf"bad\.csv, line {lines_seen['line']}: {pattern}"):
        EdgeRecorder.load(path)


def test_json_rows_are_named_by_position(tmp_path):
    path = recorded().to_json(tmp_path / "r.json")
    blob = json.loads(path.read_text())
    blob["rows"][7]["source_index"] = None  # the second neuron row
    assert blob["rows"][7]["level"] == "neuron"
    path.write_text(json.dumps(blob))
    with pytest.raises(mg.DataError, match=r"r\.json, row 7: source_index is empty"):
        EdgeRecorder.load(path)


def test_line_numbers_count_blank_lines(tmp_path):
    def edit(lines):
        i = _rows_of(lines, "neuron")[0]
        _set(lines, i, "level", "nevron")
        lines.insert(1, "")

    with pytest.raises(mg.DataError, match=r"blank\.csv, line 9: level must be"):
        EdgeRecorder.load(_damage(tmp_path, "blank.csv", edit))


def _graph_recording(threshold=0.3, edge_index=None, scores=None, epochs=2):
    """A recorder of one graph gate ``conv`` (2 heads) over ``epochs`` epochs of two forwards each."""
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 2]]) if edge_index is None else edge_index
    gate = mg.Gate("softmax", level="graph", name="conv")
    rec = EdgeRecorder(threshold=threshold).attach(gates=[gate])
    torch.manual_seed(12)
    for _ in range(epochs):
        for _ in range(2):
            s = torch.randn(edge_index.shape[1], 2) if scores is None else scores
            gate(s, index=edge_index[1], num_segments=3, edge_index=edge_index)
        rec.epoch_end()
    return rec


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_nan_statistics_are_written_empty_and_read_back_as_nan(tmp_path, suffix):
    # NaN scores (a diverged network) give NaN weights: the rows hold None, the JSON file stays strict JSON (no NaN
    # token), the CSV cell is empty, and reading gives NaN back (not 0)
    scores = torch.randn(4, 2)
    scores[0, 0] = float("nan")  # edge 0 -> 1 is the only edge into node 1: its head-0 weight is NaN
    rec = _graph_recording(scores=scores, epochs=1)
    stats = rec.stats("conv")
    assert torch.isnan(stats.mean[0, 0]) and not torch.isnan(stats.mean[1:]).any()
    rows = rec.to_rows()
    assert all(rows[0][k] is None for k in ("mean", "std", "min", "max"))
    path = getattr(rec, f"to_{suffix}")(tmp_path / f"nan.{suffix}")
    if suffix == "json":
        def refuse(token):
            raise AssertionError(f"non-standard JSON token {token}")
        json.loads(path.read_text(), parse_constant=refuse)
    back = EdgeRecorder.load(path).stats("conv")
    for name in ("mean", "std", "min", "max"):
        torch.testing.assert_close(getattr(back, name), getattr(stats, name), equal_nan=True, atol=1e-7, rtol=1e-6)


def test_a_short_csv_row_names_its_line_and_field_count(tmp_path):
    def edit(lines):
        lines[4] = lines[4].rsplit(",", 1)[0]  # the threshold field gone

    with pytest.raises(mg.DataError, match=rf"short\.csv, line 5: expected {len(COLUMNS)} fields \(as in the "
                                           rf"header\), got {len(COLUMNS) - 1}"):
        EdgeRecorder.load(_damage(tmp_path, "short.csv", edit))


def test_a_negative_count_is_named(tmp_path):
    def edit(lines):
        _set(lines, 2, "count", "-3")

    with pytest.raises(mg.DataError, match=r"neg\.csv, line 3: count must be a non-negative integer, got -3"):
        EdgeRecorder.load(_damage(tmp_path, "neg.csv", edit))


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_extreme_thresholds_a_recorder_takes_are_read_back(tmp_path, threshold):
    rec = _graph_recording(threshold=threshold)
    back = EdgeRecorder.load(rec.to_csv(tmp_path / "t.csv"))
    assert back.threshold == threshold
    torch.testing.assert_close(back.stats("conv", 1).under, rec.stats("conv", 1).under)


def test_a_gate_whose_rows_disagree_on_the_level_is_named(tmp_path):
    def edit(lines):
        _set(lines, _rows_of(lines, "neuron")[1], "level", "graph")  # both indices present: the row itself is valid

    with pytest.raises(mg.DataError, match=r"lvl\.csv, line 9: gate 'h->z' is a neuron gate \(first row\), but this "
                                           r"row says graph"):
        EdgeRecorder.load(_damage(tmp_path, "lvl.csv", edit))


def test_a_branch_row_of_an_unknown_edge_in_a_later_epoch_is_named(tmp_path):
    # epoch 1 names edge 'd' -> 'm', which the gate's first epoch does not have: refused, not put in another's place
    def edit(lines):
        i = [i for i in _rows_of(lines, "branch") if lines[i].startswith("1,")][0]
        assert _field(lines[i], "source") == "a" and _field(lines[i], "head") == "0"
        _set(lines, i, "source", "d")

    with pytest.raises(mg.DataError, match=r"unk\.csv, line \d+: gate 'm', epoch 1: row .* does not fit shape "
                                           r"\(3, 2\)"):
        EdgeRecorder.load(_damage(tmp_path, "unk.csv", edit))


def _field(line, column):
    return line.split(",")[COLUMNS.index(column)]


def test_epochs_out_of_order_in_a_file_are_read_back_in_order(tmp_path):
    rec = _graph_recording()
    rows = rec.to_rows()
    later_first = [r for r in rows if r["epoch"] == 1] + [r for r in rows if r["epoch"] == 0]
    path = tmp_path / "order.json"
    path.write_text(json.dumps({"format": "modgraph-record/1", "rows": later_first}))
    back = EdgeRecorder.load(path)
    assert back.epochs == [0, 1] == rec.epochs
    torch.testing.assert_close(back.stats("conv", 0).mean, rec.stats("conv", 0).mean)


def test_a_multigraph_edge_index_round_trips(tmp_path):
    # the same edge twice (columns 1 and 3): both columns come back, each with its own statistics
    edge_index = torch.tensor([[0, 1, 1, 1, 2], [1, 0, 2, 0, 2]])
    rec = _graph_recording(edge_index=edge_index)
    back = EdgeRecorder.load(rec.to_csv(tmp_path / "multi.csv"))
    assert torch.equal(back.gates["conv"].edge_index, edge_index)
    torch.testing.assert_close(back.stats("conv", 1).mean, rec.stats("conv", 1).mean)


def test_a_json_row_without_a_column_is_named(tmp_path):
    path = recorded().to_json(tmp_path / "r.json")
    blob = json.loads(path.read_text())
    del blob["rows"][3]["count"]
    path.write_text(json.dumps(blob))
    with pytest.raises(mg.DataError, match=r"r\.json, row 3: expected the columns epoch, level"):
        EdgeRecorder.load(path)


def test_rows_of_one_gate_and_epoch_that_disagree_on_the_count_are_named(tmp_path):
    # every entry of a gate saw every sample of the epoch: a hand-edited count was taken from the first row silently
    def edit(lines):
        _set(lines, _rows_of(lines, "neuron")[1], "count", "999")

    with pytest.raises(mg.DataError, match=r"cnt\.csv, line 9: .*count 999 for .*, but \d+ at line \d+; a gate's rows "
                                           r"of one epoch share one count"):
        EdgeRecorder.load(_damage(tmp_path, "cnt.csv", edit))


def test_epochs_to_write_must_be_recorded_ones(tmp_path):
    rec = recorded()  # epochs 0 and 1
    with pytest.raises(TypeError, match=r"^epochs must be a list of epoch numbers \(or None: all\), got 1$"):
        rec.to_rows(1)
    with pytest.raises(ValueError, match=r"^epochs: 5 is not a recorded epoch; recorded epochs: \[0, 1\]$"):
        rec.to_csv(tmp_path / "r.csv", epochs=[5])  # a header-only file before, which load() refuses
    assert not (tmp_path / "r.csv").exists()


def test_only_files_that_load_reads_back_are_written(tmp_path):
    rec = recorded()
    with pytest.raises(ValueError, match=r"^to_json: .*r\.csv: the name must end in \.json \(load\(\) tells the format "
                                         r"by the suffix\); use to_csv for a \.csv file$"):
        rec.to_json(tmp_path / "r.csv")  # JSON in a .csv file, which load() then read as CSV
    with pytest.raises(ValueError, match=r"^to_csv: .*weights: the name must end in \.csv"):
        rec.to_csv(tmp_path / "weights")
    with pytest.raises(ValueError, match=r"^to_csv: .*e\.csv: nothing to write: no closed epoch has statistics"):
        EdgeRecorder().to_csv(tmp_path / "e.csv")
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(IsADirectoryError, match=r"Is a directory \(give a file name\): '.*out\.csv'$"):
        rec.to_csv(tmp_path / "out.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize("column, value, message", [
    ("epoch", 1.5, r"epoch must be an integer, got 1\.5"),  # truncated to 1 before
    ("count", True, r"count must be an integer, got True"),
    ("gate", ["h", "z"], r"gate must be a string \(a node name or gate key\), got \['h', 'z'\]"),  # unhashable
    ("std", -1.0, r"std must be a finite number >= 0 \(or empty\), got -1\.0"),
    ("under", 3, r"under must be a fraction in \[0, 1\] \(or empty\), got 3"),
    ("mean", "Infinity", r"mean must be a finite number \(or empty\), got 'Infinity'"),
    ("mean", 7.0, r"mean 7\.0 must lie within \[min, max\] = \[.*\]"),  # accepted before
    ("min", 2.0, r"mean .* must lie within \[min, max\] = \[2\.0, .*\]"),  # min above max
])
def test_damaged_values_in_a_json_recording_are_named(tmp_path, column, value, message):
    path = recorded().to_json(tmp_path / "r.json")
    blob = json.loads(path.read_text())
    for row in blob["rows"]:
        row[column] = value
    path.write_text(json.dumps(blob))
    with pytest.raises(mg.DataError, match=rf"r\.json, row 0: {message}$"):
        EdgeRecorder.load(path)


@pytest.mark.parametrize("column, value, message", [
    ("mean", "abc", r"mean must be a number \(or empty\), got 'abc'"),  # before: "could not convert string to float"
    ("std", [0.1], r"std must be a number \(or empty\), got \[0\.1\]"),
    ("under", True, r"under must be a number \(or empty\), got True"),  # before: read as 1.0
    ("epoch", -3, r"epoch must be a non-negative integer, got -3"),  # before: blamed a row of another epoch
    ("count", 0, r"count must be a positive integer \(the samples summarised\), got 0"),  # before: read
])
def test_damaged_numbers_in_a_json_recording_name_their_column(tmp_path, column, value, message):
    path = recorded().to_json(tmp_path / "r.json")
    blob = json.loads(path.read_text())
    blob["rows"][0][column] = value
    path.write_text(json.dumps(blob))
    with pytest.raises(mg.DataError, match=rf"r\.json, row 0: {message}$"):
        EdgeRecorder.load(path)


def test_a_path_that_is_not_one_is_named_and_nothing_is_written(tmp_path, monkeypatch):
    rec = recorded()
    monkeypatch.chdir(tmp_path)
    for call, name in ((rec.to_csv, "to_csv"), (rec.to_json, "to_json")):
        for path in (5, None):
            with pytest.raises(TypeError, match=rf"^{name}: path must be a file path \(a str or a Path\), got "):
                call(path)
    with pytest.raises(TypeError, match=r"^EdgeRecorder.load: path must be a recording file's path \(a str or a "
                                        r"Path\), got int 5$"):
        EdgeRecorder.load(5)
    with pytest.raises(TypeError, match=r"^read_rows: path must be a recording file's path .*got NoneType None$"):
        mg.record.read_rows(None)
    assert list(tmp_path.iterdir()) == []
    assert len(mg.record.read_rows(rec.to_csv("r.csv"))) == len(rec.to_rows())
