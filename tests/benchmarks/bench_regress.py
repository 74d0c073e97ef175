"""Power, false alarms and speed of `inferneo-bench check` (issue 9). Run: python tests/benchmarks/bench_regress.py

Synthetic trial samples: normal trial-to-trial noise with 3% coefficient of variation, 10 trials per side,
a true throughput drop of 8%, 0% and 5%. Prints the verdict rates of the shipped rule (200 repetitions with the
seeds the test pins, and 20,000 for tighter estimates), the rates of simpler rules for contrast, power against the
number of trials, and how long a check of real result files takes.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inferneo_bench import regress  # noqa: E402
from tests.regress_fixtures import summary, write_trials  # noqa: E402
from tests.regress_power import rates, samples  # noqa: E402

SEEDS = {0.08: 8, 0.0: 0, 0.05: 5}  # the seeds tests/test_regress_power.py pins


def fmt(r: dict) -> str:
    return "  ".join(f"{k.lower()} {v * 100:5.1f}%" for k, v in r.items())


def rule_variants(drop: float, reps: int, seed: int, **kw) -> dict[str, float]:
    """Regression rates of alternative rules on the same samples (t = 5%, floor 1%, alpha 0.01)."""
    base, cur = samples(drop, reps, seed=seed, **kw)
    st = regress.shift_test(np.log(base), np.log(cur), 0.01)
    change, hi = np.expm1(st.shift), np.expm1(st.high)
    naive = np.median(cur, axis=1) / np.median(base, axis=1) - 1
    return {
        "shipped (p, interval, estimate >= t)": float(np.mean((st.p_less < 0.01) & (hi < -0.01) & (change <= -0.05))),
        "test + interval only (no threshold)": float(np.mean((st.p_less < 0.01) & (hi < -0.01))),
        "interval entirely beyond -t": float(np.mean(hi <= -0.05)),
        "naive: median ratio <= -t": float(np.mean(naive <= -0.05)),
    }


def main() -> None:
    print("verdict rates, 3% CV, 10 trials per side, threshold 5%, noise floor 1%, alpha 0.01 (higher is better)")
    for reps in (200, 20_000):
        print(f"-- {reps} repetitions")
        for drop, seed in SEEDS.items():
            t0 = time.perf_counter()
            r = rates(drop, reps=reps, seed=seed)
            ms = (time.perf_counter() - t0) * 1000
            print(f"true drop {drop * 100:4.1f}%: {fmt(r)}   ({ms:.0f} ms)")
    print("-- regression rates of other rules on the same samples (20,000 repetitions)")
    for drop, seed in SEEDS.items():
        for name, value in rule_variants(drop, 20_000, seed).items():
            print(f"true drop {drop * 100:4.1f}%  {name:38s} {value * 100:5.1f}%")
    print("-- the same rules on a noisy runner: 10% CV, 5 trials per side, no true change (20,000 repetitions)")
    for name, value in rule_variants(0.0, 20_000, 1, cv=0.10, trials=5).items():
        print(f"true drop  0.0%  {name:38s} {value * 100:5.1f}%")
    for cv, n in ((0.10, 5), (0.10, 10), (0.05, 5), (0.03, 5)):
        print(f"shipped verdicts, no true change, {cv * 100:.0f}% CV, {n:2d} trials/side: "
              f"{fmt(rates(0.0, reps=20_000, seed=1, cv=cv, trials=n))}")  # fmt: skip
    print("-- REGRESSION rate for a true 8% drop against trials per side (3% CV, 5,000 repetitions)")
    for n in (3, 4, 5, 7, 10, 15, 20):
        r = rates(0.08, reps=5_000, seed=n, trials=n)
        print(
            f"{n:2d} trials/side: regression {r['REGRESSION'] * 100:5.1f}%  "
            f"inconclusive {r['INCONCLUSIVE'] * 100:5.1f}%"
        )
    with tempfile.TemporaryDirectory() as tmp:
        strategies = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
        base, cur = samples(0.0, len(strategies), seed=42)
        for i, s in enumerate(strategies):
            write_trials(Path(tmp) / "base", s, [summary(float(v)) for v in base[i]])
            write_trials(Path(tmp) / "cur", s, [summary(float(v)) for v in cur[i]])
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            regress.check([Path(tmp) / "base"], [Path(tmp) / "cur"])
            times.append(time.perf_counter() - t0)
        print(
            "-- check of 6 strategies x 10 trials per side (120 files, 3 metrics): "
            f"median {np.median(times) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
