"""The statistical CI gate: is the current run worse than the baseline, beyond noise?

Each trial (one result file) is one sample of a summary metric. Per (strategy, label, metric) the gate works on
log values, so that a change is a ratio and the effect is symmetric for "x1.05" and "x0.95":

* effect: the Hodges-Lehmann shift estimate, the median of all m*n pairwise differences
  log(current_j) - log(baseline_i), reported as a ratio change exp(shift) - 1;
* interval: the distribution-free interval for that shift that inverts the Mann-Whitney U test: with the sorted
  differences D(1) <= ... <= D(mn) and k the largest integer with P(U <= k) <= alpha under the null (exact U
  distribution for small samples, normal approximation beyond), the interval is [D(k+1), D(mn-k)]. Each end is
  a one-sided (1 - alpha) bound, so the two-sided level is 1 - 2*alpha (98% for alpha 0.01), and "the interval
  excludes 0 on the harmful side" is exactly "the one-sided test rejects at alpha";
* test: the one-sided Mann-Whitney U test (scipy.stats) in the direction of harm (exact without ties, normal
  approximation with tie correction otherwise).

Decision, with g the change in the metric's good direction (g < 0 is harm) and t the threshold, f the noise floor:
REGRESSION when p_worse < alpha, the whole interval lies beyond -f, and g <= -t; INCONCLUSIVE when g <= -t but
one of the other two fails; IMPROVEMENT symmetrically (p_better < alpha, interval beyond +f, g >= t); else OK.
Deterministic inputs (every trial of each side equal: one trial per side, or a simulator) compare exactly.
See docs/check.md for the reasoning and the measured power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from inferneo_bench import results
from inferneo_bench.errors import ResultFileError, UserError

REGRESSION = "REGRESSION"
IMPROVEMENT = "IMPROVEMENT"
INCONCLUSIVE = "INCONCLUSIVE"
OK = "OK"
NA = "n/a"
MISSING = "missing"
EXIT_CODES = {OK: 0, IMPROVEMENT: 0, REGRESSION: 1, INCONCLUSIVE: 3}

# Summary keys the gate knows, with their good direction (None: no natural direction, give one explicitly).
_LATENCY = {
    f"{stat}_{m}_ms": "lower"
    for m in ("ttft", "tpot", "itl", "e2el", "queue")
    for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99", "max")
}
KNOWN_METRICS: dict[str, str | None] = {
    "output_throughput": "higher",
    "request_throughput": "higher",
    "total_token_throughput": "higher",
    "request_goodput": "higher",
    "completed": "higher",
    "failed": "lower",
    "rejected": "lower",
    "cancelled": "lower",
    "duration": "lower",
    **_LATENCY,
    "mean_batch_size": "higher",
    "p50_batch_size": "higher",
    "max_batch_size": "higher",
    "padding_waste_frac": "lower",
    "idle_slot_frac": "lower",
    "preemptions": "lower",
    "gpu_util_mean": None,
    "gpu_mem_peak_mb": "lower",
    "gpu_power_mean_w": "lower",
    "energy_j": "lower",
    "energy_per_output_token_j": "lower",
    "arrival_lag_p50_ms": "lower",
    "arrival_lag_p99_ms": "lower",
    "arrival_lag_max_ms": "lower",
    "harness_overhead_frac": "lower",
    "total_requests": None,
    "warmup_requests": None,
    "total_input_tokens": None,
    "total_output_tokens": None,
}
DEFAULT_METRICS = ("output_throughput", "p99_ttft_ms", "p99_tpot_ms", "request_goodput")
OPTIONAL_DEFAULTS = ("request_goodput",)  # only when some trial on both sides has a value (SLOs were set)
COMPAT_FIELDS = (
    ("workload", "workload.content_hash"),
    ("model", "model.name"),
    ("engine", "run.engine"),
    ("device type", "model.device_type"),
)
_EXACT_MAX_PAIRS = 10_000  # exact U distribution up to m*n pairs; normal approximation beyond
_EPS = 1e-12  # so that a change of exactly the threshold counts as "at least" despite float rounding


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str  # "higher" or "lower": which way is better
    threshold: float | None = None  # fraction; None: the global --threshold


@dataclass(frozen=True)
class Settings:
    threshold: float = 0.05  # smallest change (fraction) worth failing CI for
    noise_floor: float = 0.01  # the interval must clear this (fraction) before a change counts
    alpha: float = 0.01  # one-sided test level; the interval's two-sided level is 1 - 2*alpha
    power: float = 0.9  # for the "trials needed" advice on INCONCLUSIVE


def parse_metric(spec: str) -> MetricSpec:
    """`NAME[:higher|lower][:THRESHOLD%]` -> MetricSpec. Unknown names and bad parts are one-line UserErrors."""
    parts = [p.strip() for p in spec.split(":")]
    name = parts[0]
    if name not in KNOWN_METRICS:
        raise UserError(f"--metric {spec!r}: unknown metric {name!r}; known metrics: {', '.join(KNOWN_METRICS)}")
    direction, threshold = KNOWN_METRICS[name], None
    for part in parts[1:]:
        if part in ("higher", "lower"):
            direction = part
            continue
        try:
            value = float(part.removesuffix("%"))
        except ValueError:
            raise UserError(
                f"--metric {spec!r}: {part!r} is neither 'higher', 'lower' nor a threshold like '5%'"
            ) from None
        if not 0 < value < 100:
            raise UserError(f"--metric {spec!r}: threshold {part!r} must be between 0 and 100 percent")
        threshold = value / 100
    if direction is None:
        raise UserError(f"--metric {spec!r}: {name} has no natural direction; write {name}:higher or {name}:lower")
    return MetricSpec(name, direction, threshold)


def default_metrics() -> list[MetricSpec]:
    return [MetricSpec(name, KNOWN_METRICS[name] or "higher") for name in DEFAULT_METRICS]


# ----------------------------------------------------------------------------------------------- statistics


@lru_cache(maxsize=256)
def _u_null_cdf(m: int, n: int) -> tuple[float, ...]:
    """Exact null CDF of the Mann-Whitney U statistic (0..m*n) for sample sizes m, n without ties.

    The counts of U are the coefficients of the Gaussian binomial [m+n choose m]_q = prod_i (1-q^(n+i))/(1-q^i),
    built one factor at a time in exact integer arithmetic (each partial product is itself a polynomial).
    """
    m, n = sorted((m, n))
    poly = [1]
    for i in range(1, m + 1):
        grown = poly + [0] * n  # multiply by (1 - q^(n+i)), then divide by (1 - q^i); degree grows by n
        for k in range(len(grown) - 1, n + i - 1, -1):
            grown[k] -= grown[k - n - i]
        for k in range(i, len(grown)):
            grown[k] += grown[k - i]
        poly = grown
    total = math.comb(m + n, m)
    cdf, running = [], 0
    for c in poly:
        running += c
        cdf.append(running / total)
    return tuple(cdf)


def u_critical(m: int, n: int, alpha: float) -> int | None:
    """Largest k with P(U <= k) <= alpha under the null, or None when even U = 0 is more likely than alpha."""
    if m * n <= _EXACT_MAX_PAIRS:
        cdf = _u_null_cdf(m, n)
        k = int(np.searchsorted(cdf, alpha * (1 + 1e-12), side="right")) - 1
        return k if k >= 0 else None
    from scipy.stats import norm

    sd = math.sqrt(m * n * (m + n + 1) / 12)
    k = math.floor(m * n / 2 + norm.ppf(alpha) * sd - 0.5)
    return k if k >= 0 else None


def min_trials_for_alpha(alpha: float) -> int:
    """Fewest trials per side for which the exact one-sided test can reach p < alpha (1/C(2n, n) < alpha)."""
    n = 1
    while 1 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


@dataclass
class ShiftArrays:
    """Per-row results of `shift_test` (all on the log scale, current minus baseline)."""

    shift: np.ndarray  # Hodges-Lehmann estimate
    low: np.ndarray  # interval ends (-inf/+inf when the samples are too small for the level)
    high: np.ndarray
    p_less: np.ndarray  # one-sided p: current < baseline
    p_greater: np.ndarray  # one-sided p: current > baseline
    exact: np.ndarray  # bool: exact U distribution used (no ties)


def shift_test(log_base: np.ndarray, log_cur: np.ndarray, alpha: float) -> ShiftArrays:
    """Hodges-Lehmann shift, its Mann-Whitney interval and both one-sided MWU p-values, row by row.

    Vectorised over rows (shape (R, m) and (R, n)) so that power studies run the very code the gate runs.
    """
    from scipy.stats import mannwhitneyu

    log_base = np.atleast_2d(np.asarray(log_base, dtype=float))
    log_cur = np.atleast_2d(np.asarray(log_cur, dtype=float))
    rows, m = log_base.shape
    n = log_cur.shape[1]
    diffs = np.sort((log_cur[:, None, :] - log_base[:, :, None]).reshape(rows, m * n), axis=1)
    shift = np.median(diffs, axis=1)
    k = u_critical(m, n, alpha)
    if k is None:
        low, high = np.full(rows, -np.inf), np.full(rows, np.inf)
    else:
        low, high = diffs[:, k], diffs[:, m * n - 1 - k]
    pooled = np.sort(np.concatenate([log_base, log_cur], axis=1), axis=1)
    exact = ~np.any(pooled[:, 1:] == pooled[:, :-1], axis=1) & (m * n <= _EXACT_MAX_PAIRS)
    p_less, p_greater = np.ones(rows), np.ones(rows)
    for use_exact in (True, False):
        sel = exact == use_exact
        if not sel.any():
            continue
        method = "exact" if use_exact else "asymptotic"
        for alternative, out in (("less", p_less), ("greater", p_greater)):
            with np.errstate(invalid="ignore", divide="ignore"):
                p = mannwhitneyu(log_cur[sel], log_base[sel], alternative=alternative, method=method, axis=1).pvalue
            out[sel] = np.where(np.isfinite(p), p, 1.0)  # all values tied: no evidence either way
    return ShiftArrays(shift, low, high, p_less, p_greater, exact)


def decide(
    gain: np.ndarray | float,
    gain_low: np.ndarray | float,
    gain_high: np.ndarray | float,
    p_worse: np.ndarray | float,
    p_better: np.ndarray | float,
    threshold: float,
    noise_floor: float,
    alpha: float,
) -> np.ndarray:
    """The verdict rule on changes in the good direction (gain < 0 is harm), as fractions; vectorised.

    gain is the estimated change, [gain_low, gain_high] its interval. Returns an array of verdict strings.
    """
    gain, lo, hi = (np.asarray(v, dtype=float) for v in (gain, gain_low, gain_high))
    p_worse, p_better = np.asarray(p_worse, dtype=float), np.asarray(p_better, dtype=float)
    harm_big = gain <= -threshold + _EPS
    good_big = gain >= threshold - _EPS
    regression = harm_big & (p_worse < alpha) & (hi < -noise_floor)
    improvement = good_big & (p_better < alpha) & (lo > noise_floor)
    verdict = np.full(gain.shape, OK, dtype=object)
    verdict[harm_big] = INCONCLUSIVE
    verdict[regression] = REGRESSION
    verdict[improvement] = IMPROVEMENT
    return verdict


def to_gain(log_shift: np.ndarray | float, direction: str) -> np.ndarray:
    """Log shift (current - baseline) -> fractional change in the good direction."""
    change = np.expm1(np.asarray(log_shift, dtype=float))
    return change if direction == "higher" else -change


def gate_samples(
    base: np.ndarray, cur: np.ndarray, direction: str, threshold: float, noise_floor: float, alpha: float
) -> np.ndarray:
    """Verdicts for rows of positive samples (R, m) vs (R, n): what the gate decides, vectorised (for power
    studies; `check` handles null values, zeros and deterministic inputs around this)."""
    st = shift_test(np.log(base), np.log(cur), alpha)
    gain = to_gain(st.shift, direction)
    ends = np.sort(np.stack([to_gain(st.low, direction), to_gain(st.high, direction)]), axis=0)
    p_worse, p_better = (st.p_less, st.p_greater) if direction == "higher" else (st.p_greater, st.p_less)
    return decide(gain, ends[0], ends[1], p_worse, p_better, threshold, noise_floor, alpha)


def trials_needed(log_base: np.ndarray, log_cur: np.ndarray, shift: float, settings: Settings) -> int | None:
    """Trials per side that the observed spread calls for to confirm a change of the observed size.

    Normal approximation: pooled within-side SD sigma of the log values (~ the coefficient of variation), effect
    d = |shift| minus the noise floor (the interval must clear it), n = 2 * ((z_(1-alpha) + z_power) * sigma / d)^2,
    divided by 3/pi (the Mann-Whitney test's efficiency relative to the t test under normality), and at least
    the fewest trials with which the exact test can reach p < alpha at all.
    """
    from scipy.stats import norm

    f = settings.noise_floor
    floor_log = math.log1p(f) if shift > 0 else -math.log1p(-f)  # the floor as a log shift on the same side
    d = abs(shift) - floor_log
    if d <= 0:
        return None
    sides = [s for s in (np.asarray(log_base), np.asarray(log_cur)) if s.size > 1]
    dof = sum(s.size - 1 for s in sides)
    sigma = math.sqrt(sum(float(np.var(s, ddof=1)) * (s.size - 1) for s in sides) / dof) if dof else 0.0
    z = norm.ppf(1 - settings.alpha) + norm.ppf(settings.power)
    n = 2 * (z * sigma / d) ** 2 / (3 / math.pi)
    return max(math.ceil(n), min_trials_for_alpha(settings.alpha))


# ------------------------------------------------------------------------------------------ loading, pairing


@dataclass
class Series:
    """All trials of one strategy (and label) on one side."""

    strategy: str
    label: str | None
    context: tuple[tuple[str, Any], ...]  # the comparability fields (see COMPAT_FIELDS)
    files: list[Path] = field(default_factory=list)
    runs: list[results.RunResult] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.strategy} [{self.label}]" if self.label else self.strategy

    def values(self, metric: str) -> list[Any]:
        return [r.summary.get(metric) for r in self.runs]


def _get(result: results.RunResult, dotted: str) -> Any:
    section, key = dotted.split(".")
    source = asdict(result.run) if section == "run" else getattr(result, section)
    return (source or {}).get(key)


def context_of(result: results.RunResult) -> tuple[tuple[str, Any], ...]:
    ctx = {label: _get(result, path) for label, path in COMPAT_FIELDS}
    if ctx["workload"] is None:  # no content hash recorded: fall back to the name
        ctx["workload"] = f"name:{result.workload.get('name')}"
    return tuple(ctx.items())


def load_side(paths: Sequence[str | Path], side: str, notes: list[str]) -> dict[tuple, Series]:
    """Load every result file under `paths` and group trials into series by (context, strategy, label)."""
    explicit = {Path(p) for p in paths if Path(p).is_file()}
    series: dict[tuple, Series] = {}
    seen: set[Path] = set()
    for path in results.find_result_files(list(paths)):
        if path.resolve() in seen:  # a file named directly and again through its folder counts once
            continue
        seen.add(path.resolve())
        try:
            run = results.load_summary(path)  # the gate reads summaries only
        except ResultFileError as exc:
            not_ours = "missing key 'schema_version'" in str(exc) or "top level is not a JSON object" in str(exc)
            if path not in explicit and not_ours:
                notes.append(f"{side}: skipped {path} (not a result file)")
                continue
            raise
        if run.run.status != "completed":
            raise UserError(
                f"{path}: run.status is {run.run.status!r}; a partial run cannot be gated; re-run it to completion"
            )
        validity = run.run.validity or {}
        if validity.get("valid") is False:
            reasons = "; ".join(str(r) for r in validity.get("failed") or []) or "no reason given"
            notes.append(f"{side}: {path} is marked invalid ({reasons})")
        ctx = context_of(run)
        strategy = (run.strategy or {}).get("name") or "?"
        key = (ctx, strategy, run.run.label)
        entry = series.setdefault(key, Series(strategy, run.run.label, ctx))
        entry.files.append(path)
        entry.runs.append(run)
    if not series:
        raise UserError(f"{side}: no result files found under {', '.join(map(str, paths))}")
    return series


def _describe(ctx: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in ctx)


def pair(
    base: dict[tuple, Series], cur: dict[tuple, Series], notes: list[str]
) -> tuple[list[tuple[Series, Series]], list[dict[str, Any]]]:
    """Pair series across sides; refuse current results with no comparable baseline; report one-sided ones."""
    base_ctx = {k[0] for k in base}
    cur_ctx = {k[0] for k in cur}
    for ctx in sorted(cur_ctx - base_ctx, key=str):
        closest = min(base_ctx, key=lambda b: sum(x != y for x, y in zip(b, ctx, strict=True)))
        diffs = "; ".join(
            f"{name}: baseline {bv!r} vs current {cv!r}"
            for (name, bv), (_, cv) in zip(closest, ctx, strict=True)
            if bv != cv
        )
        files = sorted({str(s.files[0]) for k, s in cur.items() if k[0] == ctx})[:1]
        raise UserError(
            f"incompatible results ({files[0]}): {diffs}; compare runs of the same workload, model, engine and "
            "device type (refresh the baseline if the change is intended)"
        )
    unpaired: list[dict[str, Any]] = []
    one_sided = [(k, b, "baseline") for k, b in base.items() if k not in cur]
    one_sided += [(k, c, "current") for k, c in cur.items() if k not in base]
    pairs = [(b, cur[k]) for k, b in base.items() if k in cur]
    for key, s, side in one_sided:
        unpaired.append({"strategy": s.strategy, "label": s.label, "side": side, "files": len(s.files),
                         "context": dict(s.context)})  # fmt: skip
        other = "current" if side == "baseline" else "baseline"
        # a whole context missing on the other side (e.g. the baseline also holds a torch run): say which
        where = f" ({_describe(key[0])})" if key[0] not in (cur_ctx if side == "baseline" else base_ctx) else ""
        notes.append(f"{s.name}{where}: only in the {side} results (no {other} to compare); not checked")
    if not pairs:
        raise UserError("no strategy is present in both the baseline and the current results; nothing to check")
    for b, c in pairs:
        _note_differences(b, c, notes)
    return pairs, unpaired


def _note_differences(b: Series, c: Series, notes: list[str]) -> None:
    bconf = (b.runs[0].strategy or {}).get("config") or {}
    cconf = (c.runs[0].strategy or {}).get("config") or {}
    changed = [f"{k} {bconf.get(k)!r} -> {cconf.get(k)!r}" for k in sorted(set(bconf) | set(cconf), key=str)
               if bconf.get(k) != cconf.get(k)]  # fmt: skip
    if changed:
        notes.append(f"{c.name}: strategy config differs: {', '.join(changed)}")
    bdev, cdev = b.runs[0].model.get("device_name"), c.runs[0].model.get("device_name")
    if bdev != cdev:
        notes.append(f"{c.name}: device names differ (baseline {bdev!r}, current {cdev!r})")
    engine = dict(c.context).get("engine")
    if engine != "sim" and (len(b.runs) == 1 or len(c.runs) == 1):
        notes.append(
            f"{c.name}: a single {engine} trial on a side cannot separate a change from noise; run with --repeat 5"
        )


# ----------------------------------------------------------------------------------------------- the check


@dataclass
class Comparison:
    """One (strategy, label, metric) verdict. Changes are fractions relative to the baseline (ratio - 1)."""

    strategy: str
    label: str | None
    metric: str
    direction: str
    threshold: float
    verdict: str
    reason: str
    method: str  # "exact", "mann-whitney exact", "mann-whitney normal (ties)", or "" for n/a
    n_baseline: int
    n_current: int
    baseline_median: float | None = None
    current_median: float | None = None
    change: float | None = None  # Hodges-Lehmann estimate as a ratio change
    ci_low: float | None = None  # interval of the change (None: unbounded at this sample size)
    ci_high: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    trials_needed: int | None = None

    @property
    def p_value(self) -> float | None:
        """The one-sided p in the direction of the estimated change."""
        if self.p_worse is None or self.change is None:
            return None
        harmful = (self.change < 0) == (self.direction == "higher")
        return self.p_worse if harmful else self.p_better


@dataclass
class Report:
    settings: Settings
    baseline: list[str]
    current: list[str]
    comparisons: list[Comparison]
    unpaired: list[dict[str, Any]]
    notes: list[str]

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.comparisons}
        for v in (REGRESSION, INCONCLUSIVE, IMPROVEMENT):
            if v in verdicts:
                return v
        return OK

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "settings": asdict(self.settings),
            "interval_level": 1 - 2 * self.settings.alpha,
            "baseline": self.baseline,
            "current": self.current,
            "comparisons": [_json_safe({**asdict(c), "p_value": c.p_value}) for c in self.comparisons],
            "unpaired": self.unpaired,
            "notes": self.notes,
        }


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: an infinite change (baseline 0) is written as the string "inf" / "-inf"."""
    return {k: (("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v) for k, v in row.items()}


def check(
    baseline: Sequence[str | Path],
    current: Sequence[str | Path],
    metrics: Sequence[MetricSpec] | None = None,
    settings: Settings | None = None,
) -> Report:
    """Load both sides, refuse incompatible results, and judge every paired strategy on every metric."""
    settings = settings or Settings()
    _validate(settings)
    notes: list[str] = []
    base = load_side(baseline, "baseline", notes)
    cur = load_side(current, "current", notes)
    pairs, unpaired = pair(base, cur, notes)
    specs = list({spec.name: spec for spec in metrics}.values()) if metrics else None  # a repeated name: last wins
    comparisons = []
    for b, c in pairs:
        for spec in specs or _defaults_for(b, c):
            comparisons.append(compare_series(b, c, spec, settings))
    return Report(settings, [str(p) for p in baseline], [str(p) for p in current], comparisons, unpaired, notes)


def _validate(s: Settings) -> None:
    if not 0 < s.threshold < 1:
        raise UserError(f"--threshold {s.threshold * 100:g}: must be between 0 and 100 percent")
    if not 0 <= s.noise_floor < 1:
        raise UserError(f"--noise-floor {s.noise_floor * 100:g}: must be at least 0 and below 100 percent")
    if not 0 < s.alpha < 0.5:
        raise UserError(f"--alpha {s.alpha:g}: must be between 0 and 0.5 (e.g. 0.01)")


def _defaults_for(b: Series, c: Series) -> list[MetricSpec]:
    specs = []
    for spec in default_metrics():
        if spec.name in OPTIONAL_DEFAULTS and not (
            any(v is not None for v in b.values(spec.name)) or any(v is not None for v in c.values(spec.name))
        ):
            continue  # e.g. request_goodput without SLOs on either side
        specs.append(spec)
    return specs


def _numbers(values: list[Any]) -> tuple[list[float], int, bool]:
    """Numeric values, how many were null/missing, whether any was not a number at all."""
    nums, nulls, bad = [], 0, False
    for v in values:
        if v is None:
            nulls += 1
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            bad = True
        else:
            nums.append(float(v))
    return nums, nulls, bad


def compare_series(b: Series, c: Series, spec: MetricSpec, settings: Settings) -> Comparison:
    threshold = spec.threshold if spec.threshold is not None else settings.threshold
    bvals, bnull, bbad = _numbers(b.values(spec.name))
    cvals, cnull, cbad = _numbers(c.values(spec.name))
    row = Comparison(
        strategy=c.strategy,
        label=c.label,
        metric=spec.name,
        direction=spec.direction,
        threshold=threshold,
        verdict=NA,
        reason="",
        method="",
        n_baseline=len(bvals),
        n_current=len(cvals),
        baseline_median=float(np.median(bvals)) if bvals else None,
        current_median=float(np.median(cvals)) if cvals else None,
    )
    if bbad or cbad:
        row.reason = f"{spec.name} is not a number in the {'baseline' if bbad else 'current'} results"
        return row
    if not bvals or not cvals:
        side = "baseline" if not bvals else "current"
        why = " (no SLOs were set)" if spec.name == "request_goodput" else ""
        row.reason = f"{spec.name} is null in every {side} trial{why}; nothing to compare"
        return row
    dropped = [f"{n} {side} trial(s)" for n, side in ((bnull, "baseline"), (cnull, "current")) if n]
    suffix = f" ({' and '.join(dropped)} null, left out)" if dropped else ""
    if len(set(bvals)) == 1 and len(set(cvals)) == 1:
        _exact(row, bvals[0], cvals[0], settings, threshold)
    elif min(bvals + cvals) <= 0:
        row.reason = f"{spec.name} has zero or negative values across noisy trials; the log-scale test needs > 0"
    else:
        _statistical(row, bvals, cvals, settings, threshold)
    row.reason += suffix
    return row


def _exact(row: Comparison, bval: float, cval: float, settings: Settings, threshold: float) -> None:
    """Deterministic inputs: no noise to model, so the change itself decides."""
    row.method = "exact"
    if bval == cval:
        change = 0.0
    elif bval == 0:
        change = math.inf if cval > 0 else -math.inf
    else:
        change = cval / bval - 1
    gain = change if row.direction == "higher" else -change
    row.change = row.ci_low = row.ci_high = change
    verdict = OK if gain == 0 else decide(gain, gain, gain, 0.0, 0.0, threshold, 0.0, 1.0).item()
    row.verdict = verdict
    pct = _pct(change)
    if verdict == OK:
        row.reason = f"exact: {pct} is within the {threshold * 100:g}% threshold"
    else:
        row.reason = f"exact: {pct} is at least the {threshold * 100:g}% threshold (deterministic trials)"


def _statistical(row: Comparison, bvals: list[float], cvals: list[float], settings: Settings, t: float) -> None:
    lb, lc = np.log(bvals), np.log(cvals)
    st = shift_test(lb[None, :], lc[None, :], settings.alpha)
    shift, lo, hi = float(st.shift[0]), float(st.low[0]), float(st.high[0])
    higher = row.direction == "higher"
    row.method = "mann-whitney exact" if bool(st.exact[0]) else "mann-whitney normal (ties)"
    row.change = math.expm1(shift)
    row.ci_low = math.expm1(lo) if math.isfinite(lo) else None
    row.ci_high = math.expm1(hi) if math.isfinite(hi) else None
    row.p_worse, row.p_better = (
        (float(st.p_less[0]), float(st.p_greater[0])) if higher else (float(st.p_greater[0]), float(st.p_less[0]))
    )
    gain = to_gain(shift, row.direction)
    ends = sorted([float(to_gain(lo, row.direction)), float(to_gain(hi, row.direction))])
    f, alpha = settings.noise_floor, settings.alpha
    row.verdict = decide(gain, ends[0], ends[1], row.p_worse, row.p_better, t, f, alpha).item()
    level = f"{(1 - 2 * alpha) * 100:g}%"
    est = f"{_pct(row.change)} ({level} interval {_interval(row)})"
    if row.verdict == REGRESSION:
        row.reason = f"{est}: worse by at least {t * 100:g}%, p={row.p_worse:.2g} < {alpha:g}, beyond the noise floor"
    elif row.verdict == IMPROVEMENT:
        row.reason = f"{est}: better by at least {t * 100:g}%, p={row.p_better:.2g} < {alpha:g}, beyond the noise floor"
    elif row.verdict == INCONCLUSIVE:
        why = []
        if row.p_worse >= alpha:
            why.append(f"p={row.p_worse:.2g} >= {alpha:g}")
        if row.ci_low is None:
            why.append(f"{len(bvals)} vs {len(cvals)} trials cannot bound the change at {level}")
        elif not ends[1] < -f:
            why.append(f"the interval reaches inside the {f * 100:g}% noise floor")
        row.trials_needed = trials_needed(lb, lc, shift, settings)
        need = f"; the observed spread calls for about {row.trials_needed} trials per side" if row.trials_needed else ""
        row.reason = f"{est}: worse by at least {t * 100:g}% but not separable from noise ({', '.join(why)}){need}"
    else:
        if gain >= t - _EPS:
            row.reason = f"{est}: possibly better by {t * 100:g}% or more, but not significant (p={row.p_better:.2g})"
        else:
            row.reason = f"{est}: within the {t * 100:g}% threshold"


def _pct(change: float | None) -> str:
    if change is None:
        return "-"
    if math.isinf(change):
        return "+inf%" if change > 0 else "-inf%"
    return f"{change * 100:+.1f}%"


def _interval(row: Comparison) -> str:
    if row.method == "exact" or row.method == "":
        return "-"
    if row.ci_low is None or row.ci_high is None:  # too few trials for the level: no finite interval
        return "unbounded"
    return f"{row.ci_low * 100:+.1f} .. {row.ci_high * 100:+.1f}%"


def format_row(c: Comparison, default_threshold: float | None = None) -> dict[str, str]:
    """Display strings shared by the Rich table and the markdown summary."""
    p = c.p_value
    metric = f"{c.metric} {'↑' if c.direction == 'higher' else '↓'}"
    if default_threshold is None or abs(c.threshold - default_threshold) > 1e-12:
        metric += f" ({c.threshold * 100:g}%)"
    return {
        "metric": metric,
        "n": f"{c.n_baseline}/{c.n_current}",
        "baseline": _num(c.baseline_median),
        "current": _num(c.current_median),
        "change": _pct(c.change),
        "interval": _interval(c),
        "p": "-" if p is None else f"{p:.2g}",
        "verdict": c.verdict,
    }


def _num(value: float | None) -> str:
    if value is None:
        return "null"
    return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
