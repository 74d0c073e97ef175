"""The cached, batched step execution equals a naive full recompute (no cache), in float32."""

from __future__ import annotations

import pytest
import torch

from inferneo_bench.engine import load_engine
from inferneo_bench.engine.torch_engine import TorchEngine, bucket_for, ctx_bucket_for
from inferneo_bench.steps import SeqStep, StepPlan

TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(model: str = "tiny", slots: int = 4, max_len: int = 64, **kw) -> TorchEngine:
    return load_engine(
        model, device="cpu", max_num_seqs=slots, max_model_len=max_len, kv_cache_tokens=slots * max_len,
        keep_logits=True, **kw,
    )  # fmt: skip


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def check(engine: TorchEngine, seq_ids) -> None:
    """Each sampled sequence's logits equal the naive forward over its tokens (the last one excluded:
    it is the token just sampled), and the sampled token is their argmax."""
    for sid in seq_ids:
        toks = engine.tokens_of(sid)
        ref = engine.model.reference_logits(torch.tensor([toks[:-1]]))[0, -1]
        assert rel_err(engine.last_logits[sid], ref) < TOL, sid
        assert toks[-1] == int(ref.argmax())


def run(engine: TorchEngine, plan: StepPlan):
    res = engine.step(plan)
    assert res.useful_tokens == plan.useful_tokens
    assert res.padded_tokens == plan.computed_tokens - plan.useful_tokens
    assert not res.failed
    assert res.step_s > 0
    check(engine, [s.seq_id for s in plan.seqs if s.samples and not s.idle])
    assert set(res.tokens) == {s.seq_id for s in plan.seqs if s.samples and not s.idle}
    return res


@pytest.mark.parametrize("model", ["tiny", "tiny-gpt2"])
def test_padded_static_batch_with_idle_slots(model):
    e = make(model)
    lens = {"a": 7, "b": 12, "c": 3}
    for sid, n in lens.items():
        e.add_sequence(sid, n)
    res = run(e, StepPlan([SeqStep(s, 0, n, True) for s, n in lens.items()], padded=True, batch_id=1))
    assert res.padded_tokens == 12 * 3 - 22
    live = dict(lens)
    for i in range(4):
        if i == 2:  # "c" finished: its slot is freed but it stays in the frozen batch as an idle row
            del live["c"]
            free = ["c"]
        else:
            free = []
        seqs = [SeqStep(s, n + i, 1, True) for s, n in live.items()]
        if "c" not in live:
            seqs.append(SeqStep("c", 0, 1, False, idle=True))
        res = run(e, StepPlan(seqs, padded=True, batch_id=1, free=free))
        assert res.padded_tokens == (1 if "c" not in live else 0)


def test_padded_prefill_with_idle_rows_computes_one_token_each():
    e = make()
    e.add_sequence("a", 5)
    e.add_sequence("b", 9)
    run(e, StepPlan([SeqStep("a", 0, 5, True), SeqStep("b", 0, 9, True)], padded=True))
    e.add_sequence("x", 6)  # a (contrived) padded step with a multi-token row and an idle row
    plan = StepPlan(
        [SeqStep("x", 0, 6, True), SeqStep("b", 9, 1, True), SeqStep("a", 0, 1, False, idle=True)], padded=True
    )
    res = run(e, plan)
    assert res.padded_tokens == 5 + 1
    run(e, StepPlan([SeqStep("b", 10, 1, True), SeqStep("x", 6, 1, True)], padded=True))


@pytest.mark.parametrize("model", ["tiny", "tiny-gpt2"])
def test_continuous_steps_mix_prefill_chunks_and_decodes(model):
    e = make(model)
    for sid, n in (("a", 10), ("b", 4), ("c", 9), ("d", 8)):
        e.add_sequence(sid, n)
    run(e, StepPlan([SeqStep("b", 0, 4, True), SeqStep("a", 0, 4, False)]))
    run(e, StepPlan([SeqStep("b", 4, 1, True), SeqStep("a", 4, 4, False), SeqStep("c", 0, 4, False)]))
    res = run(e, StepPlan([SeqStep("b", 5, 1, True), SeqStep("a", 8, 2, True), SeqStep("c", 4, 5, True),
                           SeqStep("d", 0, 8, True)]))  # fmt: skip
    assert res.padded_tokens == 0
    for i in range(3):
        run(e, StepPlan([SeqStep(s, n + i, 1, True) for s, n in (("a", 10), ("b", 6), ("c", 9), ("d", 8))]))


def test_chunked_prefill_equals_whole_prefill():
    e = make()
    ids = torch.randint(0, e.cfg.vocab_size, (20,), generator=torch.Generator().manual_seed(3)).tolist()
    e.add_sequence("whole", 20, ids)
    e.add_sequence("chunked", 20, ids)
    run(e, StepPlan([SeqStep("whole", 0, 20, True)]))
    for start, n in ((0, 7), (7, 7), (14, 5)):
        run(e, StepPlan([SeqStep("chunked", start, n, False)]))
    run(e, StepPlan([SeqStep("chunked", 19, 1, True)]))
    assert e.tokens_of("whole") == e.tokens_of("chunked")


def test_swap_out_and_in_preserves_the_cache():
    e = make(slots=2)
    e.add_sequence("a", 9)
    e.add_sequence("b", 5)
    e.add_sequence("c", 6)
    run(e, StepPlan([SeqStep("a", 0, 9, True), SeqStep("b", 0, 5, True)]))
    run(e, StepPlan([SeqStep("a", 9, 1, True), SeqStep("b", 5, 1, True)]))
    res = run(e, StepPlan([SeqStep("c", 0, 6, True), SeqStep("b", 6, 1, True)], swap_out=["a"], preempted=["a"]))
    assert res.swap_s > 0 and res.step_s >= res.swap_s
    run(e, StepPlan([SeqStep("c", 6, 1, True)], free=["b"]))  # c reuses nothing of a's old slot content
    res = run(e, StepPlan([SeqStep("a", 10, 1, True), SeqStep("c", 7, 1, True)], swap_in=["a"]))
    assert res.swap_s > 0
    run(e, StepPlan([SeqStep("a", 11, 1, True), SeqStep("c", 8, 1, True)]))


def test_recompute_after_free():
    e = make(slots=1)
    e.add_sequence("a", 8)
    e.add_sequence("b", 8)
    run(e, StepPlan([SeqStep("a", 0, 8, True)]))
    run(e, StepPlan([SeqStep("a", 8, 1, True)]))
    run(e, StepPlan([SeqStep("b", 0, 8, True)], free=["a"], preempted=["a"]))  # b overwrites a's slot
    n = len(e.tokens_of("a"))
    run(e, StepPlan([SeqStep("a", 0, n, True)], free=["b"]))  # recompute prompt + generated, then sample
    run(e, StepPlan([SeqStep("a", n, 1, True)]))


def test_slot_reuse_over_many_sequences():
    e = make(slots=3, max_len=32)
    active: list[str] = []
    for i in range(20):
        sid = f"r{i}"
        e.add_sequence(sid, 3 + i % 7)
        free = [active.pop(0)] if len(active) == 3 else []
        run(e, StepPlan([SeqStep(sid, 0, 3 + i % 7, True)], free=free))
        active.append(sid)
        decodes = [SeqStep(s, len(e.tokens_of(s)) - 1, 1, True) for s in active]
        run(e, StepPlan(decodes))
    assert e.cache.free_slots == 0
    run(e, StepPlan([], free=list(active)))
    assert e.cache.free_slots == 3


def test_no_free_slot_is_reported_failed():
    e = make(slots=1)
    e.add_sequence("a", 4)
    e.add_sequence("b", 4)
    res = e.step(StepPlan([SeqStep("a", 0, 4, True), SeqStep("b", 0, 4, True)]))
    assert set(res.tokens) == {"a"} and "no free KV cache slot" in res.failed["b"]


def test_injected_oom_fails_the_step_and_engine_keeps_serving(monkeypatch):
    e = make(slots=2)
    e.add_sequence("a", 6)
    e.add_sequence("b", 6)
    run(e, StepPlan([SeqStep("a", 0, 6, True)]))
    calls = {"n": 0}
    real = e._forward_call

    def boom(rows, t):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(rows, t)

    monkeypatch.setattr(e, "_forward_call", boom)
    res = e.step(StepPlan([SeqStep("a", 6, 1, True), SeqStep("b", 0, 6, True)]))
    assert res.tokens == {}
    assert set(res.failed) == {"a", "b"}
    assert res.failed["a"].startswith("CUDA out of memory")
    assert e.cache.free_slots == 2  # memory released
    e.add_sequence("c", 5)
    run(e, StepPlan([SeqStep("c", 0, 5, True)]))
    run(e, StepPlan([SeqStep("c", 5, 1, True)]))


def test_bucketed_decode_path_matches_reference():
    """The CUDA-graph path's logic, run eagerly: batch padded to a bucket, context to a power of two, the
    slot layout (rows = slots, no gather) when slots are compact, the gather layout when they are not."""
    e = make(slots=8, max_len=300, bucketed_decode=True)
    for i in range(8):
        e.add_sequence(f"s{i}", 4 + 3 * i)
    run(e, StepPlan([SeqStep(f"s{i}", 0, 4 + 3 * i, True) for i in range(5)]))  # slots 0..4
    for k in range(2):  # 4 decodes + 1 idle row -> bucket 8; rows = slots, the idle row takes a hole
        seqs = [SeqStep(f"s{i}", 4 + 3 * i + k, 1, True) for i in range(4)]
        seqs.append(SeqStep("s4", 0, 1, False, idle=True))
        run(e, StepPlan(seqs, padded=True, free=["s4"] if k == 0 else []))
        assert e.decoder.last_layout == "slot"
    run(e, StepPlan([SeqStep(f"s{i}", 0, 4 + 3 * i, True) for i in (5, 6, 7)]))  # slots 4..6
    # decodes on slots 5 and 6 only: rows = slots would need bucket 8, over twice bucket 2 -> gather
    run(e, StepPlan([SeqStep("s6", 22, 1, True), SeqStep("s7", 25, 1, True)], free=["s0", "s1"]))
    assert e.decoder.last_layout == "gather"
    run(e, StepPlan([SeqStep(f"s{i}", 4 + 3 * i + 2, 1, True) for i in (2, 3)]))  # slots 2, 3: bucket 4 as slot rows
    assert e.decoder.last_layout == "slot"
    assert bucket_for(5, e.decoder.buckets) == 8
    assert [ctx_bucket_for(n, 300) for n in (1, 256, 257)] == [256, 256, 300]
    assert bucket_for(10_000, e.decoder.buckets) is None


def test_prompt_ids_are_deterministic_and_context_is_asserted():
    e1, e2 = make(), make()
    e1.add_sequence("q", 10)
    e2.add_sequence("q", 10)
    e1.add_sequence("r", 10)
    assert e1.tokens_of("q") == e2.tokens_of("q") != e1.tokens_of("r")
    with pytest.raises(AssertionError):
        e1.add_sequence("long", 65)
    with pytest.raises(ValueError):
        e1.add_sequence("q", 3)


def test_model_info_and_sizes():
    e = make()
    info = e.model_info()
    cfg = e.cfg
    assert info["kv_bytes_per_token"] == 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4
    assert info["weight_bytes"] == 4 * info["params"] and info["device_type"] == "cpu"
    assert info["num_slots"] == 4 and info["max_model_len"] == 64 and info["dtype"] == "float32"
    assert 1_000_000 < info["params"] < 10_000_000
    e.close()
    e.close()


@pytest.mark.parametrize("seed,bucketed", [(0, False), (2, False), (3, False), (0, True), (3, True)])
def test_random_schedules_match_reference(seed, bucketed):
    """A random scheduler: chunked prefills, decodes, padded or not, swap and recompute preemptions, frees
    and slot reuse, in random interleavings. Every sampled token's logits must match the naive forward."""
    import random

    rng = random.Random(seed)
    e = make(slots=3, max_len=48, bucketed_decode=bucketed)
    prompts = {f"q{i}": rng.randint(2, 20) for i in range(8)}
    target = {s: rng.randint(2, 10) for s in prompts}
    for sid, n in prompts.items():
        e.add_sequence(sid, n)
    waiting = list(prompts)
    cached: dict[str, int] = {}  # resident sequences -> positions cached
    swapped: dict[str, int] = {}
    dropped: list[str] = []  # recompute-preempted
    produced = dict.fromkeys(prompts, 0)
    for _ in range(200):
        if not (waiting or cached or swapped or dropped):
            break
        plan = StepPlan([], padded=rng.random() < 0.3)
        if cached and rng.random() < 0.3:  # preempt one resident sequence
            victim = rng.choice(sorted(cached))
            if rng.random() < 0.5:
                plan.swap_out.append(victim)
                swapped[victim] = cached.pop(victim)
            else:
                plan.free.append(victim)
                cached.pop(victim)
                dropped.append(victim)
        free_slots = 3 - len(cached)
        while free_slots and (swapped or dropped or waiting):
            free_slots -= 1
            if swapped:
                sid, n = swapped.popitem()
                plan.swap_in.append(sid)
                cached[sid] = n
            else:
                sid = (dropped or waiting).pop(0)
                cached[sid] = 0
        for sid in sorted(cached):
            known = len(e.tokens_of(sid))
            start = cached[sid]
            if start < known:
                n = rng.randint(1, known - start)  # prefill / recompute chunk, or a decode when one is left
                plan.seqs.append(SeqStep(sid, start, n, start + n == known))
                cached[sid] = start + n
        if not plan.seqs and not plan.free and not plan.swap_out:
            continue
        res = run(e, plan)
        for sid in res.tokens:
            produced[sid] += 1
            if produced[sid] == target[sid]:
                e.step(StepPlan([], free=[sid]))
                cached.pop(sid)
    assert all(produced[s] == target[s] for s in prompts)
    assert e.cache.free_slots == 3


def test_presets_have_the_published_parameter_counts():
    """Built on the meta device (no memory): the shapes reproduce the published parameter counts."""
    from inferneo_bench.engine.model import PRESETS, Transformer

    published = {
        "gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200,
        "llama-1b": 1_235_814_400, "llama-3b": 3_212_749_824, "llama-8b": 8_030_261_248,
    }  # fmt: skip
    for name, count in published.items():
        with torch.device("meta"):
            assert Transformer(PRESETS[name]).param_count() == count, name
