"""The gate's statistics and decisions, on hand-made result files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats as st

from inferneo_bench import regress
from inferneo_bench.errors import UserError
from inferneo_bench.regress import FAIL, IMPROVEMENT, INCONCLUSIVE, NA, OK, REGRESSION, MetricSpec, Settings
from tests.regress_fixtures import summary, write_single, write_trials

# Ten multiplicative "noise" factors with about 2% spread (fixed, so every test is exact).
NOISE = [1.00, 0.98, 1.02, 0.99, 1.01, 0.97, 1.03, 1.005, 0.985, 1.015]
NOISE2 = [1.01, 0.99, 0.975, 1.02, 1.004, 0.995, 1.025, 0.98, 1.0, 1.012]


def trials(tput, noise=NOISE, goodput=None):
    """Trial summaries around `tput`; latencies move inversely (1000 tok/s <-> 100 ms p99 TTFT, 20 ms TPOT)."""
    scale = tput / 1000
    return [summary(tput * f, 100 / scale / f, 20 / scale / f, goodput) for f in noise]


def by_metric(report, strategy="adaptive"):
    return {c.metric: c for c in report.comparisons if c.strategy == strategy}


# ------------------------------------------------------------------------------------------------ statistics


@pytest.mark.parametrize(("m", "n"), [(1, 4), (3, 4), (5, 5), (10, 10), (7, 12)])
def test_exact_u_distribution_matches_scipy(m, n):
    rng = np.random.default_rng(m * 100 + n)
    cdf = regress._u_null_cdf(m, n)
    for _ in range(5):
        x, y = rng.normal(size=m), rng.normal(size=n)
        res = st.mannwhitneyu(y, x, alternative="less", method="exact")
        assert cdf[int(res.statistic)] == pytest.approx(res.pvalue, rel=1e-12)
    assert cdf[-1] == pytest.approx(1.0)


def test_critical_values_and_minimum_trials():
    assert regress.u_critical(10, 10, 0.01) == 19  # tables: one-sided 0.01, n1 = n2 = 10 -> U <= 19
    assert regress.u_critical(3, 3, 0.05) == 0  # P(U=0) = 1/20
    assert regress.u_critical(3, 3, 0.01) is None  # cannot reach 1% with 3 vs 3
    assert regress.min_trials_for_alpha(0.01) == 5  # 1/C(10,5) = 1/252 < 0.01; 1/C(8,4) = 1/70 > 0.01
    assert regress.min_trials_for_alpha(0.05) == 4
    # normal approximation beyond the exact table size stays close to the exact answer
    exact = regress.u_critical(100, 100, 0.01)
    regress._EXACT_MAX_PAIRS, saved = 0, regress._EXACT_MAX_PAIRS
    try:
        approx = regress.u_critical(100, 100, 0.01)
    finally:
        regress._EXACT_MAX_PAIRS = saved
    assert abs(exact - approx) <= 2


def test_hodges_lehmann_and_interval_by_hand():
    # differences y - x for x = 1,2,3 and y = 4,5,6: 1,2,2,3,3,3,4,4,5 -> median 3
    res = regress.shift_test(np.array([[1.0, 2, 3]]), np.array([[4.0, 5, 6]]), alpha=0.05)
    assert res.shift[0] == 3.0
    # P(U <= 0) = 1/20 = 0.05 <= alpha -> k = 0 -> [D(1), D(9)]
    assert (res.low[0], res.high[0]) == (1.0, 5.0)
    assert res.p_greater[0] == pytest.approx(0.05)
    assert res.p_less[0] == pytest.approx(1.0)
    # too few samples for alpha = 0.01: the interval is unbounded
    res = regress.shift_test(np.array([[1.0, 2, 3]]), np.array([[4.0, 5, 6]]), alpha=0.01)
    assert math.isinf(res.low[0]) and math.isinf(res.high[0])


def test_interval_is_the_inverted_test():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=10), rng.normal(size=10) - 1.0
    res = regress.shift_test(x[None], y[None], alpha=0.01)
    # shifting y by just past the interval's upper end makes the "less" test reject; just inside, it does not
    up = res.high[0]
    assert st.mannwhitneyu(y - up - 1e-9, x, alternative="less", method="exact").pvalue <= 0.01
    assert st.mannwhitneyu(y - up + 1e-9, x, alternative="less", method="exact").pvalue > 0.01


def test_decide_rule():
    kw = {"threshold": 0.05, "noise_floor": 0.01, "alpha": 0.01}
    assert regress.decide(-0.08, -0.10, -0.06, 0.001, 0.99, **kw) == REGRESSION
    assert regress.decide(-0.08, -0.10, -0.005, 0.001, 0.99, **kw) == INCONCLUSIVE  # interval inside floor
    assert regress.decide(-0.08, -0.10, -0.06, 0.02, 0.99, **kw) == INCONCLUSIVE  # p too large
    assert regress.decide(-0.04, -0.06, -0.02, 0.001, 0.99, **kw) == OK  # real but below threshold
    assert regress.decide(0.08, 0.06, 0.10, 0.99, 0.001, **kw) == IMPROVEMENT
    assert regress.decide(0.08, 0.005, 0.10, 0.99, 0.001, **kw) == OK  # unconfirmed improvement is not a failure
    assert regress.decide(-0.05, -0.06, -0.04, 0.001, 0.99, **kw) == REGRESSION  # exactly the threshold


def test_trials_needed_from_pooled_spread():
    rng = np.random.default_rng(0)
    base = np.log(100 * (1 + 0.03 * rng.standard_normal(3)))
    cur = np.log(92 * (1 + 0.03 * rng.standard_normal(3)))
    s = Settings()
    sigma = math.sqrt((np.var(base, ddof=1) + np.var(cur, ddof=1)) / 2)
    d = 0.08 + math.log1p(-0.01)  # a drop: the floor is ln(1 - 1%) on the same side
    expected = math.ceil(2 * ((st.norm.ppf(0.99) + st.norm.ppf(0.9)) * sigma / d) ** 2 / (3 / math.pi))
    assert regress.trials_needed(base, cur, -0.08, s) == max(expected, 5)
    assert regress.trials_needed(base, cur, -0.005, s) is None  # inside the noise floor: no count helps


# ---------------------------------------------------------------------------------------------- metric specs


def test_parse_metric():
    assert regress.parse_metric("output_throughput") == MetricSpec("output_throughput", "higher", None)
    assert regress.parse_metric("p99_ttft_ms:10%") == MetricSpec("p99_ttft_ms", "lower", 0.10)
    assert regress.parse_metric("gpu_util_mean:higher:3") == MetricSpec("gpu_util_mean", "higher", 0.03)
    assert regress.parse_metric("mean_itl_ms:higher") == MetricSpec("mean_itl_ms", "higher", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("throughput", "unknown metric 'throughput'; known metrics: output_throughput, "),
        ("p99_ttft_ms:up", "'up' is neither 'higher', 'lower' nor a threshold"),
        ("p99_ttft_ms:0%", "between 0 and 100 percent"),
        ("gpu_util_mean", "no natural direction; write gpu_util_mean:higher or gpu_util_mean:lower"),
    ],
)
def test_parse_metric_errors(spec, message):
    with pytest.raises(UserError, match=None) as info:
        regress.parse_metric(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------- whole checks


def test_identical_inputs_pass(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000))
    write_trials(tmp_path / "cur", "adaptive", trials(1000))
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    rows = by_metric(report)
    assert set(rows) == {"output_throughput", "p99_ttft_ms", "p99_tpot_ms"}  # no SLOs: no goodput row
    for row in rows.values():
        assert row.verdict == OK
        assert row.change == 0.0 and row.n_baseline == row.n_current == 10
        assert row.method == "mann-whitney normal (ties)"  # every value appears on both sides
        assert row.p_worse > 0.4
    assert report.verdict == OK and report.exit_code == 0


def test_degraded_current_is_a_regression(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000))
    write_trials(tmp_path / "cur", "adaptive", trials(800, noise=NOISE2))  # throughput -20%, latency +25%
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    rows = by_metric(report)
    tput = rows["output_throughput"]
    assert tput.verdict == REGRESSION
    assert tput.change == pytest.approx(-0.2, abs=0.01)
    assert tput.ci_low < tput.change < tput.ci_high < -0.01
    assert tput.p_worse == pytest.approx(1 / math.comb(20, 10))  # complete separation: the exact minimum p
    assert tput.p_value == tput.p_worse
    assert rows["p99_ttft_ms"].verdict == REGRESSION and rows["p99_ttft_ms"].change == pytest.approx(0.25, abs=0.02)
    assert report.exit_code == 1
    assert "worse by at least 5%" in tput.reason


def test_improvement_exits_zero(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000))
    write_trials(tmp_path / "cur", "adaptive", trials(1150, noise=NOISE2))
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    assert {c.verdict for c in report.comparisons} == {IMPROVEMENT}
    assert report.verdict == IMPROVEMENT and report.exit_code == 0


def test_too_few_trials_is_inconclusive(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000, noise=NOISE[:3]))
    write_trials(tmp_path / "cur", "adaptive", trials(900, noise=NOISE2[:3]))
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"], [regress.parse_metric("output_throughput")])
    (row,) = report.comparisons
    assert row.verdict == INCONCLUSIVE
    assert row.ci_low is None and row.ci_high is None  # 3 vs 3 cannot bound the shift at 98%
    assert row.p_worse == pytest.approx(0.05)  # the smallest p 3 vs 3 allows
    assert row.trials_needed == 5  # spread is small; the exact test's minimum decides
    assert "calls for about 5 trials per side" in row.reason
    assert "3 vs 3 trials cannot bound the change at 98%" in row.reason
    assert report.exit_code == 3


def test_noisy_sizeable_change_calls_for_more_trials(tmp_path):
    wide = [1.0, 0.85, 1.15, 0.9, 1.1]
    write_trials(tmp_path / "base", "adaptive", trials(1000, noise=wide))
    write_trials(tmp_path / "cur", "adaptive", trials(930, noise=wide[::-1]))
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"], [regress.parse_metric("output_throughput")])
    (row,) = report.comparisons
    assert row.verdict == INCONCLUSIVE and row.trials_needed > 20


def test_single_trial_compares_exactly(tmp_path):
    write_single(tmp_path / "base", "adaptive", summary(1000.0, 100.0, 20.0))
    write_single(tmp_path / "base", "continuous", summary(1000.0, 100.0, 20.0))
    write_single(tmp_path / "base", "fixed_size", summary(1000.0, 100.0, 20.0))
    write_single(tmp_path / "cur", "adaptive", summary(950.0, 104.9, 20.0))  # exactly -5%: at the threshold
    write_single(tmp_path / "cur", "continuous", summary(951.0, 95.0, 18.0))
    write_single(tmp_path / "cur", "fixed_size", summary(1000.0, 100.0, 20.0))
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    a, c, f = by_metric(report, "adaptive"), by_metric(report, "continuous"), by_metric(report, "fixed_size")
    assert a["output_throughput"].verdict == REGRESSION and a["output_throughput"].method == "exact"
    assert a["output_throughput"].p_worse is None
    assert a["p99_ttft_ms"].verdict == OK  # +4.9%
    assert c["output_throughput"].verdict == OK  # -4.9%
    assert c["p99_ttft_ms"].verdict == IMPROVEMENT and c["p99_tpot_ms"].verdict == IMPROVEMENT
    assert all(row.verdict == OK and row.change == 0 for row in f.values())
    assert report.exit_code == 1


def test_deterministic_repeats_compare_exactly(tmp_path):
    write_trials(tmp_path / "base", "adaptive", [summary(1000.0)] * 3, engine="sim")
    write_single(tmp_path / "cur", "adaptive", summary(900.0))
    row = by_metric(regress.check([tmp_path / "base"], [tmp_path / "cur"]))["output_throughput"]
    assert row.method == "exact" and row.verdict == REGRESSION and row.change == pytest.approx(-0.1)


def test_zero_baseline_exact(tmp_path):
    write_single(tmp_path / "base", "adaptive", {"preemptions": 0})
    write_single(tmp_path / "cur", "adaptive", {"preemptions": 3})
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"], [regress.parse_metric("preemptions")])
    assert report.comparisons[0].verdict == REGRESSION and report.comparisons[0].change == math.inf


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("content_hash", "other-hash", "workload content hash differs: 'wl-hash' ("),
        ("model", "llama-1b", "model differs: 'tiny' ("),
        ("engine", "sim", "engine differs: 'torch' ("),
        ("device_type", "cpu", "device type differs: 'cuda' ("),
    ],
)
def test_incompatible_results_are_refused(tmp_path, field, value, message):
    write_trials(tmp_path / "base", "adaptive", trials(1000)[:2])
    write_trials(tmp_path / "cur", "adaptive", trials(1000)[:2], **{field: value})
    with pytest.raises(UserError) as info:
        regress.check([tmp_path / "base"], [tmp_path / "cur"])
    text = str(info.value)
    assert text.startswith("baseline and current results are not comparable: adaptive: ") and "\n" not in text
    assert message in text and f"vs {value!r} (" in text and "--force" in text
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"], force=True)  # compared, and flagged
    assert report.forced and message in report.forced[0] and report.forced[0].startswith("warning: comparing anyway")
    assert report.to_dict()["forced"] == report.forced


def test_null_metrics_fail_in_the_current_and_are_na_in_the_baseline(tmp_path):
    write_trials(tmp_path / "base", "adaptive", [{**s, "p99_ttft_ms": None} for s in trials(1000, noise=NOISE[:5])])
    write_trials(tmp_path / "cur", "adaptive", [{**s, "p99_tpot_ms": None} for s in trials(1000, noise=NOISE[:5])])
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    rows = by_metric(report)
    assert rows["p99_tpot_ms"].verdict == FAIL  # the baseline measured it, the current run did not: a failure
    assert rows["p99_tpot_ms"].reason.startswith("p99_tpot_ms has a value in the baseline but none in any current")
    assert rows["p99_ttft_ms"].verdict == NA
    assert rows["p99_ttft_ms"].reason == "p99_ttft_ms is null in every baseline trial; nothing to compare"
    assert rows["output_throughput"].verdict == OK
    assert report.verdict == FAIL and report.exit_code == 1


def test_partly_null_trials_are_left_out(tmp_path):
    cur = trials(1000, noise=NOISE[:6])
    cur[0]["output_throughput"] = None
    write_trials(tmp_path / "base", "adaptive", trials(1000, noise=NOISE[:6]))
    write_trials(tmp_path / "cur", "adaptive", cur)
    row = by_metric(regress.check([tmp_path / "base"], [tmp_path / "cur"]))["output_throughput"]
    assert row.n_current == 5 and row.verdict == OK and "(1 current trial(s) null, left out)" in row.reason


def test_one_sided_strategies_are_reported(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000)[:5])
    write_trials(tmp_path / "base", "coalescing", trials(1000)[:5])
    write_trials(tmp_path / "cur", "adaptive", trials(1000)[:5])
    write_trials(tmp_path / "cur", "continuous", trials(1000)[:5])
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    assert {c.strategy for c in report.comparisons} == {"adaptive", "coalescing"}
    assert report.unpaired == [
        {"strategy": "coalescing", "label": None, "side": "baseline", "files": 5},
        {"strategy": "continuous", "label": None, "side": "current", "files": 5},
    ]
    (missing,) = [c for c in report.comparisons if c.strategy == "coalescing"]
    assert missing.verdict == FAIL
    assert missing.reason == "in the baseline but missing from the current results; run it too"
    assert report.verdict == FAIL and report.exit_code == 1
    assert "continuous: only in the current results (no baseline to compare); not checked" in report.notes


def test_labels_pair_separately_and_config_changes_are_noted(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000)[:5], label="cap16", config={"max_batch_size": 16})
    write_trials(tmp_path / "base" / "b", "adaptive", trials(1000)[:5], label="cap32")
    write_trials(tmp_path / "cur", "adaptive", trials(1000)[:5], label="cap16", config={"max_batch_size": 8})
    write_trials(tmp_path / "cur" / "b", "adaptive", trials(700)[:5], label="cap32")
    with pytest.raises(UserError, match=r"adaptive \[cap16\]: scheduler config differs: max_batch_size 16 \("):
        regress.check([tmp_path / "base"], [tmp_path / "cur"])
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"], force=True)
    verdicts = {(c.label, c.metric): c.verdict for c in report.comparisons}
    assert verdicts[("cap16", "output_throughput")] == OK
    assert verdicts[("cap32", "output_throughput")] == REGRESSION
    assert len(report.forced) == 1
    assert "adaptive [cap16]: scheduler config differs: max_batch_size 16" in report.forced[0]


def test_bad_inputs(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000)[:2])
    write_trials(tmp_path / "cur", "adaptive", trials(1000)[:2], status="interrupted")
    with pytest.raises(UserError, match="run.status is 'interrupted'; a partial run cannot be gated"):
        regress.check([tmp_path / "base"], [tmp_path / "cur"])
    with pytest.raises(UserError, match="no such file or folder"):
        regress.check([tmp_path / "base"], [tmp_path / "nope"])
    write_trials(tmp_path / "other", "continuous", trials(1000)[:2])
    with pytest.raises(UserError, match="no strategy is present in both"):
        regress.check([tmp_path / "base"], [tmp_path / "other"])
    with pytest.raises(UserError, match="--alpha 0.7"):
        regress.check([tmp_path / "base"], [tmp_path / "base"], settings=Settings(alpha=0.7))


def test_non_result_json_in_a_folder_is_not_taken_for_a_result(tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000)[:5])
    (tmp_path / "base" / "notes.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "base" / "sweep.json").write_text(json.dumps({"schema_version": 2, "tool": {"name": "x"}}))
    report = regress.check([tmp_path / "base"], [tmp_path / "base"])
    assert report.exit_code == 0 and {c.n_baseline for c in report.comparisons} == {5}


def test_infinite_change_is_valid_json_and_duplicates_count_once(tmp_path):
    write_single(tmp_path / "base", "adaptive", {"preemptions": 0})
    cur = write_single(tmp_path / "cur", "adaptive", {"preemptions": 3})
    specs = [regress.parse_metric("preemptions:10%"), regress.parse_metric("preemptions")]
    report = regress.check([tmp_path / "base"], [tmp_path / "cur", cur], specs)
    (row,) = report.comparisons
    assert row.threshold == 0.05 and row.n_current == 1  # the last spec wins; the file is loaded once
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["comparisons"][0]["change"] == "inf"


def test_baseline_with_two_engines_checks_the_matching_one(tmp_path):
    """results/baseline may hold a sim run and a torch run; a current torch run is checked against the torch one."""
    write_single(tmp_path / "base" / "sim", "adaptive", summary(1000.0))
    write_trials(tmp_path / "base" / "torch", "adaptive", trials(1000)[:5])
    write_trials(tmp_path / "cur", "adaptive", trials(1000, noise=NOISE2)[:5])
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    assert {(c.n_baseline, c.verdict) for c in report.comparisons} == {(5, OK)}
    assert report.notes == [
        "adaptive (sim): only in the baseline, whose other results the current run does not cover (another "
        "engine, model or workload); not checked"
    ]
