"""Profiler on an analytic engine: what it measures, round-trips, refusals with one-line messages."""

from __future__ import annotations

import json
import statistics

import pytest

from inferneo_bench.engine.analytic import AnalyticEngine
from inferneo_bench.engine.profile import (
    QUICK_GRID,
    GridSpec,
    load_profile,
    read_profile,
    save_profile,
    shipped_profiles,
    validate_profile,
)
from inferneo_bench.errors import UserError
from inferneo_bench.steps import SeqStep, StepPlan
from tests.fakes import analytic_profile


def make(engine=None, grid=QUICK_GRID):
    return analytic_profile(engine, grid=grid, environment={"x": 1})


class SpikyEngine(AnalyticEngine):
    """Every 11th step takes 1 s longer (a burst of load on a shared machine)."""

    def step(self, plan: StepPlan):
        res = super().step(plan)
        if self.steps % 11 == 0 and plan.seqs:
            res.step_s += 1.0
        return res


def test_profile_keeps_a_robust_median_and_the_spread() -> None:
    engine, profile = make(SpikyEngine(per_attention=0.0), GridSpec(repeats=5, warmup=1))
    clean = AnalyticEngine(per_attention=0.0)
    spikes = 0
    for name, surf in profile.surfaces.items():
        for i, b in enumerate(surf["xs"]):
            for j, n in enumerate(surf["ys"]):
                median = surf["median_s"][i][j]
                if median is None:
                    continue
                if name == "decode":
                    plan = StepPlan([SeqStep(f"s{k}", n - 1, 1, True) for k in range(b)])
                    assert median == clean.cost(plan)  # passes spread the spikes: the median is clean
                assert surf["min_s"][i][j] <= median <= surf["max_s"][i][j]
                spikes += surf["max_s"][i][j] > median + 0.5
    assert spikes > 0
    assert not engine.live  # every profiling sequence was freed
    assert profile.model_info["name"] == "analytic" and profile.environment == {"x": 1}


def test_points_the_engine_cannot_hold_are_skipped() -> None:
    grid = GridSpec(
        decode_batch=(1, 8),
        decode_context=(16, 100),
        prefill_batch=(1, 8),
        prefill_tokens=(16, 64),
        mixed_decodes=(1, 8),
        mixed_tokens=(16,),
        mixed_context=32,
        max_step_tokens=256,
        repeats=1,
        warmup=0,
    )
    _, profile = make(AnalyticEngine(num_slots=6, max_model_len=64), grid)
    decode = profile.surfaces["decode"]
    assert decode["median_s"][1] == [None, None]  # batch 8 > 6 slots
    assert decode["ys"] == [16, 59]  # context 100 > 64: the largest the engine holds over the passes (warm steps too)
    assert profile.surfaces["prefill_unpadded"]["median_s"][0][1] is not None
    assert profile.surfaces["prefill_unpadded"]["median_s"][1] == [None, None]
    assert profile.surfaces["mixed"]["median_s"][1] == [None]


def test_round_trip(tmp_path) -> None:
    _, profile = make()
    path = save_profile(profile, tmp_path / "p.json")
    again = read_profile(path, model="analytic")
    assert again == profile
    assert save_profile(again, tmp_path / "q.json").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "corrupt profile JSON"),
        ('{"schema": "something-else"}', "not an inferneo-bench profile"),
        ('{"schema": "inferneo-bench-profile", "version": 99}', "profile version 99"),
        ('{"schema": "inferneo-bench-profile", "version": 1}', "profile lacks"),
    ],
)
def test_corrupt_profile_is_refused_with_one_line(tmp_path, content: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError) as info:
        read_profile(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_malformed_surfaces_are_refused(tmp_path) -> None:
    _, profile = make()
    data = profile.to_dict()
    data["surfaces"]["decode"]["median_s"] = [[None] * 3] * 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="malformed profile surfaces"):
        read_profile(path)


def test_profile_of_another_model_is_refused(tmp_path) -> None:
    _, profile = make()
    path = save_profile(profile, tmp_path / "p.json")
    with pytest.raises(UserError) as info:
        load_profile(path, model="gpt2")
    assert "profile of model 'analytic', not 'gpt2'" in str(info.value) and "\n" not in str(info.value)


def test_unknown_profile_name() -> None:
    with pytest.raises(UserError, match="no such profile"):
        load_profile("no-such-profile")


def test_shipped_tiny_cpu_profile_loads() -> None:
    assert "tiny-cpu" in shipped_profiles()
    profile = load_profile("tiny-cpu", model="tiny")
    assert profile.device_type == "cpu" and profile.copy_bandwidth_gbs


def test_validation_on_the_profiled_engine_is_close() -> None:
    engine, profile = make(grid=GridSpec(repeats=1, warmup=0))
    rows = validate_profile(AnalyticEngine(), profile, n=12)
    assert len(rows) == 12 and {r.kind for r in rows} == {"decode", "prefill_padded", "prefill_unpadded", "mixed"}
    assert statistics.median(r.ape for r in rows) < 0.1


def test_cli_validate_refuses_a_corrupt_profile(cli, tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("[1, 2")
    code, out, err = cli("profile", "--validate", str(path))
    assert code == 2 and err.count("\n") == 1 and "corrupt profile JSON" in err
