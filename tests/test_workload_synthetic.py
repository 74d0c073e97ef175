"""Synthetic generators: rates and inter-arrival CV on large seeded samples, distributions, determinism.

Tolerances are five standard errors of the estimate, so a correct generator fails with probability < 1e-6
for any seed (the seed is fixed anyway, so the tests are deterministic). With n gaps of coefficient of
variation c, the mean gap has relative standard error c / sqrt(n); the sample standard deviation of a
gamma(k) variable has relative standard error sqrt(2 + 6/k) / (2 sqrt(n)) (excess kurtosis 6/k; the
exponential is k = 1), so the CV estimate's relative error is at most the sum of the two.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from inferneo_bench.errors import UserError
from inferneo_bench.workload.spec import content_hash
from inferneo_bench.workload.synthetic import arrivals, generate, lengths, priorities

N = 200_000


def _tolerances(k: float) -> tuple[float, float]:
    cv = 1 / math.sqrt(k)
    rate_tol = 5 * cv / math.sqrt(N)
    cv_tol = rate_tol + 5 * math.sqrt(2 + 6 / k) / (2 * math.sqrt(N))
    return rate_tol, cv_tol


def _rate_and_cv(t: np.ndarray) -> tuple[float, float]:
    gaps = np.diff(t)
    return 1 / gaps.mean(), gaps.std() / gaps.mean()


def test_poisson_rate_and_cv() -> None:
    t = arrivals({"process": "poisson", "rate": 8.0}, N + 1, np.random.default_rng(1))
    rate, cv = _rate_and_cv(t)
    rate_tol, cv_tol = _tolerances(1.0)  # ~1.1% and ~2.7%
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert rate == pytest.approx(8.0, rel=rate_tol)
    assert cv == pytest.approx(1.0, rel=cv_tol)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 4.0])
def test_gamma_rate_and_cv_follow_vllm_semantics(burstiness: float) -> None:
    t = arrivals({"process": "gamma", "rate": 3.0, "burstiness": burstiness}, N + 1, np.random.default_rng(2))
    rate, cv = _rate_and_cv(t)
    rate_tol, cv_tol = _tolerances(burstiness)
    assert rate == pytest.approx(3.0, rel=rate_tol)
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=cv_tol)


def test_constant_offline_onoff() -> None:
    rng = np.random.default_rng(0)
    assert arrivals({"process": "constant", "rate": 4}, 5, rng).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert arrivals({"process": "offline"}, 3, rng).tolist() == [0.0, 0.0, 0.0]
    t = arrivals({"process": "onoff", "rate": 50.0, "on_s": 1.0, "off_s": 9.0}, 5_000, rng)
    assert np.all(np.diff(t) >= 0)
    assert np.all(np.mod(t, 10.0) < 1.0)  # every arrival inside an on-period [10k, 10k + 1)
    assert (len(t) - 1) / t[-1] == pytest.approx(5.0, rel=0.1)  # 50/s for 1 s in every 10 s


def test_length_distributions() -> None:
    rng = np.random.default_rng(0)
    fixed = lengths(7, 4, rng, "p")
    assert fixed.tolist() == [7, 7, 7, 7]
    uni = lengths({"dist": "uniform", "min": 3, "max": 5}, 10_000, rng, "p")
    assert set(uni.tolist()) == {3, 4, 5}
    norm = lengths({"dist": "normal", "mean": 100, "std": 50, "min": 20, "max": 150}, 50_000, rng, "p")
    assert norm.min() == 20 and norm.max() == 150
    logn = lengths({"dist": "lognormal", "mean": 500, "std": 300}, 200_000, rng, "p")
    assert logn.mean() == pytest.approx(500, rel=0.02) and logn.std() == pytest.approx(300, rel=0.05)
    assert logn.dtype == np.int64 and logn.min() >= 1
    emp = lengths({"dist": "empirical", "values": [10, 20]}, 1000, rng, "p")
    assert set(emp.tolist()) == {10, 20}


def test_priority_mix() -> None:
    rng = np.random.default_rng(0)
    p = priorities({1: 1, 10: 3}, 100_000, rng)
    assert set(p.tolist()) == {1, 10}
    assert (p == 10).mean() == pytest.approx(0.75, abs=0.01)
    assert priorities(None, 3, rng).tolist() == [5, 5, 5]
    assert priorities(9, 2, rng).tolist() == [9, 9]
    for bad, match in (({0: 1}, "outside 1..10"), ({5: -1}, "weight"), ({"x": 1}, "not an integer")):
        with pytest.raises(UserError, match=match):
            priorities(bad, 3, rng)


SPEC = {
    "num_requests": 1_000,
    "arrival": {"process": "gamma", "rate": 5, "burstiness": 0.5},
    "prompt_tokens": {"dist": "lognormal", "mean": 300, "std": 200, "max": 2048},
    "output_tokens": {"dist": "uniform", "min": 1, "max": 300},
    "max_tokens": 256,
    "priority": {1: 1, 5: 2, 10: 1},
}


def test_same_spec_and_seed_same_requests() -> None:
    a, b, c = generate(SPEC, 7), generate(SPEC, 7), generate(SPEC, 8)
    assert a == b and content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(c)
    assert [r.request_id for r in a[:3]] == ["r0", "r1", "r2"]
    assert all(r.max_tokens == 256 and r.output_tokens <= 256 for r in a)  # output clipped at max_tokens
    assert all(r.prompt_tokens <= 2048 for r in a)


def test_empirical_pairs_share_rows() -> None:
    data = {"prompt": np.array([10, 20, 30]), "output": np.array([1, 2, 3])}
    spec = {
        "num_requests": 200,
        "arrival": {"process": "offline"},
        "prompt_tokens": {"dist": "empirical", "column": "prompt"},
        "output_tokens": {"dist": "empirical", "column": "output"},
    }
    reqs = generate(spec, 0, data)
    assert {(r.prompt_tokens, r.output_tokens) for r in reqs} == {(10, 1), (20, 2), (30, 3)}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({**SPEC, "num_requests": 0}, "num_requests"),
        ({**SPEC, "arrival": {"process": "weibull", "rate": 1}}, "unknown arrival process 'weibull'; supported"),
        ({**SPEC, "arrival": {"process": "poisson", "rate": -1}}, "'rate' must be > 0"),
        ({**SPEC, "arrival": {"process": "poisson", "rte": 1}}, "unknown key"),
        ({**SPEC, "prompt_tokens": {"dist": "zipf"}}, "unknown length distribution 'zipf'"),
        ({**SPEC, "prompt_tokens": {"dist": "uniform", "min": 9, "max": 3}}, "max 3 < min 9"),
        ({**SPEC, "extra": 1}, "unknown key"),
    ],
)
def test_bad_synthetic_specs(spec, match) -> None:
    with pytest.raises(UserError, match=match):
        generate(spec, 0)
