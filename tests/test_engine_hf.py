"""Local Hugging Face checkpoints (safetensors) load into our model and reproduce transformers' logits."""

from __future__ import annotations

import json

import pytest
import torch

from inferneo_bench.engine import load_engine
from inferneo_bench.errors import UserError
from inferneo_bench.steps import SeqStep, StepPlan

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gpt2(path):
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=211, n_positions=96)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    return transformers.GPT2LMHeadModel.from_pretrained(path).eval()


def _llama(path, rope_scaling: bool, tied: bool):
    kw = {}
    if rope_scaling:  # Llama-3 frequency scaling, as in Llama-3.1/3.2 configs
        kw["rope_parameters"] = {
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
        }  # fmt: skip
    cfg = transformers.LlamaConfig(
        vocab_size=223, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=tied, **kw,
    )  # fmt: skip
    torch.manual_seed(1)
    transformers.LlamaForCausalLM(cfg).eval().save_pretrained(path)
    return transformers.LlamaForCausalLM.from_pretrained(path).eval()


@pytest.mark.parametrize(
    "family,rope_scaling,tied", [("gpt2", False, True), ("llama", False, False), ("llama", True, True)]
)
def test_hf_checkpoint_matches_transformers(tmp_path, family, rope_scaling, tied):
    hf = _gpt2(tmp_path) if family == "gpt2" else _llama(tmp_path, rope_scaling, tied)
    engine = load_engine(
        str(tmp_path), device="cpu", max_num_seqs=2, max_model_len=64, kv_cache_tokens=128, keep_logits=True
    )
    assert engine.cfg.family == family
    assert engine.cfg.max_positions == (96 if family == "gpt2" else 256)
    from inferneo_bench.engine.hf_loader import checkpoint_digest

    info = engine.model_info()  # the result's model block names the checkpoint and its hash, not "random"
    assert info["weights"] == str(tmp_path.resolve()) and info["weights_sha256"] == checkpoint_digest(tmp_path)
    ids = torch.randint(0, engine.cfg.vocab_size, (1, 40), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = hf(ids).logits[0]
    got = engine.model.reference_logits(ids)[0]
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4
    # the cached step path, chunked prefill then one decode, agrees too
    engine.add_sequence("s", 40, ids[0].tolist())
    engine.step(StepPlan([SeqStep("s", 0, 25, False)]))
    engine.step(StepPlan([SeqStep("s", 25, 15, True)]))
    assert ((engine.last_logits["s"] - want[-1]).abs().max() / want[-1].abs().max()).item() < 1e-4
    engine.step(StepPlan([SeqStep("s", 40, 1, True)]))
    with torch.no_grad():
        want2 = hf(torch.tensor([engine.tokens_of("s")[:-1]])).logits[0, -1]
    assert ((engine.last_logits["s"] - want2).abs().max() / want2.abs().max()).item() < 1e-4


def test_pickled_checkpoints_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8, "n_layer": 1,
                                                      "n_head": 2, "vocab_size": 10, "n_positions": 8}))  # fmt: skip
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="pickled checkpoints are refused"):
        load_engine(str(tmp_path), device="cpu")


def test_bad_model_arguments(tmp_path):
    with pytest.raises(UserError, match="not a preset nor a local folder"):
        load_engine("gpt5", device="cpu")
    with pytest.raises(UserError, match="no config.json"):
        load_engine(str(tmp_path), device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(UserError, match="missing key 'num_attention_heads'"):
        load_engine(str(tmp_path), device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(UserError, match="model_type 'mamba' is not supported"):
        load_engine(str(tmp_path), device="cpu")


def test_bad_engine_options():
    with pytest.raises(UserError, match="unknown; use one of"):
        load_engine("tiny", device="cpu", dtype="int4")
    with pytest.raises(UserError, match="must be within 1..2048"):
        load_engine("tiny", device="cpu", max_model_len=4096)
    with pytest.raises(UserError, match="holds no sequence"):
        load_engine("tiny", device="cpu", max_model_len=64, kv_cache_tokens=10)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            load_engine("tiny", device="cuda")
