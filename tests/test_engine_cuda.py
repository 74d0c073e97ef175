"""The same equivalence on CUDA, through the CUDA-graph decode path (skipped without a GPU).

Tolerances: float32 keeps the 1e-4 bound (TF32 matmuls are off by default in torch). bfloat16 has an 8-bit
significand (unit roundoff 2^-8 ~ 3.9e-3); the cached and the naive forward round at different points
(gathered cache + masked SDPA vs causal SDPA over fresh K/V), and a few ulps per layer accumulate in the
residual stream, so 3e-2 of the largest |logit| is allowed. A real bug (wrong slot, position or mask)
gives errors of order 1, far above either bound.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from inferneo_bench.engine import load_engine
from inferneo_bench.engine.model import PRESETS, build_model
from inferneo_bench.engine.torch_engine import DTYPES, TorchEngine
from inferneo_bench.steps import SeqStep, StepPlan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _check(engine, seq_ids, tol):
    for sid in seq_ids:
        toks = engine.tokens_of(sid)
        ref = engine.model.reference_logits(torch.tensor([toks[:-1]], device=engine.device))[0, -1]
        err = ((engine.last_logits[sid] - ref).abs().max() / ref.abs().max()).item()
        assert err < tol, (sid, err)


def _exercise(e, tol):
    """Padded prefill (causal SDPA), padded decodes with an idle row (graph bucket 8 for 5 rows), a continuous
    step mixing a prefill chunk (masked SDPA) with decodes, and a swap round trip; logits checked each time."""
    lens = [5, 17, 9, 30, 12]
    for i, n in enumerate(lens):
        e.add_sequence(f"s{i}", n)
    plan = StepPlan([SeqStep(f"s{i}", 0, n, True) for i, n in enumerate(lens)], padded=True)
    res = e.step(plan)
    assert res.padded_tokens == plan.computed_tokens - plan.useful_tokens and not res.failed
    _check(e, [f"s{i}" for i in range(5)], tol)
    for k in range(3):
        seqs = [SeqStep(f"s{i}", n + k, 1, True) for i, n in enumerate(lens[:4])]
        seqs.append(SeqStep("s4", 0, 1, False, idle=True))
        res = e.step(StepPlan(seqs, padded=True, free=["s4"] if k == 0 else []))
        assert not res.failed
        _check(e, [f"s{i}" for i in range(4)], tol)
    e.add_sequence("n", 40)
    e.step(StepPlan([SeqStep("n", 0, 20, False)] + [SeqStep(f"s{i}", n + 3, 1, True) for i, n in enumerate(lens[:4])]))
    e.step(StepPlan([SeqStep("n", 20, 20, True)], swap_out=["s0"]))
    res = e.step(StepPlan([SeqStep("n", 40, 1, True), SeqStep("s0", lens[0] + 4, 1, True)], swap_in=["s0"]))
    assert res.swap_s > 0
    _check(e, ["n", "s0"], tol)


@pytest.mark.parametrize("model", ["tiny", "tiny-gpt2"])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("bfloat16", 3e-2)])
def test_cuda_steps_and_graphs_match_reference(model, dtype, tol):
    e = load_engine(
        model, device="cuda", dtype=dtype, max_num_seqs=8, max_model_len=300, kv_cache_tokens=8 * 300,
        keep_logits=True,
    )  # fmt: skip
    assert e.decoder is not None and e.decoder.use_graphs
    _exercise(e, tol)
    assert len(e.decoder.graphs) >= 2
    e.close()


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("bfloat16", 3e-2)])
def test_llama_1b_head_geometry_on_cuda(dtype, tol):
    """llama-1b's own attention shape (32 query heads on 8 KV heads: groups of 4, head_dim 64, d_model 2048,
    Llama-3 RoPE scaling), which selects other SDPA kernels than tiny's (groups of 2, head_dim 32); two layers
    and a small vocabulary keep it quick."""
    cfg = replace(PRESETS["llama-1b"], n_layer=2, vocab_size=8192, max_model_len=300)
    dev, tdtype = torch.device("cuda"), DTYPES[dtype]
    e = TorchEngine(build_model(cfg, dev, tdtype), cfg, num_slots=8, device=dev, dtype=tdtype, keep_logits=True)
    assert e.decoder is not None and e.decoder.use_graphs
    _exercise(e, tol)
    e.close()
