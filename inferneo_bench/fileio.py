"""Atomic file writes, so that a crash, Ctrl-C, SIGTERM or SIGKILL never leaves half a result, profile,
workload or CSV file behind, nor a stray temp file.

On Linux the content is written to an anonymous file (O_TMPFILE: it has no name until it is complete) that is
then linked into place; a process killed mid-write leaves nothing. Elsewhere (or on a filesystem without
O_TMPFILE) a named temp file `.NAME.<pid>.<random>.tmp` in the target folder is renamed into place; one
orphaned by a kill is removed by `clean_stale_temps` (its pid is dead) and ignored by every reader (dotfile).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask  # mkstemp/O_TMPFILE files are private; these files are meant to be shared


_AT_FDCWD, _AT_SYMLINK_FOLLOW = -100, 0x400


def _linkat(src: str, dst: Path) -> None:
    """linkat(2) with AT_SYMLINK_FOLLOW: what links an O_TMPFILE file through /proc/self/fd (os.link does not
    follow that link before Python 3.13)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(str(dst)), _AT_SYMLINK_FOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(dst))


def _link_into_place(fd: int, path: Path) -> None:
    """Give the anonymous file `fd` the name `path` (atomically replacing an existing file)."""
    proc = f"/proc/self/fd/{fd}"
    try:
        _linkat(proc, path)
        return
    except FileExistsError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    _linkat(proc, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _anonymous(folder: Path) -> int:
    """An O_TMPFILE descriptor in `folder` that can be linked into place, or -1 where that is unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return -1
    try:
        fd = os.open(folder, flag | os.O_WRONLY, _mode())
    except OSError:  # a filesystem without O_TMPFILE support
        return -1
    global _LINKAT_OK
    if _LINKAT_OK is None:  # once per process, on a throw-away file: can this system link one into place?
        probe = folder / f".linkprobe.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        probe_fd = os.open(folder, flag | os.O_WRONLY, _mode())
        try:
            _linkat(f"/proc/self/fd/{probe_fd}", probe)
            probe.unlink()
            _LINKAT_OK = True
        except (OSError, AttributeError):
            _LINKAT_OK = False
        finally:
            os.close(probe_fd)
    if not _LINKAT_OK:
        os.close(fd)
        return -1
    return fd


_LINKAT_OK: bool | None = None


@contextmanager
def atomic_writer(path: str | os.PathLike[str], newline: str | None = None) -> Iterator[TextIO]:
    """Yield a text handle; on success the file appears at `path` with normal (umask) permissions.
    `newline` as for open() (the csv module wants "")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _anonymous(path.parent)
    if fd >= 0:
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline=newline, closefd=False) as fh:
                yield fh
            _link_into_place(fd, path)
        finally:
            os.close(fd)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        os.chmod(tmp, _mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove `.NAME.<pid>.<random>.tmp` files of `folder` whose writing process is gone; returns them."""
    import re

    removed = []
    for p in folder.glob(".*.tmp"):
        match = re.search(r"\.(\d+)\.[^.]*\.tmp$", p.name) or re.search(r"-(\d+)\.tmp$", p.name)
        pid = int(match.group(1)) if match else None
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def disk_size(path: str | os.PathLike[str]) -> int:
    """Bytes of a file, or of every file below a folder."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size
