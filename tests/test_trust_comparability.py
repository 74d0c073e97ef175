"""Issue 15, kind 3 (and issue 17, item 4): results that must not be compared are refused, or compared and
flagged in every output with --force (one rule table, report/compat.py, for compare and check); check fails
a current run that completed nothing, lacks a strategy, or has no value where the baseline has one; counts
and metrics at zero get a rank test that works at zero; one wall-clock trial per side is INCONCLUSIVE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from inferneo_bench import regress, results
from inferneo_bench.regress import FAIL, INCONCLUSIVE, REGRESSION
from tests.regress_fixtures import make_run

SIM = ["--engine", "sim", "--profile", "tiny-cpu", "--min-duration", "0", "--min-requests", "1", "-q"]


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory) -> Path:
    """Two identical simulated runs and variants differing only in SLOs, warm-up, or rejected requests."""
    from inferneo_bench.cli import main

    root = tmp_path_factory.mktemp("runs")
    variants = {
        "a": [],
        "b": [],
        "slo": ["--slo", "ttft_ms=100"],
        "slo2": ["--slo", "ttft_ms=1000"],
        "warm": ["--warmup", "10"],
        "rejected": ["--set", "kv_cache_tokens=64"],  # continuous can admit nothing
    }
    for run_id, extra in variants.items():
        try:
            main(["run", *SIM, "-n", "30", "--strategy", "fixed,continuous", "--out", str(root), "--run-id", run_id,
                  "--context-policy", "reject", *extra])  # fmt: skip
        except SystemExit as exc:
            assert exc.code in (0, None, 4)  # 4: saved, but INVALID (e.g. every request rejected)
    return root


@pytest.mark.parametrize(
    ("other", "phrase"), [("slo", "SLOs differs: None ("), ("warm", "warm-up requests differs: 0 (")]
)
def test_compare_refuses_other_slos_or_warmup_and_force_flags_every_format(cli, sim_runs, other, phrase):
    a, b = str(sim_runs / "a" / "fixed_size"), str(sim_runs / other / "continuous")
    code, out, err = cli("compare", a, b)
    assert code == 2 and out == "" and phrase in err and "--force" in err and err.count("\n") == 1
    for fmt in ("table", "markdown", "csv", "json"):
        code, out, err = cli("compare", a, b, "--force", "--format", fmt)
        assert code == 0, err
        assert "comparing anyway (--force)" in out, fmt  # on stdout in every format, not only on stderr


def test_check_refuses_other_slos_and_flags_when_forced(cli, sim_runs, tmp_path):
    args = ["check", "--baseline", str(sim_runs / "slo"), "--current", str(sim_runs / "slo2")]
    code, _, err = cli(*args)
    assert code == 2 and "SLOs differs: {'ttft_ms': 100.0} (" in err
    md = tmp_path / "s.md"
    code, out, _ = cli(*args, "--force", "--markdown", str(md), "--json", str(tmp_path / "v.json"))
    assert "warning: comparing anyway (--force): continuous: SLOs differs" in out
    assert "Compared despite differences (--force)" in md.read_text()
    assert json.loads((tmp_path / "v.json").read_text())["forced"]


def test_check_fails_when_every_current_request_was_rejected(cli, sim_runs):
    code, out, _ = cli("check", "--baseline", str(sim_runs / "a"), "--current", str(sim_runs / "rejected"), "--force")
    assert code == 1 and "check: FAIL" in out
    assert "no request completed in continuous (30 rejected" in out


def test_identical_simulated_runs_pass_and_count_metrics_are_gated(cli, sim_runs, tmp_path):
    code, out, err = cli("check", "--baseline", str(sim_runs / "a"), "--current", str(sim_runs / "b"),
                         "--json", str(tmp_path / "v.json"))  # fmt: skip
    assert code == 0, out + err
    rows = json.loads((tmp_path / "v.json").read_text())["comparisons"]
    assert {r["metric"] for r in rows} >= {"failed", "rejected", "cancelled", "output_throughput"}


def _trial_files(folder: Path, values: list[float], metric: str, engine: str = "torch") -> None:
    for i, v in enumerate(values, start=1):
        summary = {"output_throughput": 1000.0, "p99_ttft_ms": 100.0, "p99_tpot_ms": 20.0, "completed": 100, metric: v}
        results.save(make_run("continuous", summary, trial=i, engine=engine), folder / f"continuous-trial{i}.json")


def test_preemptions_at_zero_get_the_rank_test():
    """The issue's example: the log-scale test said n/a; the rank test on raw counts gives p = 0.004."""
    base = regress.Series("continuous", None, (), runs=[make_run(summary={"preemptions": v}) for v in [3, 0, 0, 0, 4]])
    cur = regress.Series("continuous", None, (), runs=[make_run(summary={"preemptions": v}) for v in [7, 7, 7, 6, 7]])
    row = regress.compare_series(base, cur, regress.parse_metric("preemptions"), regress.Settings())
    assert row.verdict == REGRESSION and row.method == "mann-whitney normal (ties) on raw values"
    assert row.p_worse == pytest.approx(0.0044, abs=5e-4)
    assert "shift +6 from a median of 0" in row.reason


def test_failed_counts_are_gated_by_default(tmp_path):
    _trial_files(tmp_path / "base", [0, 0, 0, 0, 0], "failed")
    _trial_files(tmp_path / "cur", [3, 4, 3, 5, 4], "failed")
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    row = next(c for c in report.comparisons if c.metric == "failed")
    assert row.verdict == REGRESSION and math.isinf(row.change) and report.exit_code == 1


def test_one_wall_clock_trial_per_side_is_inconclusive(tmp_path):
    """Issue 17 item 4: two identical torch runs gave p99_ttft_ms +107.8% REGRESSION '(deterministic trials)'."""
    for side, ttft in (("base", 100.0), ("cur", 207.8)):
        s = {"output_throughput": 1000.0, "p99_ttft_ms": ttft, "p99_tpot_ms": 20.0, "completed": 100}
        results.save(make_run("continuous", s, engine="torch"), tmp_path / side / "continuous")
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    row = next(c for c in report.comparisons if c.metric == "p99_ttft_ms")
    assert row.verdict == INCONCLUSIVE and report.exit_code == 3
    assert row.trials_needed == regress.min_trials_for_alpha(0.01) == 5
    assert "one wall-clock trial per side cannot separate a change from noise" in row.reason
    assert "deterministic" not in row.reason
    for side in ("base", "cur"):  # the same figures from the simulator (virtual clock) compare exactly
        path = tmp_path / side / "continuous"
        r = results.load(path)
        r.run.engine = "sim"
        results.save(r, path)
    row = next(
        c for c in regress.check([tmp_path / "base"], [tmp_path / "cur"]).comparisons if c.metric == "p99_ttft_ms"
    )
    assert row.verdict == REGRESSION and "(deterministic: simulated trials)" in row.reason


def test_a_missing_strategy_fails_the_check(tmp_path):
    _trial_files(tmp_path / "base", [1, 1, 1], "preemptions")
    results.save(make_run("fixed_size", {"completed": 3}, trial=1), tmp_path / "base" / "fixed_size-trial1.json")
    _trial_files(tmp_path / "cur", [1, 1, 1], "preemptions")
    report = regress.check([tmp_path / "base"], [tmp_path / "cur"])
    assert report.verdict == FAIL
    assert [c.reason for c in report.comparisons if c.verdict == FAIL] == [
        "in the baseline but missing from the current results; run it too"
    ]


def test_small_repeat_is_warned_before_the_run(capsys):
    from inferneo_bench.commands.run import warn_small_repeat

    warn_small_repeat(3, "torch")
    err = capsys.readouterr().err
    assert "--repeat 3: with 3 trials per side the smallest p-value `check` can reach is 0.050" in err
    assert "use --repeat 5 or more" in err
    for repeat, engine in ((5, "torch"), (3, "sim"), (1, "torch")):
        warn_small_repeat(repeat, engine)
        assert capsys.readouterr().err == ""
    assert 1 / math.comb(8, 4) > 0.01 > 1 / math.comb(10, 5)  # why 5: the exact test's smallest p
