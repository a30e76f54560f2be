"""flush_denormal: on inside the block, the previous setting restored after it; the UCI programs train under it."""

import torch

from modgraph.benchmarks.uci import Protocol, build_program
from modgraph.data.uci import UCIDataset
from modgraph.train import flush_denormal, flushing_denormal


def test_flush_denormal_sets_and_restores():
    before = flushing_denormal()
    with flush_denormal():
        assert flushing_denormal()
        assert float((torch.tensor([1e-39]) * 1.0)[0]) == 0.0
        with flush_denormal(False):
            assert not flushing_denormal()
        assert flushing_denormal()
    assert flushing_denormal() == before


def test_uci_program_fits_with_denormals_flushed():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=gen).numpy()
    data = UCIDataset("toy", X, (X[:, 0] > 0).astype(int), ("a", "b", "c"), ("0", "1"), ())
    program = build_program(data, "attention", Protocol(folds=2))
    seen = []
    before = flushing_denormal()
    program.fit(Protocol(folds=2), steps=4, eval_every=2, callback=lambda trainer: seen.append(flushing_denormal()))
    assert seen and all(seen)
    assert flushing_denormal() == before


def test_a_setting_that_is_not_a_bool_is_named_and_nothing_changes():
    import pytest

    before = flushing_denormal()
    for value in ("no", 0, None):  # before: torch's RuntimeError "flush_denormal expects a bool"
        with pytest.raises(TypeError, match=rf"^flush_denormal: enabled must be true or false, got {value!r}$"):
            with flush_denormal(value):
                pass
    assert flushing_denormal() == before
