"""SimEngine: the real engine's bookkeeping, predicted step times, determinism byte for byte."""

from __future__ import annotations

import pickle
import random

import pytest

from inferneo_bench.engine.analytic import AnalyticEngine
from inferneo_bench.engine.cost_model import CostModel
from inferneo_bench.engine.sim_engine import SimEngine, load_sim_engine
from inferneo_bench.errors import UserError
from inferneo_bench.steps import SeqStep, StepPlan
from tests.fakes import analytic_profile


@pytest.fixture(scope="module")
def profile():
    return analytic_profile()[1]


def test_padded_step_bookkeeping_by_hand(profile) -> None:
    sim = SimEngine(profile)
    for s, n in (("a", 10), ("b", 6), ("c", 3)):
        sim.add_sequence(s, n)
    res = sim.step(
        StepPlan([SeqStep("a", 0, 10, True), SeqStep("b", 0, 6, True), SeqStep("c", 0, 3, True)], padded=True)
    )
    assert sorted(res.tokens) == ["a", "b", "c"]
    assert (res.useful_tokens, res.padded_tokens) == (19, 3 * 10 - 19)  # padded to the longest
    # c finished: its slot stays idle (one padding token); b does not sample (e.g. cancelled mid-step)
    res = sim.step(
        StepPlan([SeqStep("a", 10, 1, True), SeqStep("b", 6, 1, False), SeqStep("c", 3, 1, False, True)], padded=True)
    )
    assert list(res.tokens) == ["a"]
    assert (res.useful_tokens, res.padded_tokens) == (2, 1)
    assert res.step_s == CostModel(profile).predict(
        StepPlan([SeqStep("x", 10, 1, True), SeqStep("y", 6, 1, True), SeqStep("z", 3, 1, True)])
    )


def test_bookkeeping_matches_the_engine_on_random_plans(profile) -> None:
    rng = random.Random(7)
    sim, ref = SimEngine(profile), AnalyticEngine()
    for k in range(200):
        seqs = []
        for i in range(rng.randint(1, 12)):
            sid = f"{k}-{i}"
            n = rng.choice((1, 1, rng.randint(2, 300)))
            sim.add_sequence(sid, 400)
            ref.add_sequence(sid, 400)
            idle = rng.random() < 0.2
            seqs.append(SeqStep(sid, rng.randint(0, 50), 1 if idle else n, rng.random() < 0.8, idle=idle))
        plan = StepPlan(seqs, padded=rng.random() < 0.5)
        a, b = sim.step(plan), ref.step(plan)
        assert a.tokens.keys() == b.tokens.keys()
        assert (a.useful_tokens, a.padded_tokens, a.failed) == (b.useful_tokens, b.padded_tokens, b.failed)
        assert a.useful_tokens + a.padded_tokens == plan.computed_tokens
        done = [s.seq_id for s in seqs]
        sim.step(StepPlan([], free=done))
        ref.step(StepPlan([], free=done))


def _replay(profile, seed: int) -> bytes:
    sim = SimEngine(profile, seed=seed)
    rng = random.Random(3)
    results = []
    live: dict[str, int] = {}
    for k in range(300):
        plan = StepPlan([SeqStep(s, n - 1, 1, True) for s, n in live.items()])
        for _ in range(rng.randint(0, 2)):
            sid, n = f"r{k}-{len(live)}", rng.randint(2, 500)
            sim.add_sequence(sid, n)
            plan.seqs.append(SeqStep(sid, 0, n, True))
            live[sid] = n
        res = sim.step(plan)
        for s in res.tokens:
            live[s] += 1
        done = [s for s, n in live.items() if n > 300]
        for s in done:
            del live[s]
        if done:
            sim.step(StepPlan([], free=done))
        results.append(res)
    return pickle.dumps([(r.step_s, sorted(r.tokens.items()), r.useful_tokens, r.padded_tokens) for r in results])


def test_deterministic_byte_for_byte(profile) -> None:
    assert _replay(profile, 0) == _replay(profile, 0)
    assert _replay(profile, 0) != _replay(profile, 1)  # the seed changes token ids (never times)


def test_swaps_cost_the_copy_of_their_kv(profile) -> None:
    sim = SimEngine(profile)
    sim.add_sequence("a", 100)
    sim.step(StepPlan([SeqStep("a", 0, 100, True)]))
    out = sim.step(StepPlan([], swap_out=["a"]))
    assert out.swap_s == pytest.approx(100 * 1024 / 5e9) and out.step_s == out.swap_s
    back = sim.step(StepPlan([SeqStep("a", 100, 1, True)], swap_in=["a"]))
    assert back.swap_s == out.swap_s and back.step_s > back.swap_s


def test_limits_and_factory(profile) -> None:
    sim = load_sim_engine(profile, max_num_seqs=7, max_model_len=512)
    assert (sim.num_slots, sim.max_model_len) == (7, 512)
    with pytest.raises(ValueError):
        sim.add_sequence("x", 513)
    with pytest.raises(UserError, match="holds at most"):
        SimEngine(profile, max_model_len=10**6)
    with pytest.raises(UserError, match="not 'gpt2'"):
        load_sim_engine(profile, model="gpt2")
    assert sim.model_info()["simulated_from"]["device_name"] == "test"


def test_no_free_slot_fails_like_the_engine(profile) -> None:
    sim = SimEngine(profile, max_num_seqs=2)
    for s in "abc":
        sim.add_sequence(s, 4)
    res = sim.step(StepPlan([SeqStep(s, 0, 4, True) for s in "abc"]))
    assert sorted(res.tokens) == ["a", "b"] and res.failed == {"c": "no free KV cache slot (num_slots=2)"}
    assert res.useful_tokens == 8
    res = sim.step(StepPlan([SeqStep("c", 0, 4, True)], free=["a"]))  # a's slot is free again
    assert list(res.tokens) == ["c"] and not res.failed


def test_bookkeeping_equals_the_torch_engine(profile) -> None:
    """Same plans through the real tiny model and the simulator: same token keys, counts and failures."""
    torch = pytest.importorskip("torch")
    from inferneo_bench.engine import load_engine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small steps: one thread is faster, and far steadier on a shared machine
    try:
        _compare_with_torch(load_engine, profile)
    finally:
        torch.set_num_threads(threads)


def _compare_with_torch(load_engine, profile) -> None:
    real = load_engine("tiny", device="cpu", max_num_seqs=6, max_model_len=64, kv_cache_tokens=6 * 64)
    sim = SimEngine(profile, max_num_seqs=real.num_slots, max_model_len=64)
    rng = random.Random(11)
    pos: dict[str, int] = {}  # next start_pos of sequences whose prompt is done
    for k in range(20):
        seqs, free = [], []
        for sid in list(pos):
            if rng.random() < 0.15 or pos[sid] >= 60:
                free.append(sid)
                del pos[sid]
            else:
                seqs.append(SeqStep(sid, pos[sid], 1, rng.random() < 0.9))
        for i in range(rng.randint(0, 3)):
            sid, n = f"{k}-{i}", rng.randint(1, 12)
            real.add_sequence(sid, n)
            sim.add_sequence(sid, n)
            seqs.append(SeqStep(sid, 0, n, True))
        padded = rng.random() < 0.3
        if padded and seqs and rng.random() < 0.5:
            seqs.append(SeqStep(seqs[0].seq_id, 0, 1, False, idle=True))
        plan = StepPlan(seqs, padded=padded, free=free)
        a, b = real.step(plan), sim.step(plan)
        assert a.tokens.keys() == b.tokens.keys()
        assert (a.useful_tokens, a.padded_tokens, a.failed) == (b.useful_tokens, b.padded_tokens, b.failed)
        for s in seqs:
            if s.idle:
                continue
            if s.seq_id in a.failed:
                free.append(s.seq_id)
                pos.pop(s.seq_id, None)
            elif s.samples:
                pos[s.seq_id] = s.start_pos + s.num_tokens
            elif s.num_tokens == 1:  # a decode that did not sample: it is stuck, drop it
                pos.pop(s.seq_id, None)
        real.step(StepPlan([], free=[s.seq_id for s in seqs if s.seq_id not in pos]))
        sim.step(StepPlan([], free=[s.seq_id for s in seqs if s.seq_id not in pos]))
    real.close()
