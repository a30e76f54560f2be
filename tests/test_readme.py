"""The README's example runs and prints what the README says; .ci/run runs the README's commands."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme():
    code = _blocks("python")[0]
    expected = re.search(r"prints\n```\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == expected


def test_ci_runs_the_readme_commands():
    setup, _main_job, tests = [b.strip() for b in _blocks("bash")[:3]]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup in ci and tests in ci


def _row(label):
    """The cells of the README table row that starts with ``label``."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip().strip("|").split("|")][1:]
    raise AssertionError(f"no README row {label!r}")


def test_results_table_numbers_come_from_the_docs():
    """Each headline number is printed in the page it cites (cora.md, uci.md), or recomputed from the committed
    per-seed results (the pruning rows)."""
    import json

    import numpy as np

    cora, uci = (ROOT / "docs" / "cora.md").read_text(), (ROOT / "docs" / "uci.md").read_text()
    for label in ("hop attention (default): depths merged per node by the gate",
                  "the same DAG without attention (depths summed)",
                  "edge attention GCN: GCN's edges re-weighted by 8-head attention", "GCN (PyG `GCNConv`, same DAG)",
                  "GAT (paper; the target)"):
        for cell in _row(label)[:2]:
            assert cell.strip("*") in cora, (label, cell)
    table = {(r["dataset"], r["method"]): r
             for r in json.loads((ROOT / "docs" / "results" / "uci.json").read_text())["results"]}
    for label, method in (("attention MLP", "attention"), ("weight decay (WDBP)", "wd")):
        for name, cell in zip(("balance", "ecoli", "glass", "liver", "sonar", "vehicle"), _row(label)):
            r = table[(name, method)]  # the default table (docs/uci.md prints it from this file)
            assert cell == f"{100 * r['test_acc_mean']:.1f} ± {100 * r['test_acc_std']:.1f}", (name, cell)
            assert f"**{r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f}**" in uci, (name, cell)

    def pm(values):
        return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"

    def cells(path, sparsity, datasets):
        rows = json.loads((ROOT / "docs" / "results" / path).read_text())["results"]
        out = []
        for d in datasets:
            mine = [r for r in rows
                    if r["dataset"] == d and r["criterion"] == "attention" and r["sparsity"] == sparsity]
            assert len(mine) == 5
            out.append((pm([r["test_acc_before"] for r in mine]), pm([r["test_acc_after"] for r in mine])))
        return out

    uci_cells = cells("prune_uci.json", 0.5, ("balance", "ecoli", "glass", "liver", "sonar", "vehicle"))
    assert _row("attention MLP, unpruned (pruning splits)") == [before for before, _ in uci_cells]
    assert _row("half of the hidden units pruned by attention") == [after for _, after in uci_cells]
    graph = cells("prune_cora.json", 0.3, ("cora",)) + cells("prune_citeseer.json", 0.3, ("citeseer",))
    row = _row("edge attention GCN, 30 % of the edges pruned by attention, fine-tuned")
    assert row[:2] == [f"{after} (unpruned {before})" for before, after in graph]
