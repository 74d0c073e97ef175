"""Atomic writes, so that a crash, Ctrl-C, SIGTERM or SIGKILL never leaves half a result, profile, workload or
CSV file behind.

A file is written to an anonymous file (Linux O_TMPFILE: it has no name until it is complete) that is then
linked into place: a process killed mid-write leaves nothing. Elsewhere (or on a filesystem without O_TMPFILE)
a named temp file `.NAME.<pid>.<random>.tmp` is renamed into place. A folder (a result entry) is written into a
hidden `.NAME.<pid>.<random>.tmp` folder and renamed into place. A temp left by a killed process (its pid is
gone) is removed by `clean_stale_temps` (a new run in that folder, `recover`), and ignored by every reader.
"""

from __future__ import annotations

import os
import shutil
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
    """Remove the `.NAME.<pid>.<random>.tmp` (or `.old`) files and folders of `folder` whose writing process is
    gone; returns them."""
    import re

    removed = []
    for p in [*folder.glob(".*.tmp"), *folder.glob(".*.old")]:
        match = re.search(r"\.(\d+)\.[^.]*\.(tmp|old)$", p.name) or re.search(r"-(\d+)\.tmp$", p.name)
        pid = int(match.group(1)) if match else None
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty hidden folder beside `path`; on success it is renamed to `path` (replacing a folder
    already there), so readers see the old folder or the whole new one, never a partial one. On failure the
    temporary folder is removed. A file (not a folder) at `path` is an error: it is never replaced. The temp
    folder's name carries the pid, so that one left by a killed process is found stale (clean_stale_temps)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: a file is in the way of the result folder; move it or choose another name")
    prefix = f".{path.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes the folder private; results are meant to be shared
        if path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".old"))
            os.rename(path, old / "entry")
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def disk_size(path: str | os.PathLike[str]) -> int:
    """Bytes of a file, or of every file below a folder."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size
