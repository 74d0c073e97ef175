"""Synthetic trial samples for power / false-alarm studies of the gate (shared by the test and the benchmark)."""

from __future__ import annotations

import numpy as np

from inferneo_bench import regress

VERDICTS = (regress.REGRESSION, regress.INCONCLUSIVE, regress.OK, regress.IMPROVEMENT)


def samples(drop: float, reps: int, trials: int = 10, cv: float = 0.03, seed: int = 0, mean: float = 1000.0):
    """(baseline, current) arrays of shape (reps, trials): normal trial-to-trial noise with the given coefficient
    of variation; the current mean is lower by `drop` (a fraction)."""
    rng = np.random.default_rng(seed)
    base = mean * (1 + cv * rng.standard_normal((reps, trials)))
    cur = mean * (1 - drop) * (1 + cv * rng.standard_normal((reps, trials)))
    return base, cur


def rates(drop: float, reps: int = 200, seed: int = 0, settings: regress.Settings | None = None, **kw) -> dict:
    """Fraction of repetitions per verdict for a true throughput drop of `drop` (higher is better)."""
    s = settings or regress.Settings()
    base, cur = samples(drop, reps, seed=seed, **kw)
    verdicts = regress.gate_samples(base, cur, "higher", s.threshold, s.noise_floor, s.alpha)
    return {v: float(np.mean(verdicts == v)) for v in VERDICTS}
