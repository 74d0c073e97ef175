"""Sweep benchmarks (issue 12, item 5), run by hand; each prints its figures with the machine's load average.

    python tests/benchmarks/bench_sweep.py speed [--strategy all] [--jobs 1]
    python tests/benchmarks/bench_sweep.py fidelity [--reprofile]

`speed` runs `inferneo-bench sweep --engine sim --profile tiny-cpu --workload azure-conv --duration 900
--context-policy truncate --slo ttft_ms=2000,tpot_ms=100` (truncate: 12% of the window's requests exceed the
tiny model's 2,048-token context and would cap attainment at 88%, under the 90% target) and prints its wall
time and points (target: all six strategies in under 5 minutes on a 2-core CPU).

`fidelity` sweeps one short workload (`default`, 50 requests or --requests; TTFT <= 500 ms, TPOT <= 50 ms) on the real
tiny model (CPU, 1 thread, as the shipped tiny-cpu profile was measured) and on the simulator, and prints the
capacities per strategy with their ratio (target: within 10%) and each sweep's wall time. With `--reprofile`
it first profiles the engine (`inferneo-bench profile --model tiny --device cpu --threads 1`, ~3 minutes) and
simulates with that fresh profile as well as the shipped one: a profile is a snapshot of the machine's speed,
so compare engines measured in the same conditions, on a quiet machine (the load average is printed).

It also compares the saturation points step by step: every request at once gives both engines the same
schedule (the same batches, step for step), so the median ratio of their step times per strategy says how far
the profile is from the machine during that point, apart from the capacity search's sensitivity to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("results/bench-sweep")
FIDELITY = ["--strategy", "all", "--workload", "default", "--slo", "ttft_ms=500,tpot_ms=50"]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def sweep(run_id: str, *args: str) -> tuple[float, dict]:
    folder = OUT / run_id
    shutil.rmtree(folder, ignore_errors=True)
    cmd = ["inferneo-bench", "sweep", *args, "--out", str(OUT), "--run-id", run_id, "--quiet", "--no-plots"]
    print("$", " ".join(cmd), f"  [{load()}]", flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    print(f"  {wall:.1f} s  [{load()}]", flush=True)
    return wall, json.loads((folder / "sweep.json").read_text())


def speed(strategy: str, jobs: int) -> None:
    print(f"CPU: {os.cpu_count()} cores")
    wall, data = sweep(
        "azure-900",
        "--engine", "sim", "--profile", "tiny-cpu", "--strategy", strategy, "--workload", "azure-conv",
        "--duration", "900", "--context-policy", "truncate", "--slo", "ttft_ms=2000,tpot_ms=100", "--jobs", str(jobs),
    )  # fmt: skip
    points = data["points"]
    print(f"{len(points)} points, {wall / len(points):.1f} s a point")
    for s in data["strategies"]:
        print(f"  {s['strategy']:<22} capacity {s['capacity_rps']} req/s, {s['points']} points")


def saturation_ratio(torch_run: str, sim_run: str, strategy: str) -> float | None:
    """Median torch / sim step time over the saturation point's steps (the same schedule on both)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from inferneo_bench import results

    try:
        a = results.load(OUT / torch_run / strategy / "saturation").steps
        b = results.load(OUT / sim_run / strategy / "saturation").steps
    except Exception:  # noqa: BLE001 - a missing point is reported as '-'
        return None
    if [(s.batch_size, s.new_tokens, s.padded_tokens) for s in a] != [
        (s.batch_size, s.new_tokens, s.padded_tokens) for s in b
    ]:
        return None
    return statistics.median(x.step_ms / y.step_ms for x, y in zip(a, b, strict=True) if y.step_ms > 0)


def fidelity(reprofile: bool, requests: int) -> None:
    spec = [*FIDELITY, "--num-requests", str(requests)]
    print(f"CPU: {os.cpu_count()} cores")
    profiles = {"shipped": "tiny-cpu"}
    if reprofile:
        OUT.mkdir(parents=True, exist_ok=True)
        fresh = OUT / "tiny-cpu-fresh.json"
        cmd = ["inferneo-bench", "profile", "--model", "tiny", "--device", "cpu", "--threads", "1", "--out", str(fresh)]
        print("$", " ".join(cmd), f"  [{load()}]", flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"  {time.perf_counter() - t:.0f} s  [{load()}]", flush=True)
        profiles["fresh"] = str(fresh)
    torch_wall, torch = sweep("fidelity-torch", "--engine", "torch", "--model", "tiny", "--device", "cpu",
                              "--threads", "1", *spec)  # fmt: skip
    sims = {
        name: sweep(f"fidelity-sim-{name}", "--engine", "sim", "--profile", p, *spec) for name, p in profiles.items()
    }
    header = f"{'strategy':<22} {'torch':>7}"
    for name in sims:
        header += f" {'sim ' + name:>13} {'ratio':>6} {'step x':>7}"
    print(f"\ncapacity (req/s) at TTFT <= 500 ms, TPOT <= 50 ms for 90%; torch sweep {torch_wall:.0f} s, sim "
          + ", ".join(f"{n} {w:.1f} s" for n, (w, _) in sims.items()))  # fmt: skip
    print(header + "   (step x: torch/sim step time at the saturation point)")
    worst = {name: 0.0 for name in sims}
    for t in torch["strategies"]:
        tc = t["capacity_rps"]
        line = f"{t['strategy']:<22} {tc or 0:>7.2f}"
        for name, (_, data) in sims.items():
            sc = next((s["capacity_rps"] for s in data["strategies"] if s["strategy"] == t["strategy"]), None)
            ratio = sc / tc if tc and sc else None
            if ratio:
                worst[name] = max(worst[name], abs(ratio - 1))
            step = saturation_ratio("fidelity-torch", f"fidelity-sim-{name}", t["strategy"])
            line += f" {sc or 0:>13.2f} {ratio or 0:>6.2f} {step or 0:>7.2f}"
        print(line)
    for name, w in worst.items():
        print(f"sim {name}: largest capacity difference {w:.1%} (target <= 10%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["speed", "fidelity"])
    ap.add_argument("--strategy", default="all", help="speed: strategies to sweep")
    ap.add_argument("--jobs", type=int, default=1, help="speed: strategies in parallel")
    ap.add_argument("--reprofile", action="store_true", help="fidelity: also simulate with a fresh profile")
    ap.add_argument("--requests", type=int, default=50, help="fidelity: requests of the default workload")
    args = ap.parse_args()
    if shutil.which("inferneo-bench") is None:
        sys.exit("inferneo-bench is not on PATH: pip install -e . first")
    if args.what == "speed":
        speed(args.strategy, args.jobs)
    else:
        fidelity(args.reprofile, args.requests)


if __name__ == "__main__":
    main()
