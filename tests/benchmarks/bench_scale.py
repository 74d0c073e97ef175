"""Scale: an hour of a production trace through every strategy, before and after, in one run (issue 18).

Goals on the 2-core project machine:
- `run --engine sim --profile tiny-cpu --strategy all --workload azure-conv` (19,366 requests): <= 90 s wall in
  total, peak RSS <= 1.5 GB, <= 20 MB on disk per strategy;
- `compare` and `check` of the six results: <= 5 s and <= 1 GB each;
- the torch replay loop's harness overhead (summary `harness_overhead_frac`) <= 2% on the CPU tiny model.

"Before" is the code at --ref (default: main), extracted with `git archive` into a temporary folder and run in
subprocesses; "after" is this checkout. Every figure is measured here, in this run: wall seconds, CPU seconds
(user + system of the process: what a quiet machine's wall time would be) and peak RSS of each process (wait4),
bytes on disk. The old code keeps every record in memory (~4.4 GB for one static strategy), so its runs go one
strategy per process, and its compare/check read --before-compare results (default 2: the issue's own case)
rather than six (~7 GB); the report says so. On a shared machine read the CPU column and the ratios.

    python tests/benchmarks/bench_scale.py [--ref main] [--workload azure-conv] [--before-strategies all]
        [--before-compare 2] [--skip-before] [--torch-requests 48] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
GOALS = {"run_wall_s": 90.0, "run_rss_mb": 1536.0, "disk_mb": 20.0, "compare_s": 5.0, "compare_mb": 1024.0}


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    rss_mb: float
    rc: int
    output: str


def measure(cmd: list[str], code_root: Path, cwd: Path) -> Measured:
    """Run `python -m inferneo_bench ...` from `code_root` in `cwd`; wall, CPU and peak RSS of that process.

    Spawned with posix_spawn through /bin/sh (which execs Python), not forked from this process: a forked
    child's peak RSS (ru_maxrss) would start at this process's size."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "COLUMNS": "160"}
    with tempfile.TemporaryFile() as out:
        actions = [(os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)]
        argv = ["sh", "-c", 'cd "$0" && exec "$@"', str(cwd), sys.executable, "-m", "inferneo_bench", *cmd]
        start = time.perf_counter()
        pid = os.posix_spawn("/bin/sh", argv, env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, rc, text)


def disk_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def extract(ref: str, dest: Path) -> str:
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    archive = subprocess.run(["git", "archive", commit.strip()], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit.strip()


def replay_wall(result_path: Path) -> float | None:
    """The replay loop's own wall time, as the result records it (telemetry.harness.replay_wall_s). A
    schema-1 file (hundreds of MB) is not parsed: telemetry is its last key, so its tail holds the figure."""
    import re

    meta = result_path / "result.json" if result_path.is_dir() else result_path
    try:
        with meta.open("rb") as fh:
            fh.seek(max(0, meta.stat().st_size - 65536))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    m = re.search(r'"replay_wall_s":\s*([0-9.eE+-]+)', tail)
    return float(m.group(1)) if m else None


def sim_args(workload: str, strategy: str, out: Path, run_id: str) -> list[str]:
    return ["run", "--engine", "sim", "--profile", "tiny-cpu", "--strategy", strategy, "--workload", workload,
            "--out", str(out), "--run-id", run_id, "--quiet"]  # fmt: skip


def torch_overhead(code_root: Path, out: Path, n: int) -> tuple[list[float | None], Measured]:
    """harness_overhead_frac of continuous and fixed on `n` offline requests, real tiny model on the CPU."""
    args = ["run", "--engine", "torch", "--model", "tiny", "--strategy", "continuous,fixed", "--workload", "offline",
            "--num-requests", str(n), "--min-duration", "0", "--min-requests", "1", "--out", str(out),
            "--run-id", "torch", "--quiet"]  # fmt: skip
    m = measure(args, code_root, code_root)
    fracs = []
    for line in m.output.split():
        p = Path(line)
        meta = p / "result.json" if p.is_dir() else p
        if meta.is_file():
            fracs.append(json.loads(meta.read_text())["summary"].get("harness_overhead_frac"))
    return fracs, m


def fmt(x: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{unit}"


def ratio(before: float | None, after: float | None) -> str:
    return "n/a" if not before or not after else f"{before / after:.1f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="main", help="git ref of the 'before' code (default: main)")
    ap.add_argument("--workload", default="azure-conv")
    ap.add_argument("--before-strategies", default="all", help="comma-separated, or all (each in its own process)")
    ap.add_argument("--before-compare", type=int, default=2, help="results the old compare/check read (memory)")
    ap.add_argument("--skip-before", action="store_true", help="measure only this checkout")
    ap.add_argument("--torch-requests", type=int, default=48)
    ap.add_argument("--keep", type=Path, help="keep the results in this folder (default: a temporary one)")
    args = ap.parse_args()

    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench_scale.")
    work = args.keep or Path(tmp_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"bench_scale: workload {args.workload}; {os.cpu_count()} CPUs; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} at start")  # fmt: skip

    before: dict[str, dict] = {}
    before_cmp = before_chk = None
    before_torch: tuple[list[float | None], Measured] | None = None
    if not args.skip_before:
        old_root = work / "before-code"
        old_root.mkdir(exist_ok=True)
        commit = extract(args.ref, old_root)
        print(f"before: {args.ref} = {commit[:12]} (git archive into {old_root})")
        names = STRATEGIES if args.before_strategies == "all" else tuple(args.before_strategies.split(","))
        for s in names:
            m = measure(sim_args(args.workload, s, work / "before", "b"), old_root, old_root)
            path = work / "before" / "b" / f"{s}.json"
            before[s] = {"m": m, "disk": disk_mb(path) if path.exists() else None, "replay": replay_wall(path)}
            line = f"  before {s:22} {m.wall_s:7.1f} s wall {m.cpu_s:7.1f} s CPU {m.rss_mb:7.0f} MB peak "
            print(
                line + f"{fmt(before[s]['disk'], ' MB')} on disk (rc {m.rc}; load {os.getloadavg()[0]:.1f})", flush=True
            )
        picks = [s for s in ("continuous", "fixed_size", *STRATEGIES) if s in before][: args.before_compare]
        picks = list(dict.fromkeys(picks))
        files = [str(work / "before" / "b" / f"{s}.json") for s in picks]
        if files:
            before_cmp = (len(files), measure(["compare", *files, "--format", "csv"], old_root, old_root))
            sel = work / "before-sel"
            sel.mkdir(exist_ok=True)
            for f in files:
                target = sel / Path(f).name
                if not target.exists():
                    os.link(f, target)
            before_chk = (
                len(files),
                measure(["check", "--baseline", str(sel), "--current", str(sel)], old_root, old_root),
            )
            print(f"  before compare of {len(files)}: {before_cmp[1].wall_s:.1f} s, {before_cmp[1].rss_mb:.0f} MB; "
                  f"check: {before_chk[1].wall_s:.1f} s, {before_chk[1].rss_mb:.0f} MB", flush=True)  # fmt: skip
        before_torch = torch_overhead(old_root, work / "before", args.torch_requests)

    print(f"after: this checkout ({ROOT})", flush=True)
    run_all = measure(sim_args(args.workload, "all", work / "after", "a"), ROOT, ROOT)
    if run_all.rc not in (0, 4):  # 4: saved, some result INVALID (the run's own verdict; not this benchmark's)
        print(run_all.output[-3000:])
        raise SystemExit("after: the run failed")
    after = {s: work / "after" / "a" / s for s in STRATEGIES}
    entries = [str(p) for p in after.values()]
    cmp_ = measure(["compare", *entries, "--format", "csv"], ROOT, ROOT)
    cmp6 = measure(["compare", str(work / "after" / "a")], ROOT, ROOT)
    chk = measure(
        ["check", "--baseline", str(work / "after" / "a"), "--current", str(work / "after" / "a")], ROOT, ROOT
    )
    after_torch = torch_overhead(ROOT, work / "after", args.torch_requests)
    load_end = os.getloadavg()

    # ---- the goal table --------------------------------------------------------------------------------
    print()
    print(f"## sim run: {args.workload}, every strategy (load average at end {load_end[0]:.1f})")
    print()
    print("| strategy | before: process wall / CPU / peak RSS | before: replay wall | after: replay wall | "
          "replay speed-up | before: disk | after: disk | disk ratio |")  # fmt: skip
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for s in STRATEGIES:
        b = before.get(s)
        ar = replay_wall(after[s])
        ad = disk_mb(after[s])
        if b:
            m = b["m"]
            proc = f"{m.wall_s:,.1f} s / {m.cpu_s:,.1f} s / {m.rss_mb:,.0f} MB"
            print(f"| {s} | {proc} | {fmt(b['replay'], ' s')} | {fmt(ar, ' s')} | {ratio(b['replay'], ar)} | "
                  f"{fmt(b['disk'], ' MB')} | {fmt(ad, ' MB')} | {ratio(b['disk'], ad)} |")  # fmt: skip
        else:
            print(f"| {s} | not measured | | {fmt(ar, ' s')} | | | {fmt(ad, ' MB')} | |")
    print()
    bw = sum(b["m"].wall_s for b in before.values()) if before else None
    bc = sum(b["m"].cpu_s for b in before.values()) if before else None
    brss = max((b["m"].rss_mb for b in before.values()), default=None)
    bdisk = max((b["disk"] or 0.0 for b in before.values()), default=None)
    adisk = max(disk_mb(p) for p in after.values())
    n_before = len(before)
    note = "" if n_before in (0, 6) else f" ({n_before} of 6 strategies)"

    def verdict(value: float, goal: float) -> str:
        return "PASS" if value <= goal else "MISS"

    print("| goal | before | after | goal | after vs goal |")
    print("|---|--:|--:|--:|---|")
    print(f"| run --strategy all: wall | {fmt(bw, ' s')}{note} (one process per strategy) | {run_all.wall_s:,.1f} s | "
          f"<= 90 s | {verdict(run_all.wall_s, GOALS['run_wall_s'])} |")  # fmt: skip
    print(f"| run --strategy all: CPU (user+sys) | {fmt(bc, ' s')}{note} | {run_all.cpu_s:,.1f} s | (wall on a quiet "
          f"machine) | {verdict(run_all.cpu_s, GOALS['run_wall_s'])} |")  # fmt: skip
    print(f"| run: peak RSS | {fmt(brss, ' MB', 0)} (largest single strategy) | {run_all.rss_mb:,.0f} MB | <= 1,536 MB "
          f"| {verdict(run_all.rss_mb, GOALS['run_rss_mb'])} |")  # fmt: skip
    print(f"| disk per strategy (largest) | {fmt(bdisk, ' MB')} | {adisk:,.1f} MB | <= 20 MB | "
          f"{verdict(adisk, GOALS['disk_mb'])} |")  # fmt: skip

    def cmd_row(label: str, before: tuple[int, Measured] | None, m: Measured, has_before: bool = True) -> None:
        if before is not None:
            was = f"{before[1].wall_s:,.1f} s / {before[1].rss_mb:,.0f} MB ({before[0]} results)"
        else:
            was = "not measured" if has_before else ""
        ok = f"{verdict(m.wall_s, GOALS['compare_s'])}, {verdict(m.rss_mb, GOALS['compare_mb'])}"
        print(f"| {label} | {was} | {m.wall_s:,.2f} s / {m.rss_mb:,.0f} MB | <= 5 s, <= 1 GB | {ok} |")

    cmd_row("compare of the six (csv)", before_cmp, cmp_)
    cmd_row("compare of the run folder (table)", None, cmp6, has_before=False)
    cmd_row("check (six vs six)", before_chk, chk)

    def overhead(t: tuple[list[float | None], Measured] | None) -> str:
        if t is None:
            return "not measured"
        return ", ".join("n/a" if f is None else f"{f * 100:.2f}%" for f in t[0]) or f"failed (rc {t[1].rc})"

    worst = max((f for f in after_torch[0] if f is not None), default=None)
    print(f"| torch tiny CPU harness overhead (continuous, fixed; {args.torch_requests} requests) | "
          f"{overhead(before_torch)} | {overhead(after_torch)} | <= 2% | "
          f"{'n/a' if worst is None else verdict(worst, 0.02)} |")  # fmt: skip
    print()
    print(f"after run: rc {run_all.rc}; compare rc {cmp_.rc}; check rc {chk.rc}; results in {work}"
          + ("" if args.keep else " (deleted)"))  # fmt: skip
    tmp_ctx.cleanup() if not args.keep else None


if __name__ == "__main__":
    main()
