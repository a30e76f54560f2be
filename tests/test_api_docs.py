"""docs/api.md is exactly what docs/make_api.py writes from the docstrings, so it cannot go stale."""

from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def _make_api():
    module = load_script("docs/make_api.py", "make_api")
    return module


def test_api_md_is_current():
    assert (ROOT / "docs" / "api.md").read_text() == _make_api().render(), \
        "docs/api.md is stale: run python docs/make_api.py"


def test_every_public_name_is_documented():
    make_api = _make_api()
    text = make_api.render()
    assert make_api.MISSING not in text
    import modgraph

    for name in modgraph.__all__:
        assert f"mg.{name}" in text
    for name in ("train.fit", "record.EdgeRecorder", "prune.prune", "data.load_planetoid", "models.attention_gcn",
                 "functional.normalize", "protocols.cv_splits", "minibatch.MiniBatchTask"):
        assert name in text
