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

Scales: positive continuous metrics are tested on log values (above). Counts (completed, failed, rejected,
cancelled, preemptions, ...) and any metric with a value <= 0 are tested on the raw values with the same rank
test (which works at zero: baseline 3,0,0,0,4 vs current 7,7,7,6,7 preemptions gives p = 0.004); the change is
the shift relative to the baseline median (infinite when that median is 0 and the shift is not).

Only simulated runs (virtual clock) are deterministic: their trials compare exactly. Wall-clock trials are
always tested; one trial per side cannot separate a change from noise, so a harmful change beyond the
threshold is INCONCLUSIVE with the trials needed (the fewest for which the exact test can reach alpha).

FAIL (exit 1, like a regression) marks a current run that cannot pass: a strategy of the baseline missing from
the current results, no completed request, or a gated metric with a value in the baseline but none in the
current results. Incomparable results (report/compat.py) are refused, or compared and flagged with --force.
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
FAIL = "FAIL"
IMPROVEMENT = "IMPROVEMENT"
INCONCLUSIVE = "INCONCLUSIVE"
OK = "OK"
NA = "n/a"
MISSING = "missing"
EXIT_CODES = {OK: 0, IMPROVEMENT: 0, REGRESSION: 1, FAIL: 1, INCONCLUSIVE: 3}

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
    "errored": "lower",
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
    # sweeps (`inferneo-bench sweep`): one capacity per repeat of a strategy's search (sweep/gate.py)
    "capacity_rps": "higher",
    "capacity_output_tps": "higher",
}
CAPACITY_METRICS = ("capacity_rps", "capacity_output_tps")
DEFAULT_METRICS = (
    "output_throughput",
    "p99_ttft_ms",
    "p99_tpot_ms",
    "request_goodput",
    "failed",
    "rejected",
    "cancelled",
)
# only when some trial on either side has a value (goodput: SLOs were set; counts: absent from hand-made files)
OPTIONAL_DEFAULTS = ("request_goodput", "failed", "rejected", "cancelled")
# Counts: tested on the raw values (a rank test that works at zero), never on logs.
COUNT_METRICS = frozenset(
    {"completed", "failed", "rejected", "cancelled", "errored", "preemptions", "total_requests",
     "warmup_requests", "total_input_tokens", "total_output_tokens", "max_batch_size"}
)  # fmt: skip
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


def trials_needed(
    log_base: np.ndarray, log_cur: np.ndarray, shift: float, settings: Settings, floor: float | None = None
) -> int | None:
    """Trials per side that the observed spread calls for to confirm a change of the observed size.

    Normal approximation: pooled within-side SD sigma of the log values (~ the coefficient of variation), effect
    d = |shift| minus the noise floor (the interval must clear it), n = 2 * ((z_(1-alpha) + z_power) * sigma / d)^2,
    divided by 3/pi (the Mann-Whitney test's efficiency relative to the t test under normality), and at least
    the fewest trials with which the exact test can reach p < alpha at all. `floor`: the noise floor on the
    samples' own scale (default: the floor as a log shift); raw-scale callers pass theirs.
    """
    from scipy.stats import norm

    f = settings.noise_floor
    if floor is None:
        floor = math.log1p(f) if shift > 0 else -math.log1p(-f)  # the floor as a log shift on the same side
    d = abs(shift) - floor
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
    context: tuple[str, ...]  # the ALL-scope comparability fields (report/compat.py)
    files: list[Path] = field(default_factory=list)
    runs: list[results.RunResult] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.strategy} [{self.label}]" if self.label else self.strategy

    @property
    def engine(self) -> str:
        return str(self.runs[0].run.engine) if self.runs else "?"

    @property
    def deterministic(self) -> bool:
        """Only the simulator (virtual clock) repeats itself exactly; wall-clock trials carry noise."""
        return self.engine == "sim"

    def values(self, metric: str) -> list[Any]:
        return [r.summary.get(metric) for r in self.runs]


def load_side(paths: Sequence[str | Path], side: str, notes: list[str]) -> dict[tuple, Series]:
    """Load every result file under `paths` and group trials into series by (context, strategy, label)."""
    from inferneo_bench.report import compat

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
        ctx = compat.context(run)
        strategy, label = compat.series_key(run)
        entry = series.setdefault((ctx, strategy, label), Series(strategy, label, ctx))
        entry.files.append(path)
        entry.runs.append(run)
    if not series:
        raise UserError(f"{side}: no result files found under {', '.join(map(str, paths))}")
    for s in series.values():  # trials of one series must share their configuration (a mixed run folder)
        diffs = compat.differences(s.runs, s.files, (compat.SERIES,))
        if diffs:
            raise UserError(
                f"{side}: the trials of {s.name} do not belong together: {'; '.join(diffs)}; give each "
                "configuration its own run folder (or --label)"
            )
    return series


def pair(
    base: dict[tuple, Series], cur: dict[tuple, Series], notes: list[str], force: bool = False
) -> tuple[list[tuple[Series, Series]], list[dict[str, Any]], list[str], list[str]]:
    """Pair series across sides by (context, strategy, label); with `force`, across contexts too.

    Returns (pairs, unpaired, forced warnings, failures). Refuses (exit 2) a current series whose baseline
    namesake differs in a comparability field, unless `force`. A baseline series that the current results
    lack, in a context the current results cover, is a failure (the run is incomplete)."""
    from inferneo_bench.report import compat

    by_name_base: dict[tuple, list[tuple]] = {}
    for key in base:
        by_name_base.setdefault(key[1:], []).append(key)
    pairs: list[tuple[Series, Series]] = []
    forced: list[str] = []
    used: set[tuple] = set()
    for key, c in cur.items():
        if key in base:
            b = base[key]
        elif key[1:] in by_name_base:
            b = base[by_name_base[key[1:]][0]]
            diffs = compat.differences(b.runs + c.runs, b.files + c.files, (compat.ALL,))
            forced += compat.refuse_or_flag([f"{c.name}: {d}" for d in diffs], force, "baseline and current results")
        else:
            continue
        used.add((b.context, b.strategy, b.label))
        diffs = compat.differences(b.runs + c.runs, b.files + c.files, (compat.SERIES,))
        forced += compat.refuse_or_flag([f"{c.name}: {d}" for d in diffs], force, "baseline and current results")
        pairs.append((b, c))
    unpaired: list[dict[str, Any]] = []
    failures: list[str] = []
    cur_ctx = {k[0] for k in cur}
    paired_cur = {id(c) for _, c in pairs}
    for key, s in base.items():
        if key in used:
            continue
        unpaired.append({"strategy": s.strategy, "label": s.label, "side": "baseline", "files": len(s.files)})
        if key[0] in cur_ctx:
            failures.append(f"{s.name}: in the baseline but missing from the current results; run it too")
        else:
            notes.append(f"{s.name} ({s.engine}): only in the baseline, whose other results the current run does "
                         "not cover (another engine, model or workload); not checked")  # fmt: skip
    for c in cur.values():
        if id(c) not in paired_cur:
            unpaired.append({"strategy": c.strategy, "label": c.label, "side": "current", "files": len(c.files)})
            notes.append(f"{c.name}: only in the current results (no baseline to compare); not checked")
    if not pairs:
        raise UserError("no strategy is present in both the baseline and the current results; nothing to check")
    for b, c in pairs:
        _note_differences(b, c, notes)
    return pairs, unpaired, forced, failures


def _note_differences(b: Series, c: Series, notes: list[str]) -> None:
    if not c.deterministic and (len(b.runs) == 1 or len(c.runs) == 1):
        notes.append(
            f"{c.name}: a single {c.engine} (wall-clock) trial on a side cannot separate a change from noise; "
            "run with --repeat 5 or more"
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
    forced: list[str] = field(default_factory=list)  # --force: the differences compared anyway

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.comparisons}
        for v in (FAIL, REGRESSION, INCONCLUSIVE, IMPROVEMENT):
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
            "forced": self.forced,
        }


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: an infinite change (baseline 0) is written as the string "inf" / "-inf"."""
    return {k: (("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v) for k, v in row.items()}


def check(
    baseline: Sequence[str | Path],
    current: Sequence[str | Path],
    metrics: Sequence[MetricSpec] | None = None,
    settings: Settings | None = None,
    force: bool = False,
) -> Report:
    """Load both sides, refuse incompatible results (or flag them with `force`), and judge every paired strategy
    on every metric; a strategy missing from the current results, or one that completed nothing, fails."""
    settings = settings or Settings()
    _validate(settings)
    notes: list[str] = []
    specs = list({spec.name: spec for spec in metrics}.values()) if metrics else None  # a repeated name: last wins
    capacity = [s for s in specs or [] if s.name in CAPACITY_METRICS]
    comparisons: list[Comparison] = []
    if capacity:  # sweeps: capacities recomputed from the saved points (sweep/gate.py)
        from inferneo_bench.sweep.gate import capacity_comparisons

        comparisons += capacity_comparisons(baseline, current, capacity, settings, notes)
        specs = [s for s in specs or [] if s not in capacity]
        if not specs:
            return Report(settings, [str(p) for p in baseline], [str(p) for p in current], comparisons, [], notes)
    base = load_side(baseline, "baseline", notes)
    cur = load_side(current, "current", notes)
    pairs, unpaired, forced, failures = pair(base, cur, notes, force)
    comparisons += [_failure(text) for text in failures]
    for b, c in pairs:
        nothing = [f.name for f, r in zip(c.files, c.runs, strict=True) if r.summary.get("completed", 1) == 0]
        if nothing:
            comparisons.append(_failure(f"{c.name}: no request completed in {', '.join(nothing)} "
                                        f"({_end_summary(c.runs[0])})", c))  # fmt: skip
        for spec in specs or _defaults_for(b, c):
            comparisons.append(compare_series(b, c, spec, settings))
    return Report(settings, [str(p) for p in baseline], [str(p) for p in current], comparisons, unpaired, notes, forced)


def _failure(text: str, series: Series | None = None) -> Comparison:
    strategy, _, _ = text.partition(":")
    return Comparison(
        strategy=series.strategy if series else strategy.split(" [")[0],
        label=series.label if series else None,
        metric="completed",
        direction="higher",
        threshold=0.0,
        verdict=FAIL,
        reason=text.partition(": ")[2] or text,
        method="",
        n_baseline=0,
        n_current=len(series.runs) if series else 0,
    )


def _end_summary(run: results.RunResult) -> str:
    s = run.summary
    reasons = s.get("end_reasons") or {}
    top = max(reasons.items(), key=lambda kv: kv[1])[0] if reasons else None
    parts = [f"{s.get(k) or 0} {k}" for k in ("rejected", "cancelled", "errored") if s.get(k)]
    return ", ".join(parts) + (f"; most often: {top}" if top else "") if parts else "no request ended"


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
        side = "baseline" if bbad else "current"
        row.verdict = FAIL
        row.reason = f"{spec.name} is not a finite number in the {side} results (NaN, infinite or text)"
        return row
    if not cvals and bvals:
        row.verdict = FAIL
        why = _end_summary(c.runs[0])
        row.reason = f"{spec.name} has a value in the baseline but none in any current trial ({why})"
        return row
    if not bvals or not cvals:
        why = " (no SLOs were set)" if spec.name == "request_goodput" else ""
        row.reason = f"{spec.name} is null in every baseline trial{why}; nothing to compare"
        return row
    dropped = [f"{n} {side} trial(s)" for n, side in ((bnull, "baseline"), (cnull, "current")) if n]
    suffix = f" ({' and '.join(dropped)} null, left out)" if dropped else ""
    if c.deterministic and b.deterministic and len(set(bvals)) == 1 and len(set(cvals)) == 1:
        _exact(row, bvals[0], cvals[0], settings, threshold)
    else:
        raw = spec.name in COUNT_METRICS or min(bvals + cvals) <= 0
        _statistical(row, bvals, cvals, settings, threshold, raw)
    row.reason += suffix
    return row


def _exact(row: Comparison, bval: float, cval: float, settings: Settings, threshold: float) -> None:
    """Simulated (virtual-clock) trials repeat exactly: no noise to model, so the change itself decides."""
    row.method = "exact"
    change = _relative(cval - bval, bval)
    gain = change if row.direction == "higher" else -change
    row.change = row.ci_low = row.ci_high = change
    verdict = OK if gain == 0 else decide(gain, gain, gain, 0.0, 0.0, threshold, 0.0, 1.0).item()
    row.verdict = verdict
    pct = _pct(change)
    if verdict == OK:
        row.reason = f"exact: {pct} is within the {threshold * 100:g}% threshold"
    else:
        row.reason = f"exact: {pct} is at least the {threshold * 100:g}% threshold (deterministic: simulated trials)"


def _relative(shift: float, reference: float) -> float:
    """A shift as a fraction of the reference; infinite when the reference is 0 and the shift is not."""
    if shift == 0:
        return 0.0
    if reference == 0:
        return math.inf if shift > 0 else -math.inf
    return shift / abs(reference)


def _statistical(
    row: Comparison, bvals: list[float], cvals: list[float], settings: Settings, t: float, raw: bool = False
) -> None:
    """The rank test: on log values, or on the raw values for counts and metrics at zero (`raw`)."""
    base, cur = np.asarray(bvals, dtype=float), np.asarray(cvals, dtype=float)
    lb, lc = (base, cur) if raw else (np.log(base), np.log(cur))
    st = shift_test(lb[None, :], lc[None, :], settings.alpha)
    shift, lo, hi = float(st.shift[0]), float(st.low[0]), float(st.high[0])
    higher = row.direction == "higher"
    row.method = ("mann-whitney exact" if bool(st.exact[0]) else "mann-whitney normal (ties)") + (
        " on raw values" if raw else ""
    )
    ref = float(np.median(base))

    def change_of(x: float) -> float:
        return _relative(x, ref) if raw else math.expm1(x)

    row.change = change_of(shift)
    row.ci_low = change_of(lo) if math.isfinite(lo) else None
    row.ci_high = change_of(hi) if math.isfinite(hi) else None
    row.p_worse, row.p_better = (
        (float(st.p_less[0]), float(st.p_greater[0])) if higher else (float(st.p_greater[0]), float(st.p_less[0]))
    )
    sign = 1.0 if higher else -1.0
    gain = sign * row.change
    ends = sorted([sign * (row.ci_low if row.ci_low is not None else -math.inf),
                   sign * (row.ci_high if row.ci_high is not None else math.inf)])  # fmt: skip
    f, alpha = settings.noise_floor, settings.alpha
    row.verdict = decide(gain, ends[0], ends[1], row.p_worse, row.p_better, t, f, alpha).item()
    level = f"{(1 - 2 * alpha) * 100:g}%"
    shown = f"{_pct(row.change)}" + (f" (shift {shift:+g} from a median of {ref:g})" if raw else "")
    est = f"{shown} ({level} interval {_interval(row)})"
    single = min(len(bvals), len(cvals)) == 1
    if row.verdict == REGRESSION:
        row.reason = f"{est}: worse by at least {t * 100:g}%, p={row.p_worse:.2g} < {alpha:g}, beyond the noise floor"
    elif row.verdict == IMPROVEMENT:
        row.reason = f"{est}: better by at least {t * 100:g}%, p={row.p_better:.2g} < {alpha:g}, beyond the noise floor"
    elif row.verdict == INCONCLUSIVE:
        if single:
            row.trials_needed = min_trials_for_alpha(alpha)
            row.reason = (
                f"{est}: one wall-clock trial per side cannot separate a change from noise; run at least "
                f"{row.trials_needed} trials per side (inferneo-bench run --repeat {row.trials_needed})"
            )
            return
        why = []
        if row.p_worse >= alpha:
            why.append(f"p={row.p_worse:.2g} >= {alpha:g}")
        if row.ci_low is None:
            why.append(f"{len(bvals)} vs {len(cvals)} trials cannot bound the change at {level}")
        elif not ends[1] < -f:
            why.append(f"the interval reaches inside the {f * 100:g}% noise floor")
        if raw and ref > 0:
            row.trials_needed = trials_needed(lb / ref, lc / ref, shift / ref, settings, f)
        elif raw:
            row.trials_needed = trials_needed(lb, lc, shift, settings, 0.0)
        else:
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
