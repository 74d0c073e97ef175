"""`inferneo-bench check` end to end: exit codes, table, markdown and JSON outputs, one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.regress_fixtures import summary, write_single, write_trials

NOISE = [1.00, 0.98, 1.02, 0.99, 1.01, 0.97, 1.03, 1.005, 0.985, 1.015]
NOISE2 = [1.01, 0.99, 0.975, 1.02, 1.004, 0.995, 1.025, 0.98, 1.0, 1.012]


def trials(tput, noise=NOISE):
    scale = tput / 1000
    return [summary(tput * f, 100 / scale / f, 20 / scale / f) for f in noise]


@pytest.fixture
def baseline(tmp_path):
    for strategy in ("adaptive", "continuous"):
        write_trials(tmp_path / "base", strategy, trials(1000))
    return tmp_path / "base"


def run_check(cli, baseline, current, *extra):
    return cli("check", "--baseline", str(baseline), "--current", str(current), *extra)


def test_identical_runs_pass(cli, baseline, tmp_path):
    code, out, err = run_check(cli, baseline, baseline, "--markdown", str(tmp_path / "s.md"))
    assert code == 0, err
    assert "adaptive: baseline vs current" in out and "continuous: baseline vs current" in out
    assert "check: OK" in out
    md = (tmp_path / "s.md").read_text()
    assert md.startswith("## inferneo-bench check: ✅ OK")
    assert md.count("| adaptive |") == 3 and md.count("| continuous |") == 3


def test_regression_exits_one_with_markdown_and_json(cli, baseline, tmp_path):
    write_trials(tmp_path / "cur", "adaptive", trials(800, NOISE2))
    write_trials(tmp_path / "cur", "continuous", trials(1000, NOISE2))
    md, js = tmp_path / "out" / "summary.md", tmp_path / "out" / "verdicts.json"
    code, out, err = run_check(cli, baseline, tmp_path / "cur", "--markdown", str(md), "--json", str(js))
    assert code == 1, err
    assert "REGRESSION" in out and "check: REGRESSION" in out
    data = json.loads(js.read_text())
    assert data["verdict"] == "REGRESSION" and data["exit_code"] == 1
    assert data["settings"] == {"threshold": 0.05, "noise_floor": 0.01, "alpha": 0.01, "power": 0.9}
    rows = {(r["strategy"], r["metric"]): r for r in data["comparisons"]}
    tput = rows[("adaptive", "output_throughput")]
    assert tput["verdict"] == "REGRESSION" and tput["n_baseline"] == tput["n_current"] == 10
    assert -0.21 < tput["change"] < -0.19 and tput["p_value"] == tput["p_worse"] < 0.01
    assert rows[("continuous", "output_throughput")]["verdict"] == "OK"
    text = md.read_text()
    assert "## inferneo-bench check: ❌ REGRESSION" in text
    assert "| adaptive | output_throughput ↑ | 10/10 | 1,002 | 801.6 | -20.0% | -21.6 .. -18.2% | 5.4e-06 |" in text
    assert "**REGRESSION**" in text and "Details:" in text


def test_improvement_exits_zero(cli, baseline, tmp_path):
    write_trials(tmp_path / "cur", "adaptive", trials(1200, NOISE2))
    write_trials(tmp_path / "cur", "continuous", trials(1000, NOISE2))
    code, out, _ = run_check(cli, baseline, tmp_path / "cur")
    assert code == 0
    assert "IMPROVEMENT" in out


def test_a_strategy_missing_from_the_current_results_fails(cli, baseline, tmp_path):
    write_trials(tmp_path / "cur", "adaptive", trials(1200, NOISE2))
    code, out, _ = run_check(cli, baseline, tmp_path / "cur")
    assert code == 1 and "check: FAIL" in out
    assert "in the baseline but missing from the current results" in out


def test_inconclusive_exits_three(cli, tmp_path):
    write_trials(tmp_path / "base", "adaptive", trials(1000, NOISE[:3]))
    write_trials(tmp_path / "cur", "adaptive", trials(900, NOISE2[:3]))
    code, out, _ = run_check(cli, tmp_path / "base", tmp_path / "cur", "--metric", "output_throughput")
    assert code == 3
    assert "INCONCLUSIVE" in out and "trials per side" in out and "unbounded" in out


def test_single_trial_exact_and_metric_threshold(cli, tmp_path):
    write_single(tmp_path / "base", "adaptive", summary(1000.0, 100.0, 20.0))
    write_single(tmp_path / "cur", "adaptive", summary(940.0, 100.0, 20.0))
    assert run_check(cli, tmp_path / "base", tmp_path / "cur")[0] == 1
    code, out, _ = run_check(cli, tmp_path / "base", tmp_path / "cur", "--metric", "output_throughput:10%")
    assert code == 0 and "exact: -6.0% is within the 10% threshold" in out
    assert run_check(cli, tmp_path / "base", tmp_path / "cur", "--threshold", "7")[0] == 0


def test_bad_input_is_one_line_exit_two(cli, baseline, tmp_path):
    code, _, err = run_check(cli, baseline, baseline, "--metric", "tput")
    assert code == 2
    assert err.startswith("error: --metric 'tput': unknown metric 'tput'; known metrics: output_throughput")
    assert err.count("\n") == 1
    write_trials(tmp_path / "cur", "adaptive", trials(1000)[:3], engine="sim")
    code, _, err = run_check(cli, baseline, tmp_path / "cur")
    assert code == 2 and "not comparable" in err and "engine differs: 'torch' (" in err and "vs 'sim' (" in err
    assert err.count("\n") == 1
    code, _, err = run_check(cli, baseline, tmp_path / "missing")
    assert code == 2 and "no such file or folder" in err


def test_help_lists_options(cli):
    code, out, _ = cli("check", "--help")
    assert code == 0
    for option in ("--baseline", "--current", "--metric", "--threshold", "--noise-floor", "--alpha", "--markdown"):
        assert option in out
