"""Cora, CiteSeer and PubMed (Planetoid citation graphs) from a possibly read-only data root.

``torch_geometric.datasets.Planetoid`` reads ``ROOT/<Name>/raw/ind.<name>.*`` and writes
``ROOT/<Name>/processed/``; when a raw file is missing it tries to download all of them. This module puts a
check in front of it:

1. Find the raw folder: ``<data root>/planetoid/<Name>/raw`` (the layout of ``shared/data``) or
   ``<data root>/<Name>/raw`` (a root that is itself a Planetoid folder).
2. All 8 raw files must be there. A partial folder (the shared PubMed lacks ``ind.pubmed.allx``) is one
   :class:`~modgraph.errors.DataError` naming the missing files, the folders searched and how to provide them.
   Only when no raw file exists at all and the root is an existing writable folder does PyG download them
   (into a temporary folder, moved into place once complete); a failed download (offline) is the same kind
   of DataError.
3. With ``verify=True`` every raw file is checked against its known SHA-256.
4. The raw files are copied into a cache folder and PyG processes them there, so the data root is never
   written to (it may be read-only, or shared). The cache folder is keyed by the raw files' digests and the
   PyG version, so it is reused while they match and can never be stale. It is built in a temporary folder
   and renamed into place, so an interrupted run leaves no half-written cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch_geometric
from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid

from modgraph.data.checks import check_features, check_labels
from modgraph.data.checksums import file_sha256, is_known, verify_file
from modgraph.data.paths import (
    HOW_TO_SET_ROOT,
    data_root_origin,
    is_writable_dir,
    resolve_cache_dir,
    resolve_data_root,
)
from modgraph.errors import DataError

log = logging.getLogger(__name__)

#: Lower-case name -> the folder name PyG expects.
PLANETOID_NAMES: dict[str, str] = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_RAW_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def raw_file_names(name: str) -> list[str]:
    """The 8 raw files PyG reads for ``name``: ``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``."""
    return [f"ind.{_canonical(name).lower()}.{suffix}" for suffix in _RAW_SUFFIXES]


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in PLANETOID_NAMES:
        raise DataError(
            f"unknown Planetoid data set {name!r}; expected one of {', '.join(PLANETOID_NAMES.values())} "
            "(case-insensitive)."
        )
    return PLANETOID_NAMES[key]


def _how_to_provide(name: str) -> str:
    files = "{" + ",".join(_RAW_SUFFIXES) + "}"
    return (
        f"To provide them, either place the 8 files ind.{name.lower()}.{files} in "
        f"<data root>/planetoid/{name}/raw/ "
        "(source: https://github.com/kimiyoung/planetoid/tree/master/data), "
        "or, on a machine with internet access, point data_root at an empty writable folder and PyG will "
        f"download them there. Then {HOW_TO_SET_ROOT}."
    )


def _find_dataset_dir(candidates: list[Path], name: str, origin: str) -> Path | None:
    """The first candidate ``<dir>`` with all 8 files in ``<dir>/raw``; ``None`` if none has any raw file."""
    files = raw_file_names(name)
    partial: tuple[Path, list[str]] | None = None
    for folder in candidates:
        missing = [f for f in files if not (folder / "raw" / f).is_file()]
        if not missing:
            return folder
        if len(missing) < len(files) and partial is None:
            partial = (folder, missing)
    if partial is not None:
        folder, missing = partial
        searched = ", ".join(str(c / "raw") for c in candidates)
        raise DataError(
            f"Planetoid {name}: the raw folder {folder / 'raw'} is incomplete; missing {', '.join(missing)} "
            f"({len(files) - len(missing)} of {len(files)} files present; searched {searched}; data root "
            f"from {origin}). "
            "PyG would try to download every file and fail offline. " + _how_to_provide(name)
        )
    return None


def _download(root: Path, name: str, candidates: list[Path], origin: str) -> Path:
    """Let PyG download the raw files into ``root``; return the dataset folder or raise DataError."""
    searched = ", ".join(str(c / "raw") for c in candidates)
    nothing = f"Planetoid {name}: no raw files found (searched {searched}; data root from {origin})"
    if not root.is_dir():
        raise DataError(f"{nothing}; the data root {root} does not exist. " + _how_to_provide(name))
    direct = root.name.lower() == "planetoid" or any((root / n).is_dir() for n in PLANETOID_NAMES.values())
    parent = root if direct else root / "planetoid"
    target = parent / name
    if not is_writable_dir(parent):
        raise DataError(
            f"{nothing}, and {parent} is not writable, so they cannot be downloaded there. " + _how_to_provide(name)
        )
    log.info("Planetoid %s: no raw files under %s; downloading them with PyG", name, root)
    created = [p for p in [parent, *parent.parents] if not p.exists()]  # removed again if the download fails
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=parent))
    except OSError as err:
        raise DataError(f"{nothing}, and {parent} cannot be written ({err}). " + _how_to_provide(name)) from None
    try:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                Planetoid(str(staging), name, split="public")
        except Exception as err:  # offline: URLError, aiohttp's ClientConnectorError (OSError), ...
            shutil.rmtree(staging, ignore_errors=True)
            for folder in created:  # innermost first; only folders this call made, and only if empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise DataError(
                f"{nothing}, and downloading them with PyG failed ({type(err).__name__}: {err}); are you "
                "offline? " + _how_to_provide(name)
            ) from None
        try:  # all 8 files are complete now; move them into place (a rename each, same file system)
            (target / "raw").mkdir(parents=True, exist_ok=True)
            for f in raw_file_names(name):
                os.replace(staging / name / "raw" / f, target / "raw" / f)
        except OSError as err:
            raise DataError(f"cannot move the downloaded files into {target / 'raw'}: {err}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fingerprint(raw_dir: Path, files: list[str]) -> str:
    h = hashlib.sha256(f"torch_geometric {torch_geometric.__version__}\n".encode())
    for f in files:
        h.update(f"{f} {file_sha256(raw_dir / f)}\n".encode())
    return h.hexdigest()[:16]


def _processed_root(raw_dir: Path, name: str, cache: Path) -> Path:
    """A cache folder ``<cache>/<Name>-<digest>`` holding ``<Name>/raw`` (copied) and ``<Name>/processed``."""
    files = raw_file_names(name)
    final = cache / f"{name}-{_fingerprint(raw_dir, files)}"
    if (final / name / "processed" / "data.pt").is_file():
        log.debug("Planetoid %s: reusing the processed cache %s", name, final)
        return final
    how = "pass cache_dir=... or set XDG_CACHE_HOME to a writable folder"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    except OSError as err:
        raise DataError(f"cannot write the Planetoid cache {cache} ({err}); {how}.") from None
    log.info("Planetoid %s: processing %s into the cache %s", name, raw_dir, final)
    try:
        (staging / name / "raw").mkdir(parents=True)
        for f in files:
            shutil.copyfile(raw_dir / f, staging / name / "raw" / f)
        with contextlib.redirect_stderr(io.StringIO()):
            Planetoid(str(staging), name, split="public")
        if not (final / name / "processed" / "data.pt").is_file():  # else another process just built it
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
    except OSError as err:
        raise DataError(f"cannot write the Planetoid cache {cache} ({err}); {how}.") from None
    except Exception as err:  # unpickling errors from a corrupted raw file read with verify=False
        raise DataError(
            f"PyG could not process the raw files in {raw_dir} ({type(err).__name__}: {err}). Check them "
            "with verify=True (or 'sha256sum -c SHA256SUMS' in the data root) and restore the originals."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def load_planetoid(
    name: str,
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> Data:
    """Load a Planetoid citation graph with the public split (Yang et al., ICML 2016).

    The public split is PyG's ``split="public"``: 20 labelled nodes per class for training, 500 validation and
    1000 test nodes.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (case-insensitive).
        data_root: folder holding ``planetoid/<Name>/raw/`` (or itself holding ``<Name>/raw/``); default
            ``$MODGRAPH_DATA``, then ``./data``. Never written to, except by a download into an empty
            writable root.
        cache_dir: where PyG's processed files go; default ``$XDG_CACHE_HOME/modgraph/planetoid``, else
            ``~/.cache/modgraph/planetoid``. Reused across calls and processes.
        verify: check the raw files against their known SHA-256 first.

    Returns:
        ``torch_geometric.data.Data`` with ``x [N, F]`` (float32), ``edge_index [2, E]``, ``y [N]``,
        ``train_mask``/``val_mask``/``test_mask [N]`` (bool), and ``num_classes`` (``int``) attached as an
        attribute: ``data.num_classes``.

    Raises:
        DataError: unknown name; missing or partial raw folder (names the missing files and folders
            searched); failed download; checksum mismatch; unwritable cache; NaN/Inf features or labels out of
            range (with ``verify=False``: a changed raw file).

    Example:
        >>> data = load_planetoid("cora", "/work/shared/data")
        >>> data.num_nodes, data.num_edges, data.num_classes, int(data.train_mask.sum())
        (2708, 10556, 7, 140)
    """
    name = _canonical(name)
    root = resolve_data_root(data_root)
    candidates = [root / "planetoid" / name, root / name]
    origin = data_root_origin(data_root)
    dataset_dir = _find_dataset_dir(candidates, name, origin)
    if dataset_dir is None:
        dataset_dir = _download(root, name, candidates, origin)
    raw_dir = dataset_dir / "raw"
    if verify:
        for f in raw_file_names(name):
            relpath = f"planetoid/{name}/raw/{f}"
            if is_known(relpath):
                verify_file(raw_dir / f, relpath)
            else:  # pragma: no cover - every Planetoid raw file has a known digest or git blob id
                log.warning("Planetoid %s: no known checksum for %s; not verified", name, f)

    cache = resolve_cache_dir(cache_dir, "planetoid")
    processed_root = _processed_root(raw_dir, name, cache)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            dataset = Planetoid(str(processed_root), name, split="public")
    except Exception as err:
        raise DataError(
            f"cannot load the processed Planetoid cache {processed_root} ({type(err).__name__}: {err}); "
            "delete that folder and it will be rebuilt."
        ) from None
    data = dataset[0]
    data.num_classes = int(dataset.num_classes)
    check_features(data.x, f"{name} ({raw_dir})")
    check_labels(data.y, data.num_classes, f"{name} ({raw_dir})")
    return data
