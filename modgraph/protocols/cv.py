"""Cross-validation protocol as pure functions: stratified folds, an inner validation split, standardisation.

The test fold of a split is never seen before the final evaluation: the inner validation part (for early stopping
and hyper-parameters) is carved out of the training fold, and the standardisation is fitted on the part the model
is trained on.

Example::

    splits = cv_splits(y, folds=10, seeds=[0, 1], val_fraction=0.2)   # 20 splits
    s = splits[0]
    mean, std = fit_standardizer(X[s.train])
    X_train, X_test = standardize(X[s.train], mean, std), standardize(X[s.test], mean, std)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import checks

__all__ = ["Split", "cv_splits", "fit_standardizer", "min_samples", "standardize", "stratified_holdout",
           "stratified_kfold"]


def _labels(y) -> np.ndarray:
    try:
        y = np.asarray(y)
    except ValueError:  # numpy: "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError("expected a non-empty 1-D array of labels, got a ragged sequence (items of different "
                         "lengths)") from None
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"expected a non-empty 1-D array of labels, got shape {y.shape}")
    if y.dtype.kind in "fc":
        missing = np.flatnonzero(np.isnan(y)).tolist()
    elif y.dtype.kind in "mM":  # NaT: not a time, sorted as a class of its own
        missing = np.flatnonzero(np.isnat(y)).tolist()
    elif y.dtype.kind == "O":  # any number unequal to itself: float, numpy float, Decimal NaN
        missing = [i for i, v in enumerate(y.tolist()) if v is None or (isinstance(v, numbers.Number) and v != v)]
    else:
        missing = []
    if missing:  # a NaN sorts after every class (numpy) or anywhere (objects): a class of its own, silently
        raise ValueError(f"labels: {len(missing)} missing (NaN or None), the first at position {missing[0]}; drop "
                         f"those samples or give them a class")
    if y.dtype.kind == "O":
        try:
            np.argsort(y, kind="stable")
        except TypeError:
            kinds = sorted({type(v).__name__ for v in y.tolist()})
            raise TypeError(f"labels must be of one comparable kind (numbers or strings), got a mix of "
                            f"{', '.join(kinds)}") from None
    return y


def _seed(name: str, seed) -> int:
    return checks.integer(name, seed, least=0, why="a random seed")


def _class_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions ``0..n-1`` grouped by class (classes in sorted order), in random order within each class."""
    perm = rng.permutation(y.size)
    return perm[np.argsort(y[perm], kind="stable")]


def stratified_kfold(y, folds: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split positions ``0..n-1`` into ``folds`` test folds with the class proportions of ``y``.

    The positions are grouped by class (random order within each class, from ``seed``) and dealt to the folds in
    turn, so every fold's size and every class's count per fold differ by at most one between folds. A class with
    fewer members than folds is absent from some test folds.

    Args:
        y: labels ``[n]`` (any sortable values).
        folds: number of folds, ``2 <= folds <= n``.
        seed: the shuffle within classes.

    Returns:
        ``folds`` pairs ``(train, test)`` of sorted position arrays; the test folds partition ``0..n-1``.

    Example:
        >>> [t.tolist() for _, t in stratified_kfold([0, 0, 1, 1], folds=2, seed=0)]
        [[0, 2], [1, 3]]
    """
    y = _labels(y)
    folds = checks.integer("folds", folds, least=2, most=y.size, why="the number of samples")
    order = _class_order(y, np.random.default_rng(_seed("seed", seed)))
    fold_of = np.empty(y.size, dtype=np.int64)
    fold_of[order] = np.arange(y.size) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def stratified_holdout(y, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``fraction`` of the positions of ``y``, stratified by class.

    Positions grouped by class (random within class) are held out at evenly spaced ranks, so the holdout has
    ``floor(n * fraction)`` positions and each class contributes its share up to one.

    Returns:
        ``(kept, held_out)``, sorted position arrays that partition ``0..n-1``; both non-empty.

    Example:
        >>> kept, held = stratified_holdout([0] * 5 + [1] * 5, fraction=0.2, seed=0)
        >>> len(kept), len(held)
        (8, 2)
    """
    y = _labels(y)
    fraction = _check_fraction(fraction)
    held_count = int(np.floor(y.size * fraction))
    if held_count < 1 or held_count >= y.size:
        raise ValueError(f"a holdout of fraction {fraction} of {y.size} samples leaves an empty part")
    order = _class_order(y, np.random.default_rng(_seed("seed", seed)))
    rank = np.arange(y.size)
    held = np.floor((rank + 1) * fraction) > np.floor(rank * fraction)  # evenly spaced, floor(n*fraction) in all
    return np.sort(order[~held]), np.sort(order[held])


def _check_folds(folds) -> int:
    return checks.integer("folds", folds, least=2)


def _check_fraction(fraction) -> float:
    return checks.number("fraction", fraction, low=0, high=1, low_open=True, high_open=True)


def _min_holdout_size(fraction: float) -> int:
    """The fewest samples :func:`stratified_holdout` can split at ``fraction`` (one held out, one kept)."""
    m = max(2, math.ceil(1 / fraction))
    # the same float arithmetic as stratified_holdout; its rounding moves m by a step or two (a bounded search: for a
    # fraction such as 1e-300, (m - 1) * fraction rounds to 1 for every m near 1e300 and an unbounded one never ended)
    for _ in range(4):
        if m > 2 and math.floor((m - 1) * fraction) >= 1:
            m -= 1
    for _ in range(4):
        if math.floor(m * fraction) < 1:
            m += 1
    return m


def min_samples(folds: int, val_fraction: float = 0.2) -> int:
    """The fewest samples :func:`cv_splits` can split into ``folds`` folds with ``val_fraction`` held out.

    Every training fold (all samples but the test fold's ``ceil(n / folds)`` at most) must be large enough for
    :func:`stratified_holdout` to hold out at least one sample and keep at least one; only the count matters, not
    the classes (a class with fewer members than folds is absent from some test folds).

    Example:
        >>> min_samples(2, 0.2), min_samples(3, 0.2)   # training folds of at least 5 samples
        (10, 8)
    """
    folds, val_fraction = _check_folds(folds), _check_fraction(val_fraction)
    part = _min_holdout_size(val_fraction)  # the smallest training fold that splits
    return max(int(folds), -(-part * int(folds) // (int(folds) - 1)))  # n - ceil(n / folds) >= part


@dataclass(frozen=True, eq=False)
class Split:
    """One outer fold of one repetition: positions into the data set.

    ``train`` is what the model is fitted on, ``val`` the inner validation part of the training fold (early
    stopping, hyper-parameters), ``test`` the outer test fold (evaluated once, at the end).
    """

    seed: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def cv_splits(y, folds: int = 10, seeds: Sequence[int] = (0,), val_fraction: float = 0.2) -> list[Split]:
    """Repeated stratified k-fold with a stratified inner validation split of each training fold.

    Args:
        y: labels ``[n]``.
        folds: outer folds per repetition.
        seeds: one repetition per seed (a different fold assignment each).
        val_fraction: share of each training fold held out for validation.

    Returns:
        ``len(seeds) * folds`` splits, seed-major; in each, ``train``, ``val`` and ``test`` partition ``0..n-1``.

    Raises:
        ValueError: fewer samples than :func:`min_samples` (the message says how many are needed).
    """
    y = _labels(y)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a list of seeds, one repetition each (e.g. range(3) for 3), got {seeds!r}")
    seeds = [_seed(f"seeds[{i}]", s) for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must name at least one repetition, got none")
    if len(set(seeds)) != len(seeds):
        twice = next(s for s in seeds if seeds.count(s) > 1)
        raise ValueError(f"seeds must be distinct: seed {twice} twice would repeat the same splits, got {seeds}")
    need = min_samples(folds, val_fraction)
    if y.size < need:
        raise ValueError(f"{folds}-fold cross-validation with val_fraction {val_fraction} needs at least {need} "
                         f"samples (each training fold must split into a fitted and a validation part), got {y.size}")
    splits = []
    for seed in seeds:
        for fold, (train_fold, test) in enumerate(stratified_kfold(y, folds, seed)):
            kept, held = stratified_holdout(y[train_fold], val_fraction, seed=seed * 1000 + fold + 1)
            splits.append(Split(int(seed), fold, train_fold[kept], train_fold[held], test))
    return splits


def fit_standardizer(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of ``X`` ``[n, d]``; a constant column gets std 1 (so it maps to 0).

    Example:
        >>> fit_standardizer(np.array([[1.0, 5.0], [3.0, 5.0]]))
        (array([2., 5.]), array([1., 1.]))
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D array [n, d], got shape {X.shape}")
    _check_finite(X, "the statistics would be NaN")
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def _check_finite(X: np.ndarray, why: str) -> None:
    finite = np.isfinite(X)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"X holds {int((~finite).sum())} NaN/Inf values, the first at row {row}, column {col}; "
                         f"{why}: impute or drop them first")


def standardize(X, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` with statistics from :func:`fit_standardizer`, as ``float32``."""
    stats = {}
    for name, value in (("mean", mean), ("std", std)):
        try:
            stats[name] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a 1-D array of numbers (from fit_standardizer), got "
                            f"{type(value).__name__} {value!r:.80}") from None
        if stats[name].ndim != 1:
            raise ValueError(f"{name} must be a 1-D array [d], one value per column (from fit_standardizer), got "
                             f"shape {stats[name].shape}")
    mean, std = stats["mean"], stats["std"]
    if mean.shape != std.shape:
        raise ValueError(f"mean and std must have one value per column each, got {mean.size} and {std.size}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != mean.shape[0]:
        raise ValueError(f"expected X of shape [n, {mean.shape[0]}], got {X.shape}")
    if not np.isfinite(mean).all():
        raise ValueError(f"mean must be finite in every column (every output would be NaN there), got "
                         f"{mean.tolist()}")
    if not (np.isfinite(std) & (std > 0)).all():
        raise ValueError(f"std must be finite and > 0 in every column (fit_standardizer gives 1 to a constant "
                         f"column), got {std.tolist()}")
    _check_finite(X, "they would be NaN/Inf after standardising too")
    return ((X - mean) / std).astype(np.float32)
