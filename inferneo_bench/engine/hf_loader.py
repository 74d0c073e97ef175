"""Load a local Hugging Face checkpoint folder (config.json + *.safetensors) into model.Transformer.

GPT-2 (model_type "gpt2") and Llama (model_type "llama") checkpoints are supported. Only safetensors are
read: pickled *.bin checkpoints can execute code on load and are refused. Nothing is fetched from a hub.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inferneo_bench import validation
from inferneo_bench.engine.model import ModelConfig, Transformer
from inferneo_bench.errors import UserError

DEFAULT_MAX_MODEL_LEN = 4096
MAX_CONFIG_BYTES = 1 << 20
# Upper bounds far above any published GPT-2/Llama shape; beyond them a config is corrupt or hostile.
INT_LIMITS = {
    "vocab_size": 10_000_000,
    "n_layer": 1000,
    "num_hidden_layers": 1000,
    "n_head": 4096,
    "num_attention_heads": 4096,
    "num_key_value_heads": 4096,
    "n_embd": 1 << 17,
    "hidden_size": 1 << 17,
    "n_inner": 1 << 20,
    "intermediate_size": 1 << 20,
    "n_positions": 1 << 24,
    "n_ctx": 1 << 24,
    "max_position_embeddings": 1 << 24,
    "head_dim": 1 << 14,
    "original_max_position_embeddings": 1 << 24,
}
FLOAT_FIELDS = ("layer_norm_epsilon", "rms_norm_eps", "rope_theta")


def _read_config(path: Path) -> dict:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{path}: no config.json; --model PATH must be a Hugging Face checkpoint folder")
    validation.check_file_size(cfg_path, 1, "config.json", "give a Hugging Face config.json")
    if cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{cfg_path}: far too large for a model config.json; is this the right file?")
    try:
        raw = cfg_path.read_bytes()
    except OSError as exc:
        raise UserError(f"{cfg_path}: cannot read ({exc.strerror})") from None
    data = validation.load_json(raw, str(cfg_path), what="config JSON")
    if not isinstance(data, dict):
        raise UserError(f"{cfg_path}: a model config must be a JSON object")
    _check_fields(cfg_path, data)
    return data


def _check_fields(cfg_path: Path, hf: dict) -> None:
    """Every shape field a whole number in range, every float finite: a hostile or corrupt config fails here,
    in one line, before anything is allocated."""
    for key, limit in INT_LIMITS.items():
        if hf.get(key) is not None:
            validation.count(hf[key], f"{cfg_path}: {key}", 1, limit)
    for key in FLOAT_FIELDS:
        if hf.get(key) is not None:
            validation.positive(hf[key], f"{cfg_path}: {key}")
    for block in ("rope_scaling", "rope_parameters"):
        if hf.get(block) is not None and not isinstance(hf[block], dict):
            raise UserError(f"{cfg_path}: {block} must be an object")
        for key, value in (hf.get(block) or {}).items():
            if key in ("factor", "low_freq_factor", "high_freq_factor", "rope_theta"):
                validation.positive(value, f"{cfg_path}: {block}.{key}")
            elif key == "original_max_position_embeddings":
                validation.count(value, f"{cfg_path}: {block}.{key}", 1, INT_LIMITS[key])


def _config(path: Path, hf: dict) -> ModelConfig:
    kind = hf.get("model_type")
    name = path.name or str(path)

    def unsupported(what: str) -> UserError:
        return UserError(f"{path / 'config.json'}: {what} is not supported; use a plain GPT-2 or Llama checkpoint")

    if kind == "gpt2":
        if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            raise unsupported(f"activation_function {hf.get('activation_function')!r}")
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("reorder_and_upcast_attn"):
            raise unsupported("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn")
        if hf.get("scale_attn_weights", True) is False:
            raise unsupported("scale_attn_weights=false")
        d, positions = hf["n_embd"], hf.get("n_positions") or hf["n_ctx"]
        return ModelConfig(
            name, "gpt2", hf["vocab_size"], hf["n_layer"], hf["n_head"], hf["n_head"], d, hf.get("n_inner") or 4 * d,
            min(positions, DEFAULT_MAX_MODEL_LEN), positions, norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            tie_embeddings=hf.get("tie_word_embeddings", True), attn_bias=True, out_bias=True,
        )  # fmt: skip
    if kind == "llama":
        if hf.get("hidden_act", "silu") != "silu":
            raise unsupported(f"hidden_act {hf.get('hidden_act')!r}")
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise unsupported("attention_bias / mlp_bias")
        rope = hf.get("rope_parameters") or dict(hf.get("rope_scaling") or {})  # transformers >= 5 / < 5
        theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        scaling: dict = {}
        if rope_type == "llama3":
            scaling = {
                "factor": float(rope["factor"]),
                "low_freq_factor": float(rope["low_freq_factor"]),
                "high_freq_factor": float(rope["high_freq_factor"]),
                "original_max_positions": int(rope["original_max_position_embeddings"]),
            }
        elif rope_type != "default":
            raise unsupported(f"rope type {rope_type!r}")
        heads = hf["num_attention_heads"]
        d, positions = hf["hidden_size"], hf.get("max_position_embeddings", 2048)
        return ModelConfig(
            name, "llama", hf["vocab_size"], hf["num_hidden_layers"], heads, hf.get("num_key_value_heads") or heads, d,
            hf["intermediate_size"], min(positions, DEFAULT_MAX_MODEL_LEN), positions,
            head_dim=hf.get("head_dim") or d // heads, norm_eps=hf.get("rms_norm_eps", 1e-6),
            tie_embeddings=hf.get("tie_word_embeddings", False), rope_theta=float(theta), rope_scaling=scaling,
        )  # fmt: skip
    raise UserError(f"{path / 'config.json'}: model_type {kind!r} is not supported; use a GPT-2 or Llama checkpoint")


def checkpoint_digest(path: Path) -> str:
    """sha256 of a checkpoint folder's config.json and *.safetensors files (names and bytes, in name order),
    streamed: the weights' identity for the result file."""
    import hashlib

    digest = hashlib.sha256()
    for file in [path / "config.json", *sorted(path.glob("*.safetensors"))]:
        digest.update(f"{file.name}\n".encode())
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        hint = f" (found {', '.join(pickled)}: pickled checkpoints are refused, convert them to safetensors)"
        raise UserError(f"{path}: no *.safetensors weights{hint if pickled else ''}")
    from safetensors import SafetensorError

    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())[:80]
            raise UserError(f"{f}: not a readable safetensors file ({reason}); re-download or re-convert it") from None
    return tensors


def checkpoint_bytes(path: Path) -> int:
    """Bytes of the safetensors files (loading them holds that much in memory)."""
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def read_config(path: Path) -> ModelConfig:
    """The checkpoint's ModelConfig alone (cheap): shapes are checked before any weight is read."""
    path = Path(path)
    try:
        return _config(path, _read_config(path))
    except KeyError as exc:
        raise UserError(f"{path / 'config.json'}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path / 'config.json'}: inconsistent shapes ({exc})") from None


def read_weights(path: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint whose config is `cfg`, in model.Transformer's names."""
    src = _read_tensors(Path(path))
    try:
        return _map_gpt2(cfg, src) if cfg.family == "gpt2" else _map_llama(cfg, src)
    except KeyError as exc:
        raise UserError(f"{path}: weight {exc.args[0]} missing from the safetensors files") from None


def _map_gpt2(cfg: ModelConfig, src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    src = {k.removeprefix("transformer."): v for k, v in src.items()}
    out = {"tok_emb.weight": src["wte.weight"], "pos_emb.weight": src["wpe.weight"]}
    # HF GPT-2 uses Conv1D ([in, out] weights): transpose to nn.Linear's [out, in]
    names = {"ln_1": "norm1", "ln_2": "norm2", "attn.c_attn": "attn.wqkv", "attn.c_proj": "attn.wo",
             "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}  # fmt: skip
    for i in range(cfg.n_layer):
        for hf_name, ours in names.items():
            w, b = src[f"h.{i}.{hf_name}.weight"], src[f"h.{i}.{hf_name}.bias"]
            out[f"blocks.{i}.{ours}.weight"] = w if hf_name.startswith("ln") else w.t()
            out[f"blocks.{i}.{ours}.bias"] = b
    out["norm_f.weight"], out["norm_f.bias"] = src["ln_f.weight"], src["ln_f.bias"]
    out["lm_head.weight"] = out["tok_emb.weight"] if cfg.tie_embeddings else src["lm_head.weight"]
    return out


def _map_llama(cfg: ModelConfig, src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {"tok_emb.weight": src["model.embed_tokens.weight"], "norm_f.weight": src["model.norm.weight"]}
    for i in range(cfg.n_layer):
        p = f"model.layers.{i}."
        out[f"blocks.{i}.norm1.weight"] = src[p + "input_layernorm.weight"]
        out[f"blocks.{i}.norm2.weight"] = src[p + "post_attention_layernorm.weight"]
        out[f"blocks.{i}.attn.wqkv.weight"] = torch.cat(
            [src[p + f"self_attn.{n}_proj.weight"] for n in ("q", "k", "v")], dim=0
        )
        out[f"blocks.{i}.attn.wo.weight"] = src[p + "self_attn.o_proj.weight"]
        out[f"blocks.{i}.mlp.fc.weight"] = torch.cat([src[p + "mlp.gate_proj.weight"], src[p + "mlp.up_proj.weight"]])
        out[f"blocks.{i}.mlp.proj.weight"] = src[p + "mlp.down_proj.weight"]
    if cfg.tie_embeddings or "lm_head.weight" not in src:
        out["lm_head.weight"] = out["tok_emb.weight"]
    else:
        out["lm_head.weight"] = src["lm_head.weight"]
    return out


def load_hf_checkpoint(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and weights (in model.Transformer's names) of a local checkpoint folder."""
    cfg = read_config(Path(path))
    return cfg, read_weights(Path(path), cfg)


@torch.no_grad()
def assign_state(model: Transformer, state: dict[str, torch.Tensor]) -> None:
    """Copy the mapped weights into the model (converting dtype); every parameter must be covered."""
    expected = dict(model.named_parameters(remove_duplicate=False))
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(f"checkpoint lacks weights for {', '.join(missing[:5])}")
    for name, p in expected.items():
        w = state[name]
        if tuple(w.shape) != tuple(p.shape):
            raise UserError(f"checkpoint weight {name} has shape {tuple(w.shape)}, the config implies {tuple(p.shape)}")
        p.copy_(w)
