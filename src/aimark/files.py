"""Writing files so that a failure at any point leaves the old file as it was.

Writing in place (open with truncation, then write) loses the original when the write fails midway: a
full disk, a signal, or `aimark label doc.md -o doc.md`, whose output is its own input. Every file
aimark writes goes through :func:`write_atomic`: the bytes go to a temporary file in the target's
directory (same file system, so the rename is atomic), are flushed and fsynced, and only then replace
the target; the directory is fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


def _default_mode() -> int:
    # What open() would give a new file: 0666 less the umask (read without changing it for good).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some platforms and file systems cannot open a directory; the rename is done regardless
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None, overwrite: bool = True) -> Path:
    """Write `data` to `path` all at once or not at all.

    `mode`: the new file's permission bits; by default an existing target keeps its own, and a new
    file gets what open() would give it. `overwrite=False` refuses (FileExistsError) when `path`
    exists, checked at the moment of linking, so two writers cannot both win. A symlink is followed:
    the file it names is replaced, the link stays.
    """
    target = Path(os.path.realpath(path))
    existing = None
    try:
        existing = target.stat()
    except FileNotFoundError:
        pass
    if existing is not None and not overwrite:
        raise FileExistsError(17, "File exists", str(path))
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        # A device or pipe (/dev/null, a FIFO): nothing there to lose, and it cannot be renamed over.
        with open(target, "wb") as stream:
            stream.write(data)
        return target
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else _default_mode()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # fails if the target appeared meanwhile
            os.unlink(temporary)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(target.parent)
    return target
