"""Seeded synthetic traffic: arrival processes, length distributions and priority mixes.

Everything is vectorised numpy on one `np.random.Generator(PCG64(seed))`, drawn in a fixed order
(arrivals, prompt lengths, output lengths, max_tokens, priorities), so the same spec and seed give the
same requests on every machine (for a given numpy version: numpy may change a distribution's stream between
releases; the content hash would then show it).

Arrival processes (the first request arrives at t = 0, then n - 1 gaps):
- `poisson` (rate): exponential gaps with mean 1/rate.
- `gamma` (rate, burstiness): vLLM's semantics: gaps ~ Gamma(shape = burstiness, scale = 1/(rate*burstiness));
  mean gap 1/rate, inter-arrival CV = 1/sqrt(burstiness); burstiness 1 is Poisson, < 1 burstier.
- `constant` (rate): every gap exactly 1/rate.
- `offline`: every request at t = 0 (throughput test).
- `onoff` (rate, on_s, off_s): Poisson at `rate` during `on_s`-second bursts separated by `off_s` of silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from inferneo_bench import validation
from inferneo_bench.errors import UserError
from inferneo_bench.workload.spec import MAX_PRIORITY, MIN_PRIORITY, RequestSpec, build_requests
from inferneo_bench.workload.traces import TraceData

ARRIVAL_PROCESSES = ("poisson", "gamma", "constant", "offline", "onoff")
_ARRIVAL_KEYS = {
    "poisson": {"process", "rate"},
    "gamma": {"process", "rate", "burstiness"},
    "constant": {"process", "rate"},
    "onoff": {"process", "rate", "on_s", "off_s"},
}
LENGTH_DISTS = ("fixed", "uniform", "normal", "lognormal", "empirical")
# Measured: generating 10^7 requests (columns, then RequestSpecs) peaks at 2.8 GB, ~280 B a request.
GENERATE_BYTES_PER_REQUEST = 300


def _num(
    spec: Mapping[str, Any],
    key: str,
    what: str,
    *,
    default: float | None = None,
    positive: bool = True,
    maximum: float | None = None,
) -> float:
    value = spec.get(key, default)
    if value is None:
        raise UserError(f"{what}: missing '{key}'")
    if positive:
        return float(validation.number(value, f"{what}: '{key}'", above=0, maximum=maximum))
    return float(validation.number(value, f"{what}: '{key}'", maximum=maximum))


def _tokens(spec: Mapping[str, Any], key: str, what: str, default: int | None = None) -> int:
    """A token-count field of a length spec: a whole number in 1..MAX_TOKENS."""
    value = spec.get(key, default)
    if value is None:
        raise UserError(f"{what}: missing '{key}'")
    return validation.tokens(value, f"{what}: '{key}'")


def _check_keys(spec: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UserError(f"{what}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def arrivals(spec: Mapping[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival times (seconds, non-decreasing, first at 0) for n requests."""
    if not isinstance(spec, Mapping):
        raise UserError(f"arrival: expected a mapping like {{process: poisson, rate: 4}}, got {spec!r}")
    process = spec.get("process", "poisson")
    what = f"arrival process '{process}'"
    if process == "offline":
        _check_keys(spec, {"process"}, what)
        return np.zeros(n)
    if process not in ARRIVAL_PROCESSES:
        raise UserError(f"unknown arrival process {process!r}; supported: {', '.join(ARRIVAL_PROCESSES)}")
    _check_keys(spec, _ARRIVAL_KEYS[process], what)
    rate = _num(spec, "rate", what)
    if process == "poisson":
        gaps = rng.exponential(1.0 / rate, size=max(n - 1, 0))
    elif process == "gamma":
        burstiness = _num(spec, "burstiness", what, default=1.0)
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=max(n - 1, 0))
    elif process == "constant":
        gaps = np.full(max(n - 1, 0), 1.0 / rate)
    else:  # onoff
        on_s = _num(spec, "on_s", what)
        off_s = _num(spec, "off_s", what, positive=False)
        busy = np.concatenate(([0.0], np.cumsum(rng.exponential(1.0 / rate, size=max(n - 1, 0)))))
        return busy + np.floor(busy / on_s) * off_s
    return np.concatenate(([0.0], np.cumsum(gaps)))[:n]


def lengths(
    spec: Any,
    n: int,
    rng: np.random.Generator,
    what: str,
    empirical: Mapping[str, np.ndarray] | None = None,
    empirical_index: np.ndarray | None = None,
) -> np.ndarray:
    """n integer lengths >= 1 from a distribution spec. `spec` may be a plain int (fixed)."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"dist": "fixed", "value": spec}
    if not isinstance(spec, Mapping):
        raise UserError(
            f"{what}: expected a number or a mapping like {{dist: uniform, min: 32, max: 256}}, got {spec!r}"
        )
    dist = spec.get("dist")
    where = f"{what} ({dist})"
    bounds = {"min", "max"}
    if dist == "fixed":
        _check_keys(spec, {"dist", "value"}, where)
        values = np.full(n, _tokens(spec, "value", where))
    elif dist == "uniform":
        _check_keys(spec, {"dist"} | bounds, where)
        lo, hi = _tokens(spec, "min", where), _tokens(spec, "max", where)
        if hi < lo:
            raise UserError(f"{where}: max {hi} < min {lo}")
        values = rng.integers(lo, hi + 1, size=n)
    elif dist == "normal":
        _check_keys(spec, {"dist", "mean", "std"} | bounds, where)
        limit = float(validation.MAX_TOKENS)
        values = rng.normal(
            _num(spec, "mean", where, maximum=limit), _num(spec, "std", where, positive=False, maximum=limit), size=n
        )
    elif dist == "lognormal":
        # Given the mean and std of the lengths themselves (not of their log): sigma^2 = ln(1 + cv^2).
        _check_keys(spec, {"dist", "mean", "std", "mu", "sigma"} | bounds, where)
        limit = float(validation.MAX_TOKENS)
        if "mu" in spec:
            mu = _num(spec, "mu", where, positive=False, maximum=float(np.log(limit)))
            sigma = _num(spec, "sigma", where, positive=False, maximum=10.0)
        else:
            mean, std = _num(spec, "mean", where, maximum=limit), _num(spec, "std", where, maximum=limit)
            sigma = float(np.sqrt(np.log1p((std / mean) ** 2)))
            mu = float(np.log(mean) - sigma**2 / 2)
        values = rng.lognormal(mu, sigma, size=n)
    elif dist == "empirical":
        _check_keys(spec, {"dist", "path", "column", "values"} | bounds, where)
        if "values" in spec:
            raw = spec["values"]
            if not isinstance(raw, list) or not raw:
                raise UserError(f"{where}: 'values' must be a non-empty list of token counts")
            pool = np.asarray([validation.tokens(v, f"{where}: 'values'") for v in raw], dtype=np.float64)
            values = pool[rng.integers(0, pool.size, size=n)]
        else:
            if empirical is None or empirical_index is None:
                raise UserError(f"{where}: needs 'path' (a length-only dataset) or 'values'")
            column = spec.get("column")
            if column not in empirical:
                raise UserError(f"{where}: 'column' must be one of {', '.join(empirical)}, got {column!r}")
            values = empirical[column][empirical_index]
    else:
        raise UserError(f"{what}: unknown length distribution {dist!r}; supported: {', '.join(LENGTH_DISTS)}")
    lo = _tokens(spec, "min", where, default=1)
    hi = _tokens(spec, "max", where) if spec.get("max") is not None else None
    values = np.rint(values)
    values = np.clip(values, max(lo, 1), hi if hi is not None else None)
    if values.size and not values.max() <= validation.MAX_TOKENS:  # a long lognormal tail, say
        raise UserError(
            f"{where}: draws lengths up to {values.max():.3g} tokens, above the {validation.MAX_TOKENS:,} limit; "
            "set 'max'"
        )
    return values.astype(np.int64)


def priorities(spec: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """Priorities from a fixed int or a categorical mix {priority: weight} (weights need not sum to 1)."""
    if spec is None:
        return np.full(n, 5, dtype=np.int64)
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {spec: 1.0}
    if not isinstance(spec, Mapping) or not spec:
        raise UserError(f"priority: expected an int or a mix like {{1: 0.2, 5: 0.6, 10: 0.2}}, got {spec!r}")
    levels, weights = [], []
    for key, weight in spec.items():
        try:
            level = int(key)
        except (TypeError, ValueError):
            raise UserError(f"priority mix: level {key!r} is not an integer") from None
        if not MIN_PRIORITY <= level <= MAX_PRIORITY:
            raise UserError(f"priority mix: level {level} outside {MIN_PRIORITY}..{MAX_PRIORITY}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise UserError(f"priority mix: weight of {level} must be a number >= 0, got {weight!r}")
        levels.append(level)
        weights.append(float(weight))
    total = sum(weights)
    if total <= 0:
        raise UserError("priority mix: weights sum to 0")
    return np.asarray(levels, dtype=np.int64)[rng.choice(len(levels), size=n, p=np.asarray(weights) / total)]


SYNTHETIC_KEYS = {"num_requests", "arrival", "prompt_tokens", "output_tokens", "max_tokens", "priority"}


def generate_columns(
    spec: Mapping[str, Any], seed: int, empirical: Mapping[str, np.ndarray] | None = None
) -> TraceData:
    """Columns from a synthetic spec (the `synthetic:` block of a workload YAML).

    `max_tokens` (optional): a length spec for the cap a scheduler sees; the generated output is clipped
    to it (a server stops at max_tokens). Without it, max_tokens = output_tokens.
    `empirical`: columns {"prompt": ..., "output": ...} of a length-only dataset; prompt and output drawn
    with `dist: empirical` share one row index per request, so real prompt/output pairs stay together.
    """
    if not isinstance(spec, Mapping):
        raise UserError(f"synthetic: expected a mapping, got {spec!r}")
    _check_keys(spec, SYNTHETIC_KEYS, "synthetic")
    n = spec.get("num_requests")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"synthetic: 'num_requests' must be an integer >= 1, got {validation.excerpt(n)}")
    validation.check_memory(
        n * GENERATE_BYTES_PER_REQUEST,
        f"synthetic: generating num_requests {n:,}",
        "use fewer requests (--num-requests)",
    )
    rng = np.random.default_rng(seed)
    arrival = arrivals(spec.get("arrival", {"process": "poisson", "rate": 1.0}), n, rng)
    index = None
    if empirical is not None:
        size = len(next(iter(empirical.values())))
        index = rng.integers(0, size, size=n)
    if spec.get("prompt_tokens") is None or spec.get("output_tokens") is None:
        raise UserError("synthetic: needs 'prompt_tokens' and 'output_tokens' (a number or a distribution)")
    prompt = lengths(spec["prompt_tokens"], n, rng, "prompt_tokens", empirical, index)
    output = lengths(spec["output_tokens"], n, rng, "output_tokens", empirical, index)
    max_tokens = None
    if spec.get("max_tokens") is not None:
        max_tokens = lengths(spec["max_tokens"], n, rng, "max_tokens", empirical, index)
        output = np.minimum(output, max_tokens)
    prio = priorities(spec.get("priority"), n, rng)
    return TraceData(
        format="synthetic",
        arrival_s=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        max_tokens=max_tokens,
        priority=prio,
    )


def generate(
    spec: Mapping[str, Any], seed: int, empirical: Mapping[str, np.ndarray] | None = None
) -> list[RequestSpec]:
    """Requests from a synthetic spec (see generate_columns)."""
    c = generate_columns(spec, seed, empirical)
    return build_requests(c.arrival_s, c.prompt_tokens, c.output_tokens, c.max_tokens, c.priority)
