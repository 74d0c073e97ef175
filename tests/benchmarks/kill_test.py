"""Kill test (issue 15, acceptance): SIGTERM, double SIGINT and SIGKILL at random points of a run leave either a
complete result or a recoverable journal, and no stray temp file.

    python tests/benchmarks/kill_test.py [--tries 20] [--seed 0] [--workload azure-conv] [--duration 900]

Each try starts `inferneo-bench run` (simulated engine, virtual clock: a few seconds of loading, replaying
and saving) in its own process group, waits a random time drawn over the run's measured length (startup,
replay and save all get hit), sends the signal(s), and inspects the run folder:
- "result": a result file that loads, whose counts add up (completed + failed = requests) and whose summary
  recomputes exactly from its records (status completed, or interrupted for a stopped run);
- "recovered": no result, but a journal that `inferneo-bench recover` turns into such a result;
- "before start": killed while loading (nothing was measured; nothing may be left but an empty folder);
- "LOST": anything else (a journal that does not recover, a result that does not load). Must be 0.
and counts stray `*.tmp` files and folders right after the kill (a result entry is written into a hidden temp
folder renamed into place: SIGKILL mid-save leaves it, until `recover` or the next run in that folder removes
it; any left after that is LOST). Prints one table row per signal, with the exit
codes seen (130/143: stopped and saved; 0 or 4 (VALID or INVALID): the run had finished; -15/-2: the signal
came after the session had saved and returned, while Python exited; -9: SIGKILL).
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "inferneo_bench"]


def run_args(out: Path, args: argparse.Namespace) -> list[str]:
    return [
        *CLI,
        "run",
        "--engine",
        "sim",
        "--profile",
        "tiny-cpu",
        "--strategy",
        "continuous",
        "--workload",
        args.workload,
        "--duration",
        str(args.duration),
        "--out",
        str(out),
        "--run-id",
        "k",
        "-q",
    ]


def inspect(folder: Path) -> tuple[str, str]:
    """(outcome, detail) of a run folder after a kill."""
    from inferneo_bench import results
    from inferneo_bench.metrics import summarize

    def sound(path: Path) -> str:
        r = results.load(path)
        s = r.summary
        assert s["completed"] + s["failed"] == len(r.requests), "counts do not add up"
        assert summarize(r.requests, r.steps, r.telemetry, s["slo"]) == s, "summary does not recompute"
        return f"{r.run.status}, {s['completed']}/{len(r.requests)} completed"

    if not folder.exists() or not any(p for p in folder.iterdir() if p.name != ".lock"):
        return "before start", ""
    result = folder / "continuous"  # the result's entry folder
    journal = folder / "continuous.journal.jsonl"
    try:
        if result.exists():
            return "result", sound(result)
        if journal.exists():
            proc = subprocess.run([*CLI, "recover", str(folder)], capture_output=True, text=True)
            if proc.returncode != 0:
                return "LOST", proc.stderr.strip()[:120]
            if not result.exists() and "nothing measured" in proc.stdout:
                return "before start", "(journal of a run killed while starting, removed)"
            return "recovered", sound(result)
    except Exception as exc:  # noqa: BLE001 - a kill test reports, it does not crash
        return "LOST", f"{type(exc).__name__}: {exc}"[:120]
    return "LOST", f"unexpected files: {sorted(p.name for p in folder.iterdir())}"


def one_try(kind: str, delay: float, args: argparse.Namespace, work: Path, i: int) -> tuple[str, str, int, int]:
    out = work / f"{kind}-{i}"
    proc = subprocess.Popen(
        run_args(out, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    time.sleep(delay)
    if proc.poll() is None:
        if kind == "SIGKILL":
            proc.send_signal(signal.SIGKILL)
        elif kind == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:  # double Ctrl-C: the second while the first is being handled (often during the save)
            proc.send_signal(signal.SIGINT)
            time.sleep(random.uniform(0.0, 0.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    strays = len(list(out.rglob("*.tmp"))) if out.exists() else 0  # right after the kill
    outcome, detail = inspect(out / "k")
    left = len(list(out.rglob("*.tmp"))) if out.exists() else 0  # after recover (which removes stale temps)
    if left:
        outcome, detail = "LOST", f"{left} stray temp(s) after recover"
    if b"Traceback" in err or b"internal error" in err:
        detail += f" [stderr: {err.decode().strip().splitlines()[-1][:100]}]"
    return outcome, detail, strays, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workload", default="azure-conv")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of the workload to replay")
    args = parser.parse_args()
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="killtest-"))
    start = time.perf_counter()
    timing = subprocess.run(run_args(work / "timing", args), capture_output=True)
    if timing.returncode not in (0, 4):  # 4: saved but INVALID (azure-conv rejects long prompts on the tiny model)
        raise SystemExit(f"the uninterrupted run failed: {timing.stderr.decode()[-300:]}")
    length = time.perf_counter() - start
    print(f"one uninterrupted run: {length:.1f} s (kills drawn uniformly in 0.2 .. {length:.1f} s)\n")
    print(
        "| signal | tries | complete result | recovered from journal | killed before start | LOST |"
        " temps left by the kill | exit codes |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|---|")
    details = []
    for kind in ("SIGTERM", "double SIGINT", "SIGKILL"):
        counts = {"result": 0, "recovered": 0, "before start": 0, "LOST": 0}
        strays = 0
        codes: dict[int, int] = {}
        for i in range(args.tries):
            delay = random.uniform(0.2, length)
            outcome, detail, stray, code = one_try(kind, delay, args, work, i)
            counts[outcome] += 1
            strays += stray
            codes[code] = codes.get(code, 0) + 1
            details.append(f"{kind} #{i + 1} at {delay:.2f} s: exit {code}, {outcome} {detail}")
        seen = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
        print(
            f"| {kind} | {args.tries} | {counts['result']} | {counts['recovered']} | {counts['before start']} | "
            f"{counts['LOST']} | {strays} | {seen} |",
            flush=True,
        )
    print("\nper try:\n" + "\n".join(details))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
