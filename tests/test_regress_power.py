"""Pinned power and false-alarm rates of the gate (issue 9): 3% CV, 10 trials per side, 200 repetitions."""

from __future__ import annotations

from inferneo_bench import regress
from tests.regress_fixtures import summary, write_trials
from tests.regress_power import rates, samples


def test_power_for_a_true_8_percent_drop():
    r = rates(0.08, reps=200, seed=8)
    assert r[regress.REGRESSION] >= 0.90, r


def test_false_alarms_without_a_change():
    r = rates(0.0, reps=200, seed=0)
    assert r[regress.REGRESSION] <= 0.02, r
    assert r[regress.INCONCLUSIVE] <= 0.02, r  # a CI run that stops for nothing is a false alarm too


def test_rates_for_a_true_5_percent_drop_are_a_split_decision():
    r = rates(0.05, reps=200, seed=5)
    assert sum(r.values()) == 1.0
    # the true change sits on the threshold: the estimate lands either side of it about half the time
    assert 0.3 <= r[regress.REGRESSION] <= 0.7 and 0.3 <= r[regress.OK] <= 0.7, r


def test_vectorised_verdicts_are_what_check_decides(tmp_path):
    """The power study runs `gate_samples`; the command runs `check` on files. They must agree, row by row."""
    spec = [regress.parse_metric("output_throughput")]
    seen = set()
    for batch, (drop, trials) in enumerate([(0.06, 10), (0.10, 4), (-0.08, 6)]):
        base, cur = samples(drop, reps=4, trials=trials, seed=batch)
        expected = regress.gate_samples(base, cur, "higher", 0.05, 0.01, 0.01)
        for i in range(len(base)):
            b, c = tmp_path / f"b{batch}-{i}", tmp_path / f"c{batch}-{i}"
            write_trials(b, "adaptive", [summary(float(v)) for v in base[i]])
            write_trials(c, "adaptive", [summary(float(v)) for v in cur[i]])
            (row,) = regress.check([b], [c], spec).comparisons
            assert row.verdict == expected[i]
            seen.add(row.verdict)
    assert seen == {regress.REGRESSION, regress.OK, regress.INCONCLUSIVE, regress.IMPROVEMENT}
