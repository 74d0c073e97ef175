"""Finding runs on disk: `results/latest`, and folders that hold several runs.

`run` points OUT/latest at the run folder it just wrote: a relative symlink, or, where links cannot be made
(some file systems, Windows without privileges), a one-line pointer file holding the run folder's name.
`compare` and `check` accept `latest` either way (`resolve`). A folder that holds several run folders
(`results/`) is listed instead of loaded (`runs_below`): reading every file of every run can take minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inferneo_bench.errors import UserError

LATEST = "latest"


def mark_latest(out: Path, run_id: str) -> Path:
    """Point OUT/latest at OUT/<run_id> (replacing an older link or pointer file); returns the link's path."""
    link = out / LATEST
    if link.is_dir() and not link.is_symlink():
        return link  # a real folder named 'latest' (a run id the user chose): leave it alone
    tmp = out / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(run_id, target_is_directory=True)
    except OSError:
        tmp.write_text(run_id + "\n", encoding="utf-8")
    os.replace(tmp, link)
    return link


def resolve(path: str | os.PathLike[str]) -> Path:
    """`path`, or the run folder a `latest` pointer file names (a symlink resolves by itself)."""
    p = Path(path)
    if p.name == LATEST and p.is_file():
        name = p.read_text(encoding="utf-8").strip()
        target = p.parent / name
        if not name or os.sep in name or not target.is_dir():
            raise UserError(f"{p}: points at {name!r}, which is not a run folder beside it; re-run or name the run")
        return target
    return p


@dataclass
class RunFolder:
    path: Path
    files: list[Path]  # its results: result folders (schema 2) or result files (schema 1)
    bytes: int
    modified: float

    @property
    def strategies(self) -> list[str]:
        return sorted({f.stem.split("-trial")[0] for f in self.files})


def _results_in(folder: Path) -> list[Path]:
    """The results directly in `folder`: result folders and schema-1 result files (results.is_result)."""
    from inferneo_bench.results import is_result

    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and is_result(p))


def runs_below(folder: Path) -> list[RunFolder]:
    """The run folders (folders that directly hold results) below `folder`, newest first; only names, sizes,
    times and the first bytes of each result.json are read. A folder holding results itself, or holding only
    one run, gives []."""
    from inferneo_bench.fileio import disk_size
    from inferneo_bench.results import RESULT_FILE

    if _results_in(folder):
        return []
    runs: list[RunFolder] = []
    for sub in sorted(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()):
        if (sub / RESULT_FILE).is_file():
            continue  # a result folder, not a run folder
        files = _results_in(sub)
        if files:
            stamps = [(f / RESULT_FILE if f.is_dir() else f).stat().st_mtime for f in files]
            runs.append(RunFolder(sub, files, sum(disk_size(f) for f in files), max(stamps)))
    if len(runs) < 2:
        return []
    return sorted(runs, key=lambda r: r.modified, reverse=True)


def describe_runs(runs: list[RunFolder], limit: int = 20) -> list[str]:
    """One line per run: folder, when, how many files, size, strategies (short names)."""
    from inferneo_bench.console import human_size

    short = {"fixed_size": "fixed", "latency_optimized": "latency", "throughput_optimized": "throughput"}
    every = {"fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous"}
    lines = []
    for r in runs[:limit]:
        when = datetime.fromtimestamp(r.modified).strftime("%Y-%m-%d %H:%M")
        names = "all strategies" if set(r.strategies) == every else ", ".join(short.get(n, n) for n in r.strategies)
        count = f"{len(r.files)} result{'s' * (len(r.files) != 1)}"
        lines.append(f"  {r.path}  {when}  {count}, {human_size(r.bytes)}: {names}")
    if len(runs) > limit:
        lines.append(f"  ... and {len(runs) - limit} older runs")
    return lines
