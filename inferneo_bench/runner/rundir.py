"""A run folder belongs to one run.

`OUT/<run-id>/` is created, locked and probed for writing before the first request is sent, so a bad `--out`
(a file, a read-only folder, a full disk) fails in a second with exit 2 instead of after the run. A folder
that already holds files is refused (a re-used `--run-id` would otherwise mix configurations in one folder,
and compare/check would pool them as trials of one strategy) unless `--overwrite`, which clears the files this
tool writes first. The lock (`.lock`, an flock held for the session) refuses a concurrent run of the same id;
the kernel drops it when the process dies, even by SIGKILL.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from inferneo_bench.errors import UserError
from inferneo_bench.fileio import clean_stale_temps
from inferneo_bench.validation import human_bytes

LOCK = ".lock"
OURS = ("*.json", "*.requests.csv", "*.journal.jsonl", ".*.tmp", LOCK, "sweep.md")
PROBE_BYTES = 64 * 1024


def _ours(path: Path) -> bool:
    """A file or folder this tool writes into a run folder: result entries, schema-1 result files, CSVs,
    journals, temps, the lock; a sweep's strategy folders (of result entries), its sweep.md and plots."""
    if path.is_dir():
        from inferneo_bench.results import is_result

        if is_result(path):
            return True
        children = list(path.iterdir())
        if path.name == "plots" and (path.parent / "sweep.json").is_file():
            return all(c.suffix == ".png" for c in children)
        return bool(children) and all(_ours(c) for c in children)
    return any(path.match(pattern) for pattern in OURS)


class RunDir:
    """Owns one run folder for a session (use as a context manager)."""

    def __init__(self, out: Path, run_id: str, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.path = self.out / run_id
        self.overwrite = overwrite
        self._lock_fd: int | None = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def open(self) -> Path:
        """Create, lock, clear (with overwrite) and probe the folder for writing."""
        for folder, name in ((self.out, "--out"), (self.path, "the run folder")):
            if folder.exists() and not folder.is_dir():
                raise UserError(f"{name} {folder}: is a file, not a folder; choose a folder for the results")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"--out {self.out}: cannot create {self.path} ({exc.strerror}); choose a writable folder"
            ) from None
        self.lock()
        clean_stale_temps(self.path)
        present = sorted(p for p in self.path.iterdir() if p.name != LOCK)
        if present:
            more = f" and {len(present) - 3} more" if len(present) > 3 else ""
            names = ", ".join(p.name for p in present[:3]) + more
            if not self.overwrite:
                raise UserError(
                    f"{self.path}: the run folder already holds {len(present)} file(s) of an earlier run ({names}); "
                    "choose another --run-id, or pass --overwrite to clear it first"
                )
            foreign = [p.name for p in present if not _ours(p)]
            if foreign:
                raise UserError(
                    f"{self.path}: --overwrite clears only inferneo-bench's own files, and this folder also holds "
                    f"{', '.join(foreign[:3])}; choose another --run-id"
                )
            for p in present:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
        self._probe()
        return self.path

    def lock(self) -> None:
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot write here ({exc.strerror}); choose a writable --out") from None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: the non-empty-folder rule still refuses a second run
            pass
        except OSError:
            os.close(fd)
            try:
                owner = path.read_text().strip() or "?"
            except OSError:
                owner = "?"
            raise UserError(
                f"{self.path}: in use by another inferneo-bench run (pid {owner}); wait for it or choose another "
                "--run-id"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise UserError(f"{self.path}: cannot write here ({exc.strerror}); choose a writable --out") from None
        self._lock_fd = fd

    def _probe(self) -> None:
        probe = self.path / f".probe-{os.getpid()}.tmp"
        try:
            with probe.open("wb") as fh:
                fh.write(b"\0" * PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise UserError(
                f"--out {self.out}: cannot write results to {self.path} ({exc.strerror}); choose a writable folder "
                "with free space"
            ) from None
        finally:
            probe.unlink(missing_ok=True)

    def check_space(self, estimate_bytes: float) -> None:
        """Refuse a session whose result files (`estimate_bytes`) would not fit on the disk."""
        free = shutil.disk_usage(self.path).free
        if estimate_bytes > free:
            raise UserError(
                f"--out {self.out}: the results need about {human_bytes(estimate_bytes)} and only "
                f"{human_bytes(free)} is free there; free some space or choose another --out"
            )

    def release(self) -> None:
        """Drop the lock; remove the folder when nothing was written into it."""
        if self._lock_fd is None:
            return
        os.close(self._lock_fd)
        self._lock_fd = None
        (self.path / LOCK).unlink(missing_ok=True)
        try:
            self.path.rmdir()  # only succeeds when empty
        except OSError:
            pass
