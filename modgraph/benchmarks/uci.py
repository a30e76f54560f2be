"""The paper's UCI comparison (Zhang 2020, Tables 1-2) under a stated cross-validation protocol, batched.

For one data set and one method, every run (repetition seed x outer fold) and every hyper-parameter candidate is a
member of one :class:`~modgraph.train.Ensemble`: ``K = seeds * folds * candidates`` networks of one shape, trained
as one tensor program by :func:`~modgraph.train.fit` with per-member selection on the inner validation split.

Protocol (per run): stratified outer folds; the training fold split again (stratified) into a part the network is
fitted on and an inner validation part; standardisation fitted on the fitted part only; full-batch Adam; every
``eval_every`` steps the validation score (accuracy, ties broken by validation cross-entropy) selects the member's
best parameters, and a phase of the schedule ends when no member improved for ``patience`` evaluations (or at the
Table 1 budget). The candidate with the best validation score is the run's model; its test-fold accuracy is
measured once, at the end.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import checks
from ..data.uci import UCIDataset
from ..errors import DataError
from ..merge import prefer_fused_neuron_attention
from ..module_graph import ModuleGraph
from ..protocols.cv import Split, cv_splits, fit_standardizer, min_samples, standardize
from ..train import SCHEDULES, Ensemble, MemberAdam, RunDir, Trainer, flush_denormal, resume_or_start, stack_padded
from .methods import METHODS, Method, get_method, mlp_graph, penalty

log = logging.getLogger(__name__)

#: Table 1 of the paper: hidden width and maximum iterations per data set.
TABLE1: dict[str, dict] = {
    "balance": {"hidden": 18, "steps": 15_000, "paper_structure": "5-18-3"},
    "ecoli": {"hidden": 20, "steps": 30_000, "paper_structure": "8-20-3"},
    "glass": {"hidden": 22, "steps": 40_000, "paper_structure": "11-22-3"},
    "liver": {"hidden": 22, "steps": 20_000, "paper_structure": "7-22-2"},
    "sonar": {"hidden": 20, "steps": 15_000, "paper_structure": "61-20-2"},
    "vehicle": {"hidden": 30, "steps": 40_000, "paper_structure": "19-30-2"},
}
DEFAULT_HIDDEN, DEFAULT_STEPS = 20, 20_000  # for a table that is not in Table 1 (--csv)

#: Table 2 of the paper as printed: (train time s, train accuracy, test accuracy).
PAPER_TABLE2: dict[str, dict[str, tuple[float, float, float]]] = {
    "balance": {"WDBP": (6.5427, 0.9672, 0.8982), "WEBP": (6.6281, 0.9936, 0.8973),
                "SGLBP": (8.7084, 0.9947, 0.9105), "attention": (19.6942, 0.9960, 0.9840)},
    "ecoli": {"WDBP": (5.3816, 0.7905, 0.6987), "WEBP": (6.0351, 0.9560, 0.7431),
              "SGLBP": (10.3357, 0.9705, 0.7762), "attention": (21.5593, 0.7915, 0.7624)},
    "glass": {"WDBP": (5.2858, 0.9512, 0.8536), "WEBP": (5.3178, 0.9889, 0.8983),
              "SGLBP": (8.2597, 1.0000, 0.9066), "attention": (18.5901, 0.9879, 0.8991)},
    "liver": {"WDBP": (6.9557, 0.5921, 0.5043), "WEBP": (7.0242, 0.8926, 0.6220),
              "SGLBP": (10.1812, 0.9370, 0.6384), "attention": (17.7054, 0.7593, 0.7404)},
    "sonar": {"WDBP": (3.4266, 0.9661, 0.7758), "WEBP": (3.5651, 0.9840, 0.7606),
              "SGLBP": (5.2736, 0.9998, 0.7829), "attention": (11.0455, 1.0000, 0.8080)},
    "vehicle": {"WDBP": (11.6339, 0.7774, 0.6576), "WEBP": (11.8169, 0.9790, 0.7325),
                "SGLBP": (14.8487, 0.9753, 0.7383), "attention": (26.8379, 0.7652, 0.7677)},
}  # fmt: skip


@dataclass
class Protocol:
    """How every method is trained and evaluated (the same for all of them)."""

    folds: int = 10  # outer stratified folds per repetition
    seeds: tuple[int, ...] = (0,)  # one repetition (fold assignment + initialisation) per seed
    val_fraction: float = 0.2  # inner validation share of each training fold
    schedule: str = "alternating"  # schedule of the attention methods; the others have no attention: "joint"
    steps: int | None = None  # step budget per run; None: budget_scale x Table 1's (DEFAULT_STEPS for other tables)
    budget_scale: float = 1.0  # share of Table 1's iterations used when steps is None (1: Table 1's own)
    patience: int | None = 10  # evaluations without any member improving that end a phase (None: never)
    eval_every: int = 25  # steps between validation evaluations
    lr: float = 0.03  # Adam's learning rate where the learning rate is not the tuned knob
    rounds: int = 2  # at most this many (attention, main) rounds of the alternating schedule
    tol: float = 1e-3  # a network's alternation stops when a round changes its validation accuracy less than this

    def __post_init__(self):  # every setting checked in turn, kept as plain Python data (to_dict gives JSON)
        if isinstance(self.seeds, (str, bytes)) or not hasattr(self.seeds, "__iter__"):
            raise TypeError(f"Protocol: seeds must be a list of seeds, one repetition each (e.g. range(3) for 3), "
                            f"got {self.seeds!r}")
        self.seeds = tuple(self.seeds)
        self.folds = checks.integer("Protocol: folds", self.folds, least=2)
        if not self.seeds or not all(checks.is_integer(s) and s >= 0 for s in self.seeds):
            raise ValueError(f"Protocol: seeds must be one or more non-negative integers, got {self.seeds!r}")
        self.seeds = tuple(int(s) for s in self.seeds)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"Protocol: seeds must be distinct (a seed twice repeats the same runs), got "
                             f"{self.seeds!r}")
        self.val_fraction = checks.number("Protocol: val_fraction", self.val_fraction, low=0, high=1, low_open=True,
                                          high_open=True)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Protocol: schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        self.steps = checks.positive_int("Protocol: steps", self.steps, optional=True, why="Table 1's budget")
        self.budget_scale = checks.number("Protocol: budget_scale", self.budget_scale, low=0, low_open=True)
        self.patience = checks.positive_int("Protocol: patience", self.patience, optional=True)
        self.eval_every = checks.positive_int("Protocol: eval_every", self.eval_every)
        self.lr = checks.number("Protocol: lr", self.lr, low=0, low_open=True)
        self.rounds = checks.positive_int("Protocol: rounds", self.rounds)
        self.tol = checks.number("Protocol: tol", self.tol, low=0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


@dataclass
class MethodResult:
    """One data set x method: the summary row and one record per run (seed x fold)."""

    row: dict
    runs: list = field(default_factory=list)
    phases: list = field(default_factory=list)


def budget(name: str, protocol: Protocol) -> tuple[int, int]:
    """``(hidden, steps)`` for data set ``name``: Table 1's hidden width and ``budget_scale`` x its iterations (the
    defaults for other tables); ``protocol.steps`` overrides the steps."""
    cfg = TABLE1.get(name, {"hidden": DEFAULT_HIDDEN, "steps": DEFAULT_STEPS})
    steps = protocol.steps if protocol.steps is not None else max(1, round(cfg["steps"] * protocol.budget_scale))
    return cfg["hidden"], steps


def _describe(data: UCIDataset) -> str:
    files = data.source_files
    return f"data set {data.name!r}" + (f" ({files[0]})" if len(files) == 1 else "")


def check_data(data: UCIDataset, protocol: Protocol) -> None:
    """Raise :class:`~modgraph.errors.DataError` naming the data set (and its file) if ``protocol`` cannot run on
    ``data``: no feature, a single class, or too few rows for the protocol's folds and validation share (the rows,
    the class counts and the minimum). :func:`run_benchmark` checks every data set before it trains any."""
    what = _describe(data)
    if data.num_features < 1:
        raise DataError(f"{what}: no feature columns; a classifier needs at least one")
    present = [name for name, count in data.class_counts().items() if count]
    if len(present) < 2:
        raise DataError(f"{what}: a single class ({', '.join(present) or 'none'}); classification needs two")
    need = min_samples(protocol.folds, protocol.val_fraction)
    if data.num_samples < need:
        counts = ", ".join(f"{name}: {count}" for name, count in data.class_counts().items())
        n = data.num_samples  # the fold counts that fit n rows are a range up to n (more folds: larger training)
        fits = [f for f in range(2, n + 1) if min_samples(f, protocol.val_fraction) <= n]
        hint = "" if not fits else f"; {fits[0]} folds would fit these rows" if fits[0] == n else \
            f"; {fits[0]} to {n} folds would fit these rows"
        raise DataError(
            f"{what} has {data.num_samples} rows ({counts}); {protocol.folds}-fold cross-validation with a "
            f"validation share of {protocol.val_fraction} needs at least {need} rows (every training fold must "
            f"split into a fitted and a validation part){hint}"
        )


def _init_seed(split: Split) -> int:
    return 1_000_003 * split.seed + split.fold


def build_members(data: UCIDataset, splits: Sequence[Split], method: Method, hidden: int) -> list[ModuleGraph]:
    """One network per run, initialised from the run's seed (so every method starts a run from the same main
    weights: the allocator's parameters are drawn after them), repeated once per candidate."""
    members = []
    for split in splits:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_init_seed(split))
            net = ModuleGraph(mlp_graph(data.num_features, hidden, data.num_classes, method.attention))
        members += [net] * len(method.grid)
    return members


def member_tensors(data: UCIDataset, splits: Sequence[Split], repeat: int, device) -> dict:
    """Standardised, padded per-run data ``[K, N, d]`` with labels ``[K, N]`` and masks, runs repeated per candidate."""
    parts: dict = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for s in splits:
        mean, std = fit_standardizer(data.X[s.train])  # the fitted part only
        for part in parts:
            idx = getattr(s, part)
            parts[part][0].append(standardize(data.X[idx], mean, std))
            parts[part][1].append(data.y[idx])
    out = {}
    for part, (xs, ys) in parts.items():
        x, mask = stack_padded(xs, device=device)
        y, _ = stack_padded(ys, device=device)
        out[part] = tuple(t.repeat_interleave(repeat, dim=0) for t in (x, y, mask))
    return out


def _per_member(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, accuracy: bool = True):
    """Mean cross-entropy (and accuracy) of every member on its own padded samples.

    Shapes: logits ``[K, N, C]``, y and mask ``[K, N]`` -> ``[K]`` (and ``[K]``).
    """
    count = mask.sum(1).clamp(min=1)
    ce = (F.cross_entropy(logits.transpose(1, 2), y, reduction="none") * mask).sum(1) / count  # (K,)
    if not accuracy:
        return ce
    correct = (logits.argmax(-1) == y) & mask  # (K, N)
    return ce, correct.sum(1) / count


def validation_score(ce: torch.Tensor, acc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Accuracy, ties broken by cross-entropy: ``acc - min(ce, 4) / (8 n)`` never reorders different accuracies
    (they differ by at least ``1/n``), and among equal accuracies prefers the lower loss."""
    return acc - ce.clamp(max=4.0) / (8.0 * count)


@dataclass
class Program:
    """One data set x method as one batched program: the ensemble, its data and the closures ``fit`` needs."""

    data: UCIDataset
    method: Method
    splits: list
    ensemble: Ensemble
    tensors: dict  # part -> (x [K, N, d], y [K, N], mask [K, N]) for "train", "val", "test"
    loss_fn: Callable
    evaluate: Callable
    optimizer: Callable
    schedule: str
    steps: int
    hidden: int

    @property
    def candidates(self) -> int:
        return len(self.method.grid)

    def fit(self, protocol: Protocol, progress: bool = False, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 200, **overrides):
        """``modgraph.train.fit`` with the protocol's settings (``overrides`` replace any of them), denormal floats
        flushed to zero (:mod:`modgraph.train.denormal`: saturated attention gates would otherwise slow it 3-4x) and
        the fused neuron-attention kernel (:func:`modgraph.merge.prefer_fused_neuron_attention`).

        ``checkpoint``: a file the training saves itself to every ``checkpoint_every`` steps, and continues from
        when it exists (:func:`modgraph.train.resume_or_start`); the result is the uninterrupted training's.
        """
        kwargs = dict(schedule=self.schedule, steps=self.steps, optimizer=self.optimizer, patience=protocol.patience,
                      eval_every=protocol.eval_every, rounds=protocol.rounds, tol=protocol.tol, progress=progress)
        kwargs.update(overrides)
        callback = kwargs.pop("callback", None)
        trainer = Trainer(self.ensemble, self.loss_fn, self.evaluate, **kwargs)
        saver = None if checkpoint is None else resume_or_start(trainer, checkpoint, checkpoint_every)

        def after_step(t):
            if saver is not None:
                saver(t)
            if callback is not None:
                callback(t)

        with flush_denormal(), prefer_fused_neuron_attention():
            return trainer.run(after_step if saver is not None or callback is not None else None)

    @torch.no_grad()
    def accuracies(self) -> dict:
        """``{part: [K] accuracy}`` of every member on its own train, val and test data (eval mode)."""
        self.ensemble.eval()
        return {part: _per_member(self.ensemble(x), y, mask)[1] for part, (x, y, mask) in self.tensors.items()}


def build_program(data: UCIDataset, method: str | Method, protocol: Protocol | None = None,
                  device: str | torch.device = "cpu") -> Program:
    """The ensemble of ``seeds x folds x candidates`` networks for ``method`` on ``data``, with its loss (the sum of
    the members' losses: mean cross-entropy on their fitted part plus their ``lam`` times the method's penalty) and
    its validation score (:func:`validation_score` per member)."""
    protocol = _protocol(protocol)
    _check_dataset(data, "data")
    check_data(data, protocol)
    if not isinstance(method, (str, Method)):
        raise TypeError(f"method must be a method name ({', '.join(METHODS)}) or a Method, got "
                        f"{type(method).__name__}")
    method = get_method(method) if isinstance(method, str) else method
    hidden, steps = budget(data.name, protocol)
    splits = cv_splits(data.y, protocol.folds, protocol.seeds, protocol.val_fraction)
    cands = len(method.grid)
    device = torch.device(device)
    ens = Ensemble(build_members(data, splits, method, hidden)).to(device)
    tensors = member_tensors(data, splits, cands, device)
    (x_tr, y_tr, m_tr), (x_va, y_va, m_va) = tensors["train"], tensors["val"]
    grid = torch.tensor(method.grid, dtype=torch.float64).repeat(len(splits))  # (K,): member r*cands+g has grid[g]
    lam = grid.to(device, torch.float32)
    weights = ("nodes.h.weight", "nodes.y.weight")

    def loss_fn(e: Ensemble) -> torch.Tensor:
        loss = _per_member(e(x_tr), y_tr, m_tr, accuracy=False)  # (K,)
        if method.penalty is not None:
            loss = loss + lam * penalty(method.penalty, *(e.stacked(w) for w in weights), batch_dims=1)
        return loss.sum()  # a sum, so each member's gradient is its own loss's gradient

    val_count = m_va.sum(1).clamp(min=1)

    def evaluate(e: Ensemble) -> torch.Tensor:
        ce, acc = _per_member(e(x_va), y_va, m_va)
        return validation_score(ce, acc, val_count)

    if method.knob == "lr":
        def optimizer(params):
            return MemberAdam(params, lr=grid)
    else:
        def optimizer(params):
            return torch.optim.Adam(params, lr=protocol.lr)
    schedule = protocol.schedule if method.attention else "joint"
    return Program(data, method, splits, ens, tensors, loss_fn, evaluate, optimizer, schedule, steps, hidden)


def _protocol(protocol) -> Protocol:
    """``protocol`` (``None``: the default), if it is a :class:`Protocol`; TypeError otherwise."""
    if protocol is None:
        return Protocol()
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a Protocol (e.g. Protocol(folds=5)), got {type(protocol).__name__}")
    return protocol


def _check_dataset(data, where: str) -> None:
    if not isinstance(data, UCIDataset):
        hint = f"; load it first, e.g. load_uci({data!r}) or load_csv(...)" if isinstance(data, str) else ""
        raise TypeError(f"{where} must be a UCIDataset (load_uci, load_csv), got {type(data).__name__}{hint}")


def run_method(data: UCIDataset, method: str | Method, protocol: Protocol | None = None,
               device: str | torch.device = "cpu", progress: bool = False, checkpoint: str | os.PathLike | None = None,
               checkpoint_every: int = 200) -> MethodResult:
    """Train and evaluate ``method`` on ``data`` under ``protocol``: all runs and candidates as one program.

    ``checkpoint``/``checkpoint_every``: the training's periodic save, see :meth:`Program.fit`.
    """
    protocol = _protocol(protocol)
    program = build_program(data, method, protocol, device)
    method, splits, cands = program.method, program.splits, program.candidates
    start = time.perf_counter()
    result = program.fit(protocol, progress, checkpoint, checkpoint_every)
    seconds = time.perf_counter() - start
    acc = program.accuracies()
    score = torch.as_tensor(result.best_score).view(len(splits), cands)
    chosen = score.argmax(1)  # first of equal scores: the smaller candidate
    records = []
    for r, split in enumerate(splits):
        k = r * cands + int(chosen[r])
        records.append({
            "seed": split.seed, "fold": split.fold, method.knob: method.grid[int(chosen[r])],
            "train_acc": float(acc["train"][k]), "val_acc": float(acc["val"][k]), "test_acc": float(acc["test"][k]),
            "best_step": int(result.best_step[k]), "attention_on": bool(result.best_attention[k]),
            "best_phase": result.best_phase[k], "n_train": len(split.train), "n_val": len(split.val),
            "n_test": len(split.test),
        })
    row = summarize(data.name, method, program.schedule, records, seconds, len(splits) * cands, result.steps,
                    program.steps, program.hidden, data)
    log.info("%s / %s: test %.3f +- %.3f in %.1f s (%d steps, K=%d)", data.name, method.name,
             row["test_acc_mean"], row["test_acc_std"], seconds, result.steps, len(splits) * cands)
    return MethodResult(row, records, result.phases)


def summarize(dataset: str, method: Method, schedule: str, records: list, seconds: float, models: int,
              steps_run: int, budget_steps: int, hidden: int, data: UCIDataset) -> dict:
    """The JSON row of one data set x method."""
    test = np.array([r["test_acc"] for r in records])
    train = np.array([r["train_acc"] for r in records])
    val = np.array([r["val_acc"] for r in records])
    per_model = seconds / models
    row = {
        "dataset": dataset, "method": method.name, "schedule": schedule,
        "test_acc_mean": float(test.mean()), "test_acc_std": float(test.std(ddof=1)) if len(test) > 1 else 0.0,
        "train_acc_mean": float(train.mean()), "train_acc_std": float(train.std(ddof=1)) if len(train) > 1 else 0.0,
        "val_acc_mean": float(val.mean()),
        "train_time_s_mean": per_model,  # wall time of the batched program / number of networks in it
        "train_time_s_per_run": seconds / len(records),  # including the tuning candidates
        "program_time_s": seconds, "models": models, "runs": len(records), "steps": steps_run,
        "budget_steps": budget_steps, "structure": f"{data.num_features}-{hidden}-{data.num_classes}",
        "classes": list(data.class_names), "paper_structure": TABLE1.get(dataset, {}).get("paper_structure"),
        "knob": method.knob, "chosen": dict(sorted(Counter(str(r[method.knob]) for r in records).items())),
        "attention_on_fraction": float(np.mean([r["attention_on"] for r in records])) if method.attention else None,
        "test_acc_runs": test.tolist(),
    }
    paper = PAPER_TABLE2.get(dataset, {}).get(method.paper) if method.paper and _papers_task(data) else None
    row["paper"] = None if paper is None else dict(zip(("train_time_s", "train_acc", "test_acc"), paper))
    return row


def _papers_task(data: UCIDataset) -> bool:
    """Table 2's liver rows belong to the selector label (the loader's default), not to ``drinks >= 3``."""
    return not (data.name == "liver" and data.class_names[0].startswith("drinks"))


def program_cost(data: UCIDataset, method: str, protocol: Protocol) -> float:
    """A rough cost of one program (multiply-adds per step x steps), to start the longest programs first."""
    m = get_method(method)
    hidden, steps = budget(data.name, protocol)
    per_sample = data.num_features * hidden + hidden * data.num_classes
    if m.attention:
        per_sample += hidden * hidden * data.num_classes * 3  # the allocator and its elementwise passes
    return float(per_sample * data.num_samples * steps * len(m.grid))


def _run_job(data: UCIDataset, method: str, protocol: Protocol, device: str, threads: int, checkpoint=None,
             checkpoint_every: int = 200) -> MethodResult:
    torch.set_num_threads(threads)
    return run_method(data, method, protocol, device, checkpoint=checkpoint, checkpoint_every=checkpoint_every)


def program_key(data: UCIDataset, method: str) -> str:
    """The name of one program in a checkpoint folder: ``dataset/method``."""
    return f"{data.name}/{method}"


def run_benchmark(datasets: Sequence[UCIDataset], methods: Sequence[str], protocol: Protocol | None = None,
                  device: str | torch.device = "cpu", progress: bool = False, workers: int = 1,
                  callback: Callable[[MethodResult], None] | None = None, store: RunDir | None = None,
                  checkpoint_every: int = 200) -> list[MethodResult]:
    """Every data set x method, one batched program each, in data set x method order.

    ``workers > 1`` runs that many programs at once in separate processes (each with ``torch``'s current number
    of threads), the costliest first; every program's result is the same as in one process (its splits and
    initial weights come from the protocol's seeds only). ``callback(result)`` is called as programs finish.

    ``store``: a :class:`~modgraph.train.RunDir`; each program is a unit (``dataset/method``) saved as it
    finishes and skipped when the folder already holds it, and the program in progress saves its training every
    ``checkpoint_every`` steps and continues from there. Results pass through JSON (as saved) either way.
    """
    protocol = _protocol(protocol)
    for arg, value, example in (("datasets", datasets, "[load_uci('glass')]"), ("methods", methods, "['plain']")):
        if isinstance(value, (str, bytes, UCIDataset)) or not isinstance(value, Sequence):
            raise TypeError(f"run_benchmark: {arg} must be a list, e.g. {example}, got {type(value).__name__} "
                            f"{value!r:.60}")
    for i, d in enumerate(datasets):
        _check_dataset(d, f"run_benchmark: datasets[{i}]")
    for m in methods:
        get_method(m)
    for arg, names in (("datasets", [d.name for d in datasets]), ("methods", list(methods))):
        if not names:
            raise ValueError(f"run_benchmark: {arg} is empty; nothing to run")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # the same program twice: run again, and one result (and checkpoint unit) would hide the other
            raise ValueError(f"run_benchmark: {arg} names {', '.join(map(repr, twice))} more than once")
    if store is not None and not isinstance(store, RunDir):
        raise TypeError(f"run_benchmark: store must be a modgraph.train.RunDir (or None), got {type(store).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"run_benchmark: callback must be a function callback(result), got {type(callback).__name__}")
    for d in datasets:  # before any training: a table that cannot be split fails now, not after the others ran
        check_data(d, protocol)
    workers = checks.positive_int("workers", workers)
    jobs = [(d, m) for d in datasets for m in methods]
    results: dict = {}
    bar = tqdm(total=len(jobs), disable=None if progress else True, desc="uci", unit="program")

    def done(key, res):
        if store is not None:
            res = MethodResult(**store.finish(program_key(*jobs[key]), asdict(res)))
        results[key] = res
        bar.update(1)
        bar.set_postfix_str(f"{res.row['dataset']} / {res.row['method']}")
        log.info("%d/%d programs done: %s / %s (%.0f s)", len(results), len(jobs), res.row["dataset"],
                 res.row["method"], res.row["program_time_s"])  # progress in logs, where tqdm stays silent
        if callback is not None:
            callback(res)

    todo = []
    for i, job in enumerate(jobs):
        saved = store.done(program_key(*job)) if store is not None else None
        if saved is not None:
            results[i] = MethodResult(**saved)
            bar.update(1)
        else:
            todo.append(i)

    def checkpoint(i):
        return store.progress_path(program_key(*jobs[i])) if store is not None else None

    if workers == 1 or len(todo) <= 1:
        for i in todo:
            data, name = jobs[i]
            bar.set_postfix_str(f"{data.name} / {name}")
            done(i, run_method(data, name, protocol, device, progress=progress, checkpoint=checkpoint(i),
                               checkpoint_every=checkpoint_every))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        order = sorted(todo, key=lambda i: -program_cost(jobs[i][0], jobs[i][1], protocol))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_run_job, jobs[i][0], jobs[i][1], protocol, str(device), torch.get_num_threads(),
                                   checkpoint(i), checkpoint_every): i for i in order}
            for future in as_completed(futures):
                done(futures[future], future.result())
    bar.close()
    return [results[i] for i in range(len(jobs))]


def paired_comparison(a: dict, b: dict) -> dict:
    """Test accuracy of row ``a`` minus row ``b`` over their paired runs (same splits, same initial weights).

    ``verdict`` is ``"ahead"``/``"behind"`` when the mean difference exceeds two standard errors, else ``"tie"``.
    """
    runs_a, runs_b = a["test_acc_runs"], b["test_acc_runs"]
    if len(runs_a) != len(runs_b) or not runs_a:  # (numpy would broadcast one run against many)
        raise ValueError(f"rows {a['method']!r} and {b['method']!r} do not hold the same runs "
                         f"({len(runs_a)} and {len(runs_b)})")
    d = np.array(runs_a, dtype=float) - np.array(runs_b, dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.inf
    mean = float(d.mean())
    verdict = "tie" if abs(mean) <= 2 * se else ("ahead" if mean > 0 else "behind")
    return {"diff": mean, "se": se, "verdict": verdict}



def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def format_table(rows: Sequence[dict]) -> str:
    """The paper's layout (per data set: method, train time, train accuracy, test accuracy), Table 2 beside."""
    header = ("dataset", "ours / paper", "method", "time/model s", "train acc", "test acc", "paper: time s",
              "train acc", "test acc")
    cells = [header]
    last = None
    for r in rows:
        m = METHODS.get(r["method"])
        label = f"{r['method']} ({m.paper})" if m is not None and m.paper and m.paper != "attention" else r["method"]
        p = r.get("paper")
        paper = (f"{p['train_time_s']:.2f}", f"{p['train_acc']:.3f}", f"{p['test_acc']:.3f}") if p else ("-",) * 3
        first = r["dataset"] != last
        structure = r.get("structure", "") + (f" / {r['paper_structure']}" if r.get("paper_structure") else "")
        cells.append((r["dataset"] if first else "", structure if first else "", label,
                      f"{r['train_time_s_mean']:.2f}", _pm(r["train_acc_mean"], r["train_acc_std"]),
                      _pm(r["test_acc_mean"], r["test_acc_std"]), *paper))
        last = r["dataset"]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def compare(rows: Sequence[dict], method: str = "attention", against: Sequence[str] = ("wd", "we", "sgl")) -> dict:
    """``method`` against each of ``against`` per data set (paired over runs): ``{other: {dataset: verdict}}``
    plus the counts of data sets where ``method`` is ahead in mean and ahead beyond two standard errors."""
    by = {(r["dataset"], r["method"]): r for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    out = {}
    for other in against:
        per = {}
        for d in datasets:
            if (d, method) in by and (d, other) in by:
                per[d] = paired_comparison(by[(d, method)], by[(d, other)])
        # a difference under 1e-6 is float noise of identical accuracies: the smallest real one, a correct example
        # moved between folds of n and n + 1 test samples, is 1 / (n (n + 1) runs), over 4e-6 for the UCI tables
        out[other] = {"datasets": per, "ahead_in_mean": sum(v["diff"] > 1e-6 for v in per.values()),
                      "ahead_significant": sum(v["verdict"] == "ahead" for v in per.values()),
                      "behind_significant": sum(v["verdict"] == "behind" for v in per.values()),
                      "compared": len(per)}
    return out


def format_comparison(rows: Sequence[dict], method: str = "attention",
                      against: Sequence[str] = ("wd", "we", "sgl")) -> str:
    """One line per baseline: the paired test-accuracy difference per data set and the counts."""
    lines = []
    for other, c in compare(rows, method, against).items():
        if not c["compared"]:
            continue
        parts = [f"{d} {v['diff']:+.4f}±{v['se']:.4f} ({v['verdict']})" for d, v in c["datasets"].items()]
        lines.append(f"{method} vs {other}: ahead in mean on {c['ahead_in_mean']}/{c['compared']}, beyond 2 SE on "
                     f"{c['ahead_significant']}, behind beyond 2 SE on {c['behind_significant']}; " + ", ".join(parts))
    return "\n".join(lines)
