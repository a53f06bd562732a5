"""Atomic writes: a write that fails at any point leaves the old file byte for byte (issue 13.7).

The failure is real, not mocked: a child process runs under RLIMIT_FSIZE, so its write() fails with
EFBIG once a file would pass the limit, as on a full disk.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aimark.files import PRIVATE_MODE, write_atomic

_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a kill
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    script = sys.argv[2]
    sys.argv = sys.argv[3:]  # the script sees its own arguments from sys.argv[0]
    exec(compile(open(script).read(), script, "exec"))
""")


def run_with_file_size_limit(limit: int, script: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
    body = tmp_path / "script.py"
    body.write_text(script)
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), str(body), *args],
                          check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_failed_write_keeps_the_original(tmp_path) -> None:
    target = tmp_path / "doc.md"
    original = os.urandom(11_201)
    target.write_bytes(original)
    script = "import sys\nfrom aimark.files import write_atomic\nwrite_atomic(sys.argv[0], b'x' * 20_000)\n"
    result = run_with_file_size_limit(4096, script, str(target), tmp_path=tmp_path)
    assert result.returncode != 0 and "File too large" in result.stderr
    assert target.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md", "script.py"]  # no temporary left


def test_fsync_failure_keeps_the_original(tmp_path, monkeypatch) -> None:
    target = tmp_path / "doc.md"
    target.write_bytes(b"original")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new content")
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.md"]


def test_mode_kept_or_set(tmp_path) -> None:
    target = tmp_path / "script.sh"
    target.write_bytes(b"old")
    target.chmod(0o750)
    write_atomic(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o750 and target.read_bytes() == b"new"
    write_atomic(target, b"secret", mode=PRIVATE_MODE)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_new_file_gets_the_umask_mode(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "new.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_refuses_to_overwrite_when_asked(tmp_path) -> None:
    target = tmp_path / "k.json"
    target.write_bytes(b"old key")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"new key", overwrite=False)
    assert target.read_bytes() == b"old key" and [p.name for p in tmp_path.iterdir()] == ["k.json"]
    assert write_atomic(tmp_path / "fresh.json", b"k", overwrite=False).read_bytes() == b"k"


def test_symlink_target_replaced_link_kept(tmp_path) -> None:
    real = tmp_path / "real.md"
    real.write_bytes(b"old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_key_overwrite_that_fails_keeps_the_old_key(tmp_path) -> None:
    """`keygen --force` used to truncate the old key before the new one was written."""
    from aimark.keys import generate_key, save_key

    path = save_key(generate_key("kgw"), tmp_path / "k.json")
    original = path.read_bytes()
    script = ("import sys\nfrom aimark.keys import generate_key, save_key\n"
              "save_key(generate_key('kgw'), sys.argv[0], overwrite=True)\n")
    result = run_with_file_size_limit(64, script, str(path), tmp_path=tmp_path)
    assert result.returncode != 0
    assert path.read_bytes() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_devices_and_directories(tmp_path) -> None:
    assert write_atomic(os.devnull, b"discarded") == Path(os.devnull)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, b"through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, b"x")
