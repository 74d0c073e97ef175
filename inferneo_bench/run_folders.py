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
    files: list[Path]
    bytes: int
    modified: float

    @property
    def strategies(self) -> list[str]:
        return sorted({f.stem.split("-trial")[0] for f in self.files})


def runs_below(folder: Path) -> list[RunFolder]:
    """The run folders (folders that directly hold result files) below `folder`, newest first; only names,
    sizes and times are read. A folder holding result files itself, or holding only one run, gives []."""
    if any(f.suffix == ".json" for f in folder.glob("*.json")):
        return []
    runs: list[RunFolder] = []
    for sub in sorted(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()):
        files = sorted(f for f in sub.glob("*.json") if not f.name.startswith("."))
        if files:
            stats = [f.stat() for f in files]
            runs.append(RunFolder(sub, files, sum(s.st_size for s in stats), max(s.st_mtime for s in stats)))
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
        count = f"{len(r.files)} file{'s' * (len(r.files) != 1)}"
        lines.append(f"  {r.path}  {when}  {count}, {human_size(r.bytes)}: {names}")
    if len(runs) > limit:
        lines.append(f"  ... and {len(runs) - limit} older runs")
    return lines
