"""The one way cnnspec writes files: whole or not at all, with the umask's permissions."""

import os
import stat

import pytest

from cnnspec.atomic import atomic_path, write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_and_bytes_are_written_and_replace_the_old_file(tmp_path):
    target = tmp_path / "deep" / "er" / "file.txt"
    write_atomic(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    write_atomic(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_file_gets_the_permissions_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomic(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.bin") as tmp, open(tmp, "wb") as f:
        f.write(b"y")
    assert mode(tmp_path / "a.txt") == expected
    assert mode(tmp_path / "b.bin") == expected


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_a_failing_write_leaves_no_temporary(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(tmp_path / "new.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_in_the_target_folder(tmp_path):
    with atomic_path(tmp_path / "x.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.bin.")
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.bin").read_bytes() == b"1"
