import numpy as np
import pytest

from modgraph.protocols import cv_splits, fit_standardizer, standardize, stratified_holdout, stratified_kfold

# ecoli's class counts: two classes have fewer members than folds
ECOLI = np.repeat(np.arange(8), [143, 77, 52, 35, 20, 5, 2, 2])


@pytest.mark.parametrize("folds", [2, 5, 10])
def test_kfold_partitions_and_stratifies(folds):
    splits = stratified_kfold(ECOLI, folds, seed=3)
    tests = [test for _, test in splits]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(ECOLI.size))  # a partition
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == ECOLI.size
    sizes = [t.size for t in tests]
    assert max(sizes) - min(sizes) <= 1
    counts = np.stack([np.bincount(ECOLI[t], minlength=8) for t in tests])  # (folds, classes)
    assert (counts.max(0) - counts.min(0) <= 1).all()  # every class spread evenly over the folds


def test_kfold_depends_on_seed_only():
    a = stratified_kfold(ECOLI, 10, seed=0)
    b = stratified_kfold(ECOLI, 10, seed=0)
    c = stratified_kfold(ECOLI, 10, seed=1)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


def test_holdout_fraction_and_strata():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    kept, held = stratified_holdout(y, 0.2, seed=0)
    assert held.size == 20 and kept.size == 80
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(100))
    assert np.bincount(y[held]).tolist() == [10, 6, 4]


def test_cv_splits_keep_the_test_fold_apart():
    splits = cv_splits(ECOLI, folds=10, seeds=[0, 1], val_fraction=0.2)
    assert len(splits) == 20 and [s.seed for s in splits[::10]] == [0, 1]
    for s in splits:
        parts = np.concatenate([s.train, s.val, s.test])
        assert np.array_equal(np.sort(parts), np.arange(ECOLI.size))  # disjoint and complete
        assert s.val.size == int(np.floor((s.train.size + s.val.size) * 0.2))
    for seed in (0, 1):  # each repetition's test folds partition the data
        tests = np.concatenate([s.test for s in splits if s.seed == seed])
        assert np.array_equal(np.sort(tests), np.arange(ECOLI.size))


def test_inner_validation_draw_depends_on_seed_and_fold():
    # two classes in blocks of 50: every training fold (5 folds) reads [0]*40 + [1]*40, so only the inner holdout's
    # own randomness can make the validation positions within the training fold differ
    y = np.repeat([0, 1], 50)
    splits = {(s.seed, s.fold): s for s in cv_splits(y, folds=5, seeds=[0, 1], val_fraction=0.2)}

    def rank_in_fold(s):  # validation positions relative to the training fold they were drawn from
        fold = np.sort(np.concatenate([s.train, s.val]))
        assert np.array_equal(y[fold], np.repeat([0, 1], 40))
        return np.searchsorted(fold, s.val)

    assert not np.array_equal(rank_in_fold(splits[0, 0]), rank_in_fold(splits[0, 1]))  # fold
    assert not np.array_equal(rank_in_fold(splits[0, 0]), rank_in_fold(splits[1, 0]))  # seed


def test_inner_validation_is_stratified():
    y = np.repeat([0, 1, 2], [60, 27, 13])
    for s in cv_splits(y, folds=4, seeds=[0, 3], val_fraction=0.25):
        fold_counts = np.bincount(y[np.concatenate([s.train, s.val])], minlength=3)
        val_counts = np.bincount(y[s.val], minlength=3)
        assert (np.abs(val_counts - 0.25 * fold_counts) <= 1).all(), (s.seed, s.fold, val_counts, fold_counts)


def test_standardizer_treats_a_column_constant_up_to_rounding_as_constant():
    X = np.array([[0.1 + 0.2, 1.0], [0.3, 2.0], [0.3, 3.0]])  # 0.30000000000000004 and 0.3: std ~3e-17
    mean, std = fit_standardizer(X)
    assert std[0] == 1.0 and std[1] == pytest.approx(np.std([1.0, 2.0, 3.0]))
    assert np.abs(standardize(X, mean, std)[:, 0]).max() < 1e-6  # maps to 0, no blow-up to ~±1


def test_standardizer_uses_only_what_it_is_given():
    train = np.array([[1.0, 10.0, 3.0], [3.0, 30.0, 3.0]])
    mean, std = fit_standardizer(train)
    assert mean.tolist() == [2.0, 20.0, 3.0] and std.tolist() == [1.0, 10.0, 1.0]  # constant column: std 1
    out = standardize(np.array([[2.0, 40.0, 5.0]]), mean, std)
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 2.0, 2.0]]
    assert np.allclose(standardize(train, mean, std).mean(0), 0)


def test_errors():
    with pytest.raises(ValueError, match=r"folds must be an integer in \[2, 4\]"):
        stratified_kfold([0, 1, 0, 1], folds=5)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 1.5"):
        stratified_holdout([0, 1, 0, 1], fraction=1.5)
    with pytest.raises(ValueError, match="leaves an empty part"):
        stratified_holdout([0, 1, 0, 1], fraction=0.1)
    with pytest.raises(ValueError, match="non-empty 1-D array of labels"):
        cv_splits(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"expected X of shape \[n, 3\], got \(1, 2\)"):
        standardize(np.zeros((1, 2)), np.zeros(3), np.ones(3))


@pytest.mark.parametrize("folds", [2, 3, 5, 10])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.9])
def test_min_samples_is_the_fewest_that_split(folds, fraction):
    """min_samples is exactly where cv_splits starts to work (balanced or not: only the count matters)."""
    from modgraph.protocols import min_samples

    need = min_samples(folds, fraction)
    for n in range(max(folds, need - 3), need + 3):
        y = np.arange(n) % 2
        if n < need:
            with pytest.raises(ValueError, match=rf"{folds}-fold cross-validation with val_fraction {fraction} needs "
                                                 rf"at least {need} samples .* got {n}"):
                cv_splits(y, folds, (0, 1), fraction)
        else:
            assert len(cv_splits(y, folds, (0, 1), fraction)) == 2 * folds
            assert len(cv_splits(np.r_[np.zeros(n - 1), 1], folds, (0,), fraction)) == folds


def test_min_samples_errors():
    from modgraph.protocols import min_samples

    assert (min_samples(2, 0.2), min_samples(3, 0.2), min_samples(10, 0.2)) == (10, 8, 10)
    with pytest.raises(ValueError, match="folds must be an integer >= 2, got 1"):
        min_samples(1)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 0"):
        min_samples(3, 0)


def test_returned_positions_are_sorted():
    y = np.repeat([0, 1, 2], [17, 9, 6])
    kept, held = stratified_holdout(y, 0.3, seed=2)
    assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()
    for s in cv_splits(y, folds=4, seeds=[1], val_fraction=0.25):
        for part in (s.train, s.val, s.test):
            assert (np.diff(part) > 0).all()


def test_standardizer_treats_rounding_noise_around_zero_as_constant():
    X = np.array([[0.1 + 0.2 - 0.3, 1.0], [0.0, 2.0], [0.0, 4.0]])  # column 0: 5.6e-17, 0, 0 (mean ~2e-17)
    mean, std = fit_standardizer(X)
    assert std[0] == 1.0
    assert np.abs(standardize(X, mean, std)[:, 0]).max() < 1e-6


def test_more_errors():
    from modgraph.protocols import min_samples

    with pytest.raises(ValueError, match="seeds must name at least one repetition"):
        cv_splits(np.arange(20) % 2, folds=2, seeds=[])
    with pytest.raises(ValueError, match=r"expected a non-empty 2-D array \[n, d\], got shape \(0, 3\)"):
        fit_standardizer(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 1"):
        min_samples(3, 1)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 1.0"):
        stratified_holdout([0, 1, 0, 1], fraction=1.0)


def test_seeds_must_be_distinct_non_negative_integers():
    y = np.arange(20) % 2
    with pytest.raises(TypeError, match=r"^seeds must be a list of seeds, one repetition each \(e\.g\. range\(3\) for "
                                        r"3\), got 3$"):
        cv_splits(y, folds=2, seeds=3)  # 'int' object is not iterable before
    for bad in (1.5, -1, True):  # numpy's SeedSequence errors, or True taken as 1
        with pytest.raises(ValueError, match=rf"^seeds\[1\] must be a non-negative integer \(a random seed\), got "
                                             rf"{bad!r}$"):
            cv_splits(y, folds=2, seeds=[0, bad])
    with pytest.raises(ValueError, match=r"^seeds must be distinct: seed 0 twice would repeat the same splits, got "
                                         r"\[0, 1, 0\]$"):
        cv_splits(y, folds=2, seeds=[0, 1, 0])  # the same repetition twice, silently
    for call in (lambda: stratified_kfold(y, folds=2, seed=None), lambda: stratified_holdout(y, 0.2, seed=None)):
        with pytest.raises(ValueError, match=r"^seed must be a non-negative integer \(a random seed\), got None$"):
            call()  # fresh randomness, silently, before


def test_labels_with_missing_or_mixed_values_are_named():
    y = (np.arange(20) % 2).astype(float)
    y[7] = np.nan  # a NaN became a class of its own, silently
    with pytest.raises(ValueError, match=r"^labels: 1 missing \(NaN or None\), the first at position 7; drop those "
                                         r"samples or give them a class$"):
        cv_splits(y, folds=2)
    with pytest.raises(ValueError, match=r"^labels: 10 missing .* the first at position 1;"):
        cv_splits([0, None] * 10, folds=2)
    with pytest.raises(TypeError, match=r"^labels must be of one comparable kind \(numbers or strings\), got a mix of "
                                        r"int, str$"):
        cv_splits(np.array([0, "a"] * 10, dtype=object), folds=2)


def test_standardisation_refuses_non_finite_statistics():
    with pytest.raises(ValueError, match=r"^X holds 1 NaN/Inf values, the first at row 0, column 1; the statistics "
                                         r"would be NaN"):
        fit_standardizer(np.array([[1.0, np.nan], [2.0, 3.0]]))  # a NaN mean, silently, before
    with pytest.raises(ValueError, match=r"^std must be finite and > 0 in every column .*, got \[1\.0, 0\.0\]$"):
        standardize(np.ones((2, 2)), np.zeros(2), np.array([1.0, 0.0]))  # inf features before


def test_min_samples_of_a_tiny_fraction_ends():
    import subprocess
    import sys

    # the search for the rounding never ended before (a child process, so a hang fails the test instead of the run)
    code = "from modgraph.protocols import min_samples; print(min_samples(3, 1e-300) > 10 ** 299, min_samples(2, 0.2))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("min_samples(3, 1e-300) did not return within 60 s")
    assert out.stdout.split() == ["True", "10"]


@pytest.mark.parametrize("y", [
    np.array([0, np.float32("nan"), 1, 1], dtype=object),  # numpy floats in an object array: a class of their own
    np.array(["NaT", "2020-01-01", "2020-01-01", "NaT"], dtype="datetime64[D]"),
])
def test_labels_missing_in_other_kinds_are_named(y):
    with pytest.raises(ValueError, match=r"labels: \d missing \(NaN or None\), the first at position"):
        stratified_kfold(y, folds=2)


def test_ragged_labels_are_named():
    with pytest.raises(ValueError, match="expected a non-empty 1-D array of labels, got a ragged sequence"):
        stratified_kfold([[0], [1, 2]], folds=2)


def test_standardize_names_bad_statistics_and_features():
    X = np.arange(12.0).reshape(4, 3)
    mean, std = fit_standardizer(X)
    with pytest.raises(ValueError, match=r"std must be a 1-D array \[d\], one value per column .*got shape \(\)"):
        standardize(X, mean, 1.0)  # broadcast silently before
    with pytest.raises(ValueError, match="mean and std must have one value per column each, got 3 and 2"):
        standardize(X, mean, std[:2])  # numpy's broadcast error before
    with pytest.raises(ValueError, match=r"mean must be a 1-D array \[d\].*got shape \(\)"):
        standardize(X, 0.0, std)  # an IndexError before
    with pytest.raises(TypeError, match="mean must be a 1-D array of numbers .*got list"):
        standardize(X, ["a", "b", "c"], std)
    with pytest.raises(ValueError, match="mean must be finite in every column"):
        standardize(X, mean * np.nan, std)  # NaN out before
    with pytest.raises(ValueError, match="X holds 1 NaN/Inf values, the first at row 1, column 2"):
        standardize(np.where(X == 5.0, np.nan, X), mean, std)  # NaN out before
    assert np.array_equal(standardize(X, mean.tolist(), std.tolist()), ((X - mean) / std).astype(np.float32))
