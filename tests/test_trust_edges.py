"""Issue 15, kind 5: semantics at the edges. A request never counts as completed after its deadline; a trace's
span is checked before replaying; failed/rejected/cancelled shares have validity limits; `failed` has vLLM's
meaning; a completed record without tokens does not crash summarize; SLOs are tested in seconds, as vLLM."""

from __future__ import annotations

import pytest

from inferneo_bench.errors import UserError
from inferneo_bench.metrics import meets_slo, summarize
from inferneo_bench.results import RequestRecord
from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.replay import ReplayOptions, replay
from inferneo_bench.runner.validity import ValidityRules, judge
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore
from inferneo_bench.steps import StepResult
from inferneo_bench.workload.span import check_span
from inferneo_bench.workload.spec import RequestSpec, Workload


class SlowEngine:
    """Every step takes 0.3 s and produces one token per sampling sequence (a 1-token request at 338 ms)."""

    max_model_len = 4096

    def add_sequence(self, seq_id, prompt_len, prompt_ids=None):
        pass

    def step(self, plan):
        tokens = {s.seq_id: 1 for s in plan.seqs if s.samples and not s.idle}
        return StepResult(0.3, tokens, useful_tokens=sum(s.num_tokens for s in plan.seqs), padded_tokens=0)


def test_no_request_completes_after_its_deadline_even_inside_a_step():
    specs = [RequestSpec(f"r{i}", 0.01 * i, 16, n) for i, n in enumerate([1, 1, 3, 1])]
    core = SchedulerCore(SchedulerConfig(), "continuous")
    out = replay(specs, core, SlowEngine(), VirtualClock(), ReplayOptions(max_model_len=4096, request_timeout_s=0.05))
    for r in out.requests:
        assert r.status == "cancelled" and r.reason == "client timeout after 0.05 s"
        assert r.finish_s == pytest.approx(r.arrival_s + 0.05)  # at its deadline, not when the loop noticed
        assert r.output_tokens == 0 and r.first_token_s is None  # the token at 0.3 s was never delivered
    generous = replay(specs, SchedulerCore(SchedulerConfig(), "continuous"), SlowEngine(), VirtualClock(),
                      ReplayOptions(max_model_len=4096, request_timeout_s=10.0))  # fmt: skip
    assert all(r.status == "completed" and r.finish_s - r.arrival_s <= 10.0 for r in generous.requests)


def _workload(arrivals: list[float]) -> Workload:
    return Workload("t", [RequestSpec(f"r{i}", t, 8, 4) for i, t in enumerate(arrivals)])


def test_a_row_dated_2099_is_refused_unless_allowed():
    arrivals = [0.0, 1.0, 2.5, 3.0, (2099 - 2023) * 365.25 * 86400]
    with pytest.raises(UserError) as info:
        check_span(_workload(arrivals), wall_clock=False, allow_long=False)
    assert "one gap of 76.0 years (before request r4) is more than 10x the rest of the workload (3.0 s)" in str(
        info.value
    )
    assert "--allow-long" in str(info.value)
    check_span(_workload(arrivals), wall_clock=False, allow_long=True)
    check_span(_workload([0.0, 3600.0 * 5, 3600 * 10, 3600 * 30]), wall_clock=False, allow_long=False)  # nights
    with pytest.raises(UserError, match="arrivals span 1.2 days, and a wall-clock replay lasts as long"):
        check_span(_workload([0.0, 3600.0 * 5, 3600 * 10, 3600 * 30]), wall_clock=True, allow_long=False)


def test_the_span_is_reported_before_replaying(cli, tmp_path):
    code, out, err = cli("run", "--engine", "sim", "--profile", "tiny-cpu", "-n", "5", "--out", str(tmp_path),
                         "--min-requests", "1", "--min-duration", "0")  # fmt: skip
    assert code == 0, err
    assert any(line.startswith("arrivals span ") and "virtual clock" in line for line in out.splitlines()), out


def _summary(statuses: dict[str, int]) -> dict:
    records, i = [], 0
    for status, n in statuses.items():
        for _ in range(n):
            done = status == "completed"
            first, itl = (0.1, [0.1]) if done else (None, [])
            records.append(RequestRecord(f"r{i}", 0.0, 8, 2 if done else 0, 2, 2, 5, status, first_token_s=first,
                                         finish_s=0.2, itl_s=itl))  # fmt: skip
            i += 1
    return summarize(records, [])


def test_a_mostly_cancelled_run_is_invalid_with_named_checks():
    s = _summary({"completed": 41, "cancelled": 79})
    verdict = judge(s, "completed", ValidityRules(min_duration_s=0, min_requests=1))
    assert verdict["valid"] is False
    assert verdict["checks"]["max_cancelled_share"] is False and verdict["checks"]["max_failed_share"] is False
    assert "79 of 120 requests cancelled (65.8% > 1%)" in verdict["failed"]
    ok = judge(_summary({"completed": 199, "rejected": 1}), "completed", ValidityRules(min_duration_s=0))
    assert ok["valid"], ok["failed"]  # 0.5% rejected: within the 1% limit


def test_the_failed_share_is_not_said_twice_when_the_breakdown_names_it():
    rules = ValidityRules(min_duration_s=0, min_requests=1)
    only_rejected = judge(_summary({"completed": 80, "rejected": 20}), "completed", rules)
    assert only_rejected["checks"]["max_failed_share"] is False  # still recorded ...
    assert only_rejected["failed"] == ["20 of 100 requests rejected (20.0% > 1%)"]  # ... said once
    errored = judge(_summary({"completed": 80, "rejected": 10, "failed": 10}), "completed", rules)
    assert "20 of 100 requests failed (20.0% > 1%)" in errored["failed"]  # errors: the total is news


def test_failed_has_vllms_meaning_with_the_breakdown_beside_it():
    s = _summary({"completed": 5, "rejected": 2, "cancelled": 3, "failed": 1})
    assert (s["completed"], s["failed"], s["rejected"], s["cancelled"], s["errored"]) == (5, 6, 2, 3, 1)


def test_a_completed_record_without_tokens_does_not_crash_summarize():
    records = [
        RequestRecord("a", 0.0, 8, 0, 4, 4, 5, "completed", finish_s=0.5),  # imported: an empty completion
        RequestRecord("b", 0.0, 8, 2, 2, 2, 5, "completed", first_token_s=0.1, finish_s=0.2, itl_s=[0.1]),
    ]
    s = summarize(records, [], slo={"ttft_ms": 1000})
    assert s["completed"] == 2 and s["mean_ttft_ms"] == pytest.approx(100.0) and s["mean_e2el_ms"] == pytest.approx(350)
    assert s["request_goodput"] == pytest.approx(1 / 0.5)  # the tokenless one has no TTFT: it misses the SLO


def test_slos_are_compared_in_seconds_as_vllm_does():
    r = RequestRecord("r", 3.2628747, 8, 1, 1, 1, 5, "completed", first_token_s=3.51475, finish_s=3.51475)
    ttft_s = r.first_token_s - r.arrival_s
    assert ttft_s * 1000 > 251.8753 and ttft_s <= 251.8753 / 1000  # the two comparisons disagree here
    assert meets_slo(r, {"ttft_ms": 251.8753})  # vLLM: s >= r with s = slo_ms / 1000
