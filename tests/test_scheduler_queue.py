"""The waiting queue against a sorted-list model: plain and bucketed modes, aging keys, lazy deletion."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inferneo_bench.scheduler.queue import SchedRequest, WaitingQueue

OPS = st.lists(
    st.tuples(st.sampled_from(["push", "push", "push", "pop", "remove", "top", "bucket_pop"]), st.integers(0, 10**6)),
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, bucketed=st.booleans(), enable=st.booleans(), aging=st.sampled_from([None, 5.0]))
def test_queue_matches_sorted_model(ops, bucketed: bool, enable: bool, aging) -> None:
    q = WaitingQueue(enable, aging)
    if bucketed:
        q.enable_buckets(16)
    model: dict[str, tuple[tuple, int, float]] = {}  # rid -> (key, prompt, arrival)
    n = 0

    def best(rids) -> str | None:
        rids = list(rids)
        return min(rids, key=lambda r: model[r][0]) if rids else None

    for op, x in ops:
        if op == "push":
            req = SchedRequest(f"r{n}", 1 + x % 70, 1, 1 + x % 10, arrival_s=(x % 7) * 0.001)
            entry = q.push(req)
            model[req.request_id] = ((*q.key_of(req), entry.seq), req.prompt_tokens, req.arrival_s)
            n += 1
        elif op == "pop":
            e = q.pop()
            expect = best(model)
            assert (e.req.request_id if e else None) == expect
            model.pop(expect, None)
        elif op == "remove" and model:
            rid = sorted(model)[x % len(model)]
            assert q.remove(rid) is not None and q.remove(rid) is None
            del model[rid]
        elif op == "top":
            k = 1 + x % 5
            assert [e.req.request_id for e in q.top(k)] == sorted(model, key=lambda r: model[r][0])[:k]
        elif op == "bucket_pop" and bucketed:
            b = x % 5
            e = q.bucket_pop(b)
            expect = best(r for r in model if model[r][1] // 16 == b)
            assert (e.req.request_id if e else None) == expect
            model.pop(expect, None)
        assert len(q) == len(model)
        assert q.tokens == sum(v[1] for v in model.values())
        head = q.peek()
        assert (head.req.request_id if head else None) == best(model)
        oldest = q.oldest()
        if model:
            assert oldest.req.arrival_s == min(v[2] for v in model.values())
        else:
            assert oldest is None
    if bucketed:
        counts: dict[str, int] = {}
        for _, prompt, _ in model.values():
            label = f"{prompt // 16 * 16}-{prompt // 16 * 16 + 15}"
            counts[label] = counts.get(label, 0) + 1
        assert q.bucket_summary() == dict(sorted(counts.items(), key=lambda kv: int(kv[0].split("-")[0])))


def test_switching_modes_keeps_order() -> None:
    q = WaitingQueue(True, None)
    for i, (p, prio) in enumerate([(10, 1), (50, 9), (20, 5)]):
        q.push(SchedRequest(f"r{i}", p, 1, prio, arrival_s=0.0))
    q.enable_buckets(16)
    assert [e.req.request_id for e in q.top(3)] == ["r1", "r2", "r0"]
    q.enable_buckets(None)
    assert [q.pop().req.request_id for _ in range(3)] == ["r1", "r2", "r0"]
