"""Sweep benchmarks (issue 12, item 5), run by hand; each prints its figures with the machine's load average.

    python tests/benchmarks/bench_sweep.py speed      # sim sweep of azure-conv's first 900 s (target < 5 min)
    python tests/benchmarks/bench_sweep.py fidelity   # sim vs torch capacity per strategy (target: within 10%)

`speed` runs `inferneo-bench sweep --engine sim --profile tiny-cpu --strategy all --workload azure-conv
--duration 900 --context-policy truncate --slo ttft_ms=2000,tpot_ms=100` (truncate: 12% of the window's
requests exceed the tiny model's 2,048-token context and would cap attainment at 88%, under the 90% target)
and prints its wall time and points.

`fidelity` sweeps the same short workload (`default`, 50 requests; SLO TTFT <= 500 ms, TPOT <= 50 ms) on the
real tiny model (CPU, 1 thread: what the shipped tiny-cpu profile was measured with) and on the simulator with
that profile, and prints both capacities per strategy, their ratio, and each sweep's wall time. A profile is a
snapshot of the machine's speed: run it on a quiet machine (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("results/bench-sweep")
SLO_FIDELITY = "ttft_ms=500,tpot_ms=50"
FIDELITY = ["--strategy", "all", "--workload", "default", "--num-requests", "50", "--slo", SLO_FIDELITY]


def sweep(run_id: str, *args: str) -> tuple[float, dict]:
    folder = OUT / run_id
    shutil.rmtree(folder, ignore_errors=True)
    cmd = ["inferneo-bench", "sweep", *args, "--out", str(OUT), "--run-id", run_id, "--quiet", "--no-plots"]
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    return wall, json.loads((folder / "sweep.json").read_text())


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def speed() -> None:
    print(f"CPU: {os.cpu_count()} cores; {load()}")
    wall, data = sweep(
        "azure-900",
        "--engine", "sim", "--profile", "tiny-cpu", "--strategy", "all", "--workload", "azure-conv",
        "--duration", "900", "--context-policy", "truncate", "--slo", "ttft_ms=2000,tpot_ms=100",
    )  # fmt: skip
    points = data["points"]
    print(f"wall {wall:.0f} s for {len(points)} points ({wall / len(points):.1f} s a point); {load()}")
    for s in data["strategies"]:
        print(f"  {s['strategy']:<22} capacity {s['capacity_rps']} req/s, {s['points']} points")


def fidelity() -> None:
    print(f"CPU: {os.cpu_count()} cores; {load()}")
    torch_wall, torch = sweep("fidelity-torch", "--engine", "torch", "--model", "tiny", "--device", "cpu",
                              "--threads", "1", *FIDELITY)  # fmt: skip
    after = load()
    sim_wall, sim = sweep("fidelity-sim", "--engine", "sim", "--profile", "tiny-cpu", *FIDELITY)
    print(f"torch sweep {torch_wall:.0f} s ({after} at its end); sim sweep {sim_wall:.1f} s")
    print(f"{'strategy':<22} {'torch req/s':>12} {'sim req/s':>10} {'sim/torch':>10}")
    by_name = {s["strategy"]: s for s in sim["strategies"]}
    worst = 0.0
    for t in torch["strategies"]:
        s = by_name.get(t["strategy"], {})
        tc, sc = t["capacity_rps"], s.get("capacity_rps")
        ratio = sc / tc if tc and sc else None
        worst = max(worst, abs(ratio - 1)) if ratio else worst
        print(f"{t['strategy']:<22} {tc or 0:>12.2f} {sc or 0:>10.2f} {ratio or 0:>10.3f}")
    print(f"largest difference {worst:.1%} (target <= 10%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["speed", "fidelity"])
    args = ap.parse_args()
    if shutil.which("inferneo-bench") is None:
        sys.exit("inferneo-bench is not on PATH: pip install -e . first")
    speed() if args.what == "speed" else fidelity()


if __name__ == "__main__":
    main()
