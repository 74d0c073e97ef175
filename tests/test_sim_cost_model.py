"""Cost model: exact on grid points, monotone between them, documented behaviour outside the grid."""

from __future__ import annotations

import copy
import random

import pytest

from inferneo_bench.engine.analytic import AnalyticEngine
from inferneo_bench.engine.cost_model import CostModel, Curve, Surface
from inferneo_bench.steps import SeqStep, StepPlan
from tests import fakes


def random_table(rng: random.Random, nx: int, ny: int) -> tuple[list[int], list[int], list[list[float]]]:
    xs = sorted(rng.sample(range(1, 200), nx))
    ys = sorted(rng.sample(range(1, 5000), ny))
    return xs, ys, [[rng.uniform(1e-4, 1.0) for _ in ys] for _ in xs]


@pytest.mark.parametrize("seed", range(20))
def test_surface_is_exact_on_grid_points(seed: int) -> None:
    rng = random.Random(seed)
    xs, ys, vals = random_table(rng, rng.randint(1, 6), rng.randint(1, 6))
    surf = Surface(xs, ys, vals)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            assert surf(x, y) == vals[i][j]


@pytest.mark.parametrize("seed", range(20))
def test_surface_is_monotone_between_neighbouring_grid_points(seed: int) -> None:
    rng = random.Random(seed)
    xs, ys, vals = random_table(rng, rng.randint(2, 5), rng.randint(2, 5))
    surf = Surface(xs, ys, vals)

    def check(points: list[float]) -> None:
        diffs = [b - a for a, b in zip(points, points[1:], strict=False)]
        assert all(d >= -1e-15 for d in diffs) or all(d <= 1e-15 for d in diffs)

    for i, x in enumerate(xs):  # along y, between each pair of neighbours
        for j in range(len(ys) - 1):
            ts = [ys[j] + (ys[j + 1] - ys[j]) * k / 16 for k in range(17)]
            line = [surf(x, t) for t in ts]
            check(line)
            assert min(vals[i][j], vals[i][j + 1]) - 1e-15 <= min(line)
            assert max(line) <= max(vals[i][j], vals[i][j + 1]) + 1e-15
    for y in ys:  # along x
        for i in range(len(xs) - 1):
            check([surf(xs[i] + (xs[i + 1] - xs[i]) * k / 16, y) for k in range(17)])
    # off-grid lines too (bilinear: linear along each axis inside a cell)
    y = (ys[0] + ys[1]) / 2
    for i in range(len(xs) - 1):
        check([surf(xs[i] + (xs[i + 1] - xs[i]) * k / 16, y) for k in range(17)])


def test_outside_the_grid_clamps_below_and_extends_above() -> None:
    curve = Curve([10, 20, 40], [1.0, 2.0, 3.0])
    assert curve(0) == 1.0 and curve(10) == 1.0
    assert curve(30) == pytest.approx(2.5)
    assert curve(80) == pytest.approx(3.0 + 40 * (1.0 / 20))  # last segment's slope
    falling = Curve([1, 2], [2.0, 1.0])
    assert falling(10) == 1.0  # never a negative slope beyond the grid
    surf = Surface([1, 2], [10, 20], [[1.0, 2.0], [3.0, 4.0]])
    assert surf(0.5, 10) == 1.0
    assert surf(4, 10) == pytest.approx(3.0 + 2 * 2.0)


def test_skipped_points_are_extrapolated_per_row() -> None:
    surf = Surface([1, 2], [10, 20, 30], [[1.0, 2.0, 3.0], [2.0, 4.0, None]])
    assert surf(2, 30) == pytest.approx(6.0)  # row 2 extended with its last slope
    assert surf(1.5, 30) == pytest.approx(4.5)


def analytic_profile(**kw):
    return fakes.analytic_profile(AnalyticEngine(**kw))


def test_predict_is_exact_on_a_profiled_decode_point() -> None:
    engine, profile = analytic_profile(per_attention=0.0)  # no context drift over the repeats
    cost = CostModel(profile)
    surf = profile.surfaces["decode"]
    for b, row in zip(surf["xs"], surf["median_s"], strict=False):
        for c, median in zip(surf["ys"], row, strict=False):
            plan = StepPlan([SeqStep(f"s{i}", c - 1, 1, True) for i in range(b)])
            assert cost.predict(plan) == median == engine.cost(plan)


def test_predict_routes_plans_to_their_surface() -> None:
    _, profile = analytic_profile()
    cost = CostModel(profile)
    assert cost.stat == "mean_s"  # the default since profiles record means
    pp, pu, mx = (profile.surfaces[k]["mean_s"] for k in ("prefill_padded", "prefill_unpadded", "mixed"))
    padded = StepPlan(
        [SeqStep("a", 0, 128, True), SeqStep("b", 0, 100, True), SeqStep("c", 0, 50, True), SeqStep("d", 9, 1, True)],
        padded=True,
    )
    assert cost.predict(padded) == pp[1][1]  # B=4, longest 128
    unpadded = StepPlan([SeqStep("a", 0, 16, True)])
    assert cost.predict(unpadded) == pu[0][0]
    mixed = StepPlan(
        [SeqStep("p", 0, 256, True)] + [SeqStep(f"d{i}", profile.mixed_context - 1, 1, True) for i in range(8)]
    )
    assert cost.predict(mixed) == pytest.approx(mx[1][1], rel=1e-12)
    assert cost.predict(StepPlan([])) == 0.0
    assert cost.predict(StepPlan([]), swap_tokens=1000) == pytest.approx(1000 * 1024 / 5e9)


def test_min_statistic_is_exact_on_its_grid_points() -> None:
    _, profile = analytic_profile()
    cost = CostModel(profile, "min_s")
    surf = profile.surfaces["prefill_unpadded"]
    for b, row in zip(surf["xs"], surf["min_s"], strict=True):
        for n, low in zip(surf["ys"], row, strict=True):
            if low is not None:
                assert cost.predict(StepPlan([SeqStep(f"s{i}", 0, n, True) for i in range(b)])) == low
    with pytest.raises(ValueError, match="stat"):
        CostModel(profile, "p99_s")
    older = copy.deepcopy(profile)  # a profile made before means were recorded: medians, as before
    for surface in older.surfaces.values():
        del surface["mean_s"]
    assert CostModel(older).stat == "median_s"
    with pytest.raises(ValueError, match="does not record it"):
        CostModel(older, "mean_s")


def test_mean_statistic_is_the_samples_mean() -> None:
    # the simulated time of a run is the sum of predicted step times: a mean, not a median, adds up to the
    # real engine's total when step times are skewed (interference on a shared machine)
    _, profile = analytic_profile()  # the context grows over the repeats: samples differ a little
    surf = profile.surfaces["decode"]
    rows = zip(surf["mean_s"], surf["min_s"], surf["max_s"], strict=True)
    assert all(low <= mean <= high for r in rows for mean, low, high in zip(*r, strict=True) if mean is not None)
    _, steady = analytic_profile(per_attention=0.0)  # identical samples: the mean is that value exactly
    assert steady.surfaces["decode"]["mean_s"] == steady.surfaces["decode"]["median_s"]
