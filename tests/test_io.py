"""modgraph.io: one atomic writer; a failing writer leaves the old file and no temporary file behind."""

import errno
import json
import os

import pytest

from modgraph.io import atomic_write, atomic_write_json, atomic_write_text


def test_writes_text_binary_and_json(tmp_path):
    assert atomic_write_text(tmp_path / "a" / "t.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert atomic_write(tmp_path / "b.bin", lambda f: f.write(b"\x00\x01"), binary=True).read_bytes() == b"\x00\x01"
    path = atomic_write_json(tmp_path / "c.json", {"x": [1, 2.5]})
    assert json.loads(path.read_text()) == {"x": [1, 2.5]} and path.read_text().endswith("\n")
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})  # strict JSON by default (json's message)
    assert not (tmp_path / "nan.json").exists()


def test_a_failing_writer_leaves_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "old")

    def broken(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "out.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    """Writing under a file (afile/sub/x.txt) names that file with ENOTDIR; mkdir alone said "File exists"."""
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for target in (afile / "x.txt", afile / "sub" / "x.txt"):
        with pytest.raises(NotADirectoryError) as err:
            atomic_write_text(target, "x")
        assert err.value.errno == errno.ENOTDIR and err.value.filename == str(afile)
        assert err.value.strerror == os.strerror(errno.ENOTDIR)
    assert afile.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    atomic_write_text(tmp_path / "new" / "deeper" / "x.txt", "x")  # missing folders are still created
    assert (tmp_path / "new" / "deeper" / "x.txt").read_text() == "x"
