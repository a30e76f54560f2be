"""Known SHA-256 digests of the offline data files, and a cheap check of a file against them.

The digests are copied from ``shared/data/SHA256SUMS`` (Planetoid raw pickles from ``kimiyoung/planetoid``
and the original UCI files; see ``shared/data/README.md`` for provenance). Keys are paths relative to the data
root, e.g. ``"planetoid/Cora/raw/ind.cora.x"`` or ``"uci/glass/glass.data"``.

``ind.pubmed.allx`` is missing from the shared data, so its SHA-256 is unknown; the README gives its git blob
id instead, which :func:`verify_file` checks in the same way (``git hash-object``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from modgraph import checks
from modgraph.errors import DataError

_SHA256_BY_FOLDER: dict[str, dict[str, str]] = {
    "planetoid/CiteSeer/raw": {
        "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
        "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    },
    "planetoid/Cora/raw": {
        "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
        "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    },
    "planetoid/PubMed/raw": {
        "ind.pubmed.ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
        "ind.pubmed.graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
        "ind.pubmed.test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
        "ind.pubmed.tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
        "ind.pubmed.ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
        "ind.pubmed.x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
        "ind.pubmed.y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
    },
    "uci/balance-scale": {
        "balance-scale.data": "5611187ef7345d807aa8ae22615945ade52a190537c0b1434bd44c3e877c5bb4",
        "balance-scale.names": "09985c630ab2dd5ab0e7c66d88637047a93bd93e04dcec217630c21403c628c3",
    },
    "uci/ecoli": {
        "ecoli.data": "008bd8fbb1d8b34040c3c8c4e987cac2a7ebf116e008b140cc6441be5261ba1d",
        "ecoli.names": "400858154f7e6f2f68199b50cc75f06fcd30b8dc6c75015d045b426232cc2f58",
    },
    "uci/glass": {
        "glass.data": "dd67373f4baf2807345df02cbfef2093d342e61ad0d82a4fb79af43ef8ce449d",
        "glass.names": "00979d348f3d661961dbab63c7aaf1940aafc9075ab4a66a0a57a5b01a63f960",
        "glass.tag": "86ed4cf181eae8f1978efc526112f578ea4ab9e8e88cd555f21700ae53a79488",
    },
    "uci/liver-disorders": {
        "bupa.data": "a166a3e7a6f4dc41aaaedc59a107e57d8adcaeb8821f0873d756982f1ea74c92",
    },
    "uci/sonar": {
        "sonar.all-data": "e90434cdbf00fcf93ffa911fe447ae25606979658e60f1d32e155c3b5240234d",
        "sonar.mines": "f90b24e99b922ac37ec5d043dd93f3e571813137e3f80039cecbfbdac6a483f3",
        "sonar.names": "f3d650ae9772b1a5021d977fe9f8194259f3dddec1922128c8104cf1c4e7250f",
        "sonar.rocks": "f79e789d9ccc291b7aebe6008dc50d74f25c123ecb6dc8f7f1fe2dcfb680ba4e",
    },
    "uci/vehicle": {
        "xaa.dat": "091ec73ae54031aea8432d00caaef101a445eae13196039db9079b0eac13331d",
        "xab.dat": "3fbc55ac03592425521df18d59ba2ed7ddca626b22f84f5fc3253ebda6b82145",
        "xac.dat": "43536f3aadb2a285fa2ba6e13dacc7013c2298fbd728f011e88669bb44856b8d",
        "xad.dat": "371b0de9ba3564d8220d8ad17c5f2f886bafebd2c486de1b0273ceb0c24d3035",
        "xae.dat": "503f9c87feb46dfaab6e3c4275e121640a39c0b30b29f120e679ce8e3fbc7be2",
        "xaf.dat": "460e14ec4746a1464d7a03671e09310695c348d6831452cb53172734a6a70531",
        "xag.dat": "c279f285c353beaa661168e68feeac726cd446f076f717662635267d89006601",
        "xah.dat": "467735394d1a058e15da81d51fd8e1147d425e7f53392ac6b8e730a34a02049e",
        "xai.dat": "feba2f3aad6db050bc7acbd224cd4e0d32846865ab5cfc53cc59baea2e1ff484",
    },
}

#: SHA-256 (hex) of every known file, keyed by its path relative to the data root.
KNOWN_SHA256: dict[str, str] = {
    f"{folder}/{name}": digest for folder, files in _SHA256_BY_FOLDER.items() for name, digest in files.items()
}

#: Size in bytes of every file in ``KNOWN_SHA256`` (a cheap first check that names truncation).
KNOWN_SIZES: dict[str, int] = {
    "planetoid/CiteSeer/raw/ind.citeseer.allx": 595021,
    "planetoid/CiteSeer/raw/ind.citeseer.ally": 55623,
    "planetoid/CiteSeer/raw/ind.citeseer.graph": 61987,
    "planetoid/CiteSeer/raw/ind.citeseer.test.index": 5000,
    "planetoid/CiteSeer/raw/ind.citeseer.tx": 260321,
    "planetoid/CiteSeer/raw/ind.citeseer.ty": 24135,
    "planetoid/CiteSeer/raw/ind.citeseer.x": 31087,
    "planetoid/CiteSeer/raw/ind.citeseer.y": 3014,
    "planetoid/Cora/raw/ind.cora.allx": 257305,
    "planetoid/Cora/raw/ind.cora.ally": 47959,
    "planetoid/Cora/raw/ind.cora.graph": 59847,
    "planetoid/Cora/raw/ind.cora.test.index": 5000,
    "planetoid/Cora/raw/ind.cora.tx": 148025,
    "planetoid/Cora/raw/ind.cora.ty": 28135,
    "planetoid/Cora/raw/ind.cora.x": 22119,
    "planetoid/Cora/raw/ind.cora.y": 4054,
    "planetoid/PubMed/raw/ind.pubmed.ally": 224739,
    "planetoid/PubMed/raw/ind.pubmed.graph": 471808,
    "planetoid/PubMed/raw/ind.pubmed.test.index": 6000,
    "planetoid/PubMed/raw/ind.pubmed.tx": 405505,
    "planetoid/PubMed/raw/ind.pubmed.ty": 12135,
    "planetoid/PubMed/raw/ind.pubmed.x": 23172,
    "planetoid/PubMed/raw/ind.pubmed.y": 854,
    "uci/balance-scale/balance-scale.data": 6250,
    "uci/balance-scale/balance-scale.names": 2222,
    "uci/ecoli/ecoli.data": 19488,
    "uci/ecoli/ecoli.names": 3042,
    "uci/glass/glass.data": 11903,
    "uci/glass/glass.names": 3506,
    "uci/glass/glass.tag": 780,
    "uci/liver-disorders/bupa.data": 7297,
    "uci/sonar/sonar.all-data": 87776,
    "uci/sonar/sonar.mines": 49217,
    "uci/sonar/sonar.names": 5872,
    "uci/sonar/sonar.rocks": 43052,
    "uci/vehicle/xaa.dat": 6140,
    "uci/vehicle/xab.dat": 6175,
    "uci/vehicle/xac.dat": 6150,
    "uci/vehicle/xad.dat": 6182,
    "uci/vehicle/xae.dat": 6174,
    "uci/vehicle/xaf.dat": 6193,
    "uci/vehicle/xag.dat": 6158,
    "uci/vehicle/xah.dat": 6178,
    "uci/vehicle/xai.dat": 6167,
}

#: Git blob ids (``git hash-object``) of files whose SHA-256 is not known.
KNOWN_GIT_BLOBS: dict[str, str] = {
    "planetoid/PubMed/raw/ind.pubmed.allx": "3b86bccf08111c37c632a9dd8ab63db25ea76361",
}

# (resolved path, size, mtime_ns) -> (sha256 hex, git blob sha1 hex); files are small, so hash both at once.
_DIGEST_CACHE: dict[tuple[str, int, int], tuple[str, str]] = {}


def _digests(path: Path, size: int, mtime_ns: int) -> tuple[str, str]:
    key = (str(path.resolve()), size, mtime_ns)
    cached = _DIGEST_CACHE.get(key)
    if cached is not None:
        return cached
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)  # git hash-object
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
            blob.update(chunk)
    digests = (sha256.hexdigest(), blob.hexdigest())
    _DIGEST_CACHE[key] = digests
    return digests


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, cached in-process by (path, size, mtime)."""
    path = checks.path("file_sha256: path", path)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(f"file_sha256: {path} is not a regular file (a folder?); give a file")
    return _digests(path, st.st_size, st.st_mtime_ns)[0]


def is_known(relpath: str) -> bool:
    """True if :func:`verify_file` can check ``relpath`` (a digest or git blob id is known for it)."""
    return relpath in KNOWN_SHA256 or relpath in KNOWN_GIT_BLOBS


def verify_file(path: str | os.PathLike, relpath: str) -> None:
    """Check ``path`` against the known digest of ``relpath``; raise :class:`DataError` if it differs.

    Args:
        path: the file on disk.
        relpath: its path relative to the data root, the key of :data:`KNOWN_SHA256`
            (e.g. ``"uci/glass/glass.data"``).

    Raises:
        DataError: the file is missing, has the wrong size (truncated or appended to) or the wrong digest
            (corrupted or edited); the message names the file, expected vs. found digest and size, and how to
            restore it. Also raised for a ``relpath`` with no known digest (use :func:`is_known` first).

    The digest is computed once per (path, size, mtime) in a process, so repeated checks are free.

    Example:
        >>> verify_file("/work/shared/data/uci/glass/glass.data", "uci/glass/glass.data")
    """
    path = checks.path("verify_file: path", path)
    if not isinstance(relpath, str):
        raise TypeError(f"verify_file: relpath must be the file's path in the data root (a str such as "
                        f"'uci/glass/glass.data'), got {type(relpath).__name__} {relpath!r:.60}")
    if not is_known(relpath):
        raise DataError(
            f"no known checksum for '{relpath}' (file {path}); known files are the Planetoid raw files and "
            "the UCI files listed in shared/data/SHA256SUMS. Pass verify=False to skip the check."
        )
    try:
        st = path.stat()
    except OSError as err:
        raise DataError(f"cannot check {path}: {err.strerror or err}. Restore '{relpath}' in the data root.") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"cannot check {path}: not a regular file (a folder?). Restore '{relpath}' in the data root.")
    sha256, blob = _digests(path, st.st_size, st.st_mtime_ns)
    if relpath in KNOWN_SHA256:
        expected_kind, expected, got = "sha256", KNOWN_SHA256[relpath], sha256
    else:
        expected_kind, expected, got = "git blob id", KNOWN_GIT_BLOBS[relpath], blob
    if got == expected:
        return
    expected_size = KNOWN_SIZES.get(relpath)
    if expected_size is not None and st.st_size < expected_size:
        problem = "is truncated"
    elif expected_size is not None and st.st_size > expected_size:
        problem = "is longer than the original"
    else:
        problem = "is corrupted or edited"
    size_note = f"expected {expected_size} bytes, " if expected_size is not None else ""
    raise DataError(
        f"{path} {problem}: {expected_kind} expected {expected}, got {got} "
        f"({size_note}got {st.st_size} bytes). Restore the original '{relpath}' (see shared/data/README.md "
        "for its source; 'sha256sum -c SHA256SUMS' in the data root checks every file), "
        "or pass verify=False to use it anyway."
    )
