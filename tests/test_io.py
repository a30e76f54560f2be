"""modgraph.io: one atomic writer; a failing writer leaves the old file and no temporary file behind."""

import errno
import json
import os
import stat

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


def test_the_whole_content_is_flushed_and_synced_before_the_rename(tmp_path, monkeypatch):
    """At the fsync the temporary file holds every byte already (a flush first), and the rename comes after."""
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        fsync(fd)

    def spy_replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert events == [("fsync", len("héllo".encode())), ("replace", "t.txt")]


def test_the_temporary_file_is_in_the_target_folder(tmp_path):
    """Next to the target, so the final rename never crosses file systems."""
    seen = []

    def writer(f):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        f.write("x")

    atomic_write(tmp_path / "t.txt", writer)
    (during,) = seen
    assert len(during) == 1 and during[0] != "t.txt"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_an_interrupt_during_the_write_leaves_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "old")

    def interrupted(f):
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_rewriting_a_file_keeps_its_permissions(tmp_path):
    # as open(path, "w") does: a private file stays private, whatever the umask
    path = tmp_path / "private.yaml"
    path.write_text("old")
    os.chmod(path, 0o600)
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(path, "new")
        atomic_write_text(tmp_path / "fresh.yaml", "new")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "fresh.yaml").stat().st_mode) == 0o644


def test_a_folder_at_the_target_is_named_not_the_temporary_file(tmp_path):
    folder = tmp_path / "out.json"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as err:  # before: "Is a directory: '.../.out.json.x1y2.tmp' -> '...'"
        atomic_write_json(folder, {"a": 1})
    assert err.value.filename == str(folder) and err.value.filename2 is None
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"] and list(folder.iterdir()) == []


def test_a_folder_that_cannot_be_written_in_names_the_target(tmp_path, monkeypatch):
    import tempfile

    def refused(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(dir, prefix + "abc" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as err:  # before: named the temporary file '.x.txt.abc.tmp'
        atomic_write_text(tmp_path / "x.txt", "x")
    assert err.value.filename == str(tmp_path / "x.txt") and err.value.errno == errno.EACCES
