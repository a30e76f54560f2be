"""Write docs/api.md, the API reference, from the docstrings of modgraph's public API.

The public API is ``modgraph.__all__`` and the ``__all__`` of the public subpackages (train, record, prune, data,
models, functional, protocols); ``modgraph.plot`` and the submodules of ``modgraph.scale`` have no ``__all__``, so
their own public functions and classes are listed. Every entry is the signature (from ``inspect.signature``) and
the docstring (``inspect.getdoc``); classes also list their public methods and properties that have a docstring.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 if docs/api.md is not what this script writes

``tests/test_api_docs.py`` runs the check, so the page cannot go stale.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

# (module, what it is); the order of the page
PACKAGES = [
    ("modgraph", "the core: networks as DAGs, gates, attention modules, specs, saving"),
    ("modgraph.train", "training: schedules, `fit`, checkpoints, batched ensembles"),
    ("modgraph.record", "recording attention weights per edge and per epoch"),
    ("modgraph.prune", "pruning by recorded attention (and the baselines)"),
    ("modgraph.functional", "pure functions: normalisers and regularisers"),
    ("modgraph.models", "standard graph networks declared as DAGs"),
    ("modgraph.data", "data sets: Planetoid, UCI, CSV, synthetic graphs"),
    ("modgraph.protocols", "evaluation protocols: cross-validation, standardisation"),
    ("modgraph.plot", "figures of recorded attention, pruning results and training curves"),
    ("modgraph.scale.minibatch", "mini-batch training on sampled subgraphs"),
    ("modgraph.scale.sampler", "neighbour sampling"),
    ("modgraph.scale.distributed", "several processes: DDP and job sweeps"),
    ("modgraph.scale.memory", "memory measurement"),
]
MISSING = "*(no docstring)*"
ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return sorted(names, key=lambda n: (not n[:1].isupper() or n.isupper(), n.lower()))
    own = [n for n, obj in vars(module).items() if not n.startswith("_") and getattr(obj, "__module__", None)
           == module.__name__ and (inspect.isclass(obj) or inspect.isfunction(obj))]
    return sorted(own, key=lambda n: (not n[:1].isupper(), n.lower()))


class _Raw(str):
    """An annotation kept as written in the source (``from __future__ import annotations``), shown unquoted."""

    def __repr__(self) -> str:
        return str(self).strip("'\"")


def signature(obj, name: str, method: bool = False) -> str:
    """``name(arguments) -> return``; a method's ``self``/``cls`` left out."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    if method and sig.parameters and next(iter(sig.parameters)) in ("self", "cls"):
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    params = [p.replace(annotation=_Raw(p.annotation)) if isinstance(p.annotation, str) else p
              for p in sig.parameters.values()]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=_Raw(ret) if isinstance(ret, str) else ret)
    return name + ADDRESS.sub("", str(sig))


def doc(obj) -> str:
    text = inspect.getdoc(obj)
    return text.strip() if text else MISSING


def own_doc(cls, attr: str, value) -> str | None:
    """The docstring of a method or property defined on ``cls``, or of the method it overrides in a modgraph base
    class; ``None`` for undocumented methods and for those whose only docstring comes from torch or ``object``."""
    if attr not in vars(cls):
        return None
    for owner in cls.__mro__:
        if attr not in vars(owner) or (owner is not cls and not owner.__module__.startswith("modgraph")):
            continue
        target = vars(owner)[attr]
        target = target.fget if isinstance(target, property) else target
        if isinstance(target, (staticmethod, classmethod)):
            target = target.__func__
        text = getattr(target, "__doc__", None)
        if text:
            return inspect.cleandoc(text)
    return None


def block(text: str) -> str:
    """A docstring verbatim in a text block (docstrings use reST-ish markup that Markdown would mangle)."""
    return "```text\n" + text + "\n```"


def entry(qualname: str, obj) -> list[str]:
    out = []
    if inspect.isclass(obj):
        out += [f"### class `{signature(obj, qualname)}`", "", block(doc(obj)), ""]
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            text = own_doc(obj, attr, value)
            if text is None:
                continue
            if isinstance(value, property):
                out += [f"- property **`{attr}`**: {text.splitlines()[0]}"]
                continue
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if not callable(func):
                continue
            first, _, rest = text.partition("\n")
            out += [f"- **`{signature(func, attr, method=True)}`**: {first}"]
            if rest.strip():
                out += ["", "  " + block(rest.strip()).replace("\n", "\n  ")]
        out.append("")
    elif callable(obj):
        out += [f"### `{signature(obj, qualname)}`", "", block(doc(obj)), ""]
    else:
        out += [f"### `{qualname}`", "", f"A constant: `{type(obj).__name__}` of {len(obj)} entries."
                if hasattr(obj, "__len__") else f"A constant of type `{type(obj).__name__}`.", ""]
    return out


def render() -> str:
    lines = ["# API reference", "",
             "Generated by `python docs/make_api.py` from the docstrings of the public API (do not edit by hand; "
             "`tests/test_api_docs.py` fails when this page and the code disagree). The concepts are in "
             "[concepts.md](concepts.md), a walk-through in [tutorial.md](tutorial.md).", ""]
    toc, body = [], []
    for modname, what in PACKAGES:
        module = importlib.import_module(modname)
        anchor = modname.replace(".", "")
        toc.append(f"- [`{modname}`](#{anchor}): {what}")
        body += [f"## {modname}", ""]
        summary = (inspect.getdoc(module) or MISSING).split("\n\n")[0].replace("\n", " ")
        body += [summary, ""]
        for name in public_names(module):
            body += entry(f"{modname.split('.')[-1] if modname != 'modgraph' else 'mg'}.{name}",
                          getattr(module, name))
    return "\n".join(lines + toc + [""] + body).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with docs/api.md instead of writing it")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if OUT.read_text() != text:
            print("docs/api.md is stale: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
