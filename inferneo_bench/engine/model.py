"""A decoder-only transformer in one readable file (in the spirit of gpt-fast / nanoGPT).

Two families share one module tree:
  * GPT-2: learned position embeddings, LayerNorm, GELU (tanh) MLP, multi-head attention, biases.
  * Llama: rotary position embeddings (with Llama-3 frequency scaling), RMSNorm, SwiGLU MLP,
    grouped-query attention, no biases.

The forward pass runs against a static KV cache (see kv_cache.py): every row of a batch says which cache
slot it reads, and every token says where its K/V are written. That one signature serves padded static
batches, unpadded prefill chunks, decodes and CUDA-graph buckets alike. `reference_logits` is the naive
full-recompute forward (no cache) the tests compare against.

Weights are seeded random (a batching benchmark needs the shapes and the arithmetic, not trained weights);
hf_loader.py fills the same modules from a local Hugging Face checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str  # "gpt2" or "llama"
    vocab_size: int
    n_layer: int
    n_head: int
    n_kv_head: int
    d_model: int
    d_ff: int
    max_model_len: int  # longest sequence (prompt + output) the engine serves; <= max_positions
    max_positions: int  # architectural limit (GPT-2 position table size, Llama context)
    head_dim: int = 0  # 0: d_model // n_head
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    rope_scaling: dict = field(default_factory=dict)  # Llama-3 style {"factor", "low_freq_factor", ...}
    attn_bias: bool = False  # bias on q/k/v projections (GPT-2: True)
    out_bias: bool = False  # bias on attention output and MLP projections (GPT-2: True)

    def __post_init__(self) -> None:
        if self.family not in ("gpt2", "llama"):
            raise ValueError(f"family must be 'gpt2' or 'llama', not {self.family!r}")
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.d_model // self.n_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if self.max_model_len > self.max_positions:
            raise ValueError(f"max_model_len {self.max_model_len} exceeds the model's {self.max_positions} positions")

    def with_max_model_len(self, max_model_len: int) -> ModelConfig:
        return replace(self, max_model_len=max_model_len)


_LLAMA3_ROPE_32 = {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_positions": 8192}
_LLAMA3_ROPE_8 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_positions": 8192}


def _gpt2(name: str, d: int, layers: int, heads: int) -> ModelConfig:
    return ModelConfig(name, "gpt2", 50257, layers, heads, heads, d, 4 * d, 1024, 1024, attn_bias=True, out_bias=True)


def _llama(name: str, d: int, layers: int, heads: int, kv: int, ff: int, tied: bool, rope: dict) -> ModelConfig:
    return ModelConfig(
        name, "llama", 128256, layers, heads, kv, d, ff, 4096, 131072, head_dim=d // heads,
        tie_embeddings=tied, rope_theta=500000.0, rope_scaling=rope,
    )  # fmt: skip


# Published shapes (GPT-2 paper / HF configs; Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B configs).
# Llama's max_model_len default (4096) is a serving choice, not the 131072 architectural limit: static KV
# slots cost num_slots * max_model_len tokens of memory. Override with load_engine(max_model_len=...).
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        "tiny", "llama", 8192, 4, 8, 4, 256, 688, 2048, 2048, rope_theta=10000.0, norm_eps=1e-5, tie_embeddings=True
    ),
    "tiny-gpt2": ModelConfig("tiny-gpt2", "gpt2", 8192, 4, 8, 8, 256, 1024, 2048, 2048, attn_bias=True, out_bias=True),
    "gpt2": _gpt2("gpt2", 768, 12, 12),
    "gpt2-medium": _gpt2("gpt2-medium", 1024, 24, 16),
    "gpt2-large": _gpt2("gpt2-large", 1280, 36, 20),
    "gpt2-xl": _gpt2("gpt2-xl", 1600, 48, 25),
    "llama-1b": _llama("llama-1b", 2048, 16, 32, 8, 8192, True, _LLAMA3_ROPE_32),
    "llama-3b": _llama("llama-3b", 3072, 28, 24, 8, 8192, True, _LLAMA3_ROPE_32),
    "llama-8b": _llama("llama-8b", 4096, 32, 32, 8, 14336, False, _LLAMA3_ROPE_8),
}


class RMSNorm(nn.Module):
    """Llama RMSNorm as one fused op (accumulates in float32; in bfloat16 it rounds once where the HF
    reference rounds twice, a difference far inside bfloat16's own precision)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_inv_freq(cfg: ModelConfig) -> torch.Tensor:
    """Rotary inverse frequencies, with Llama-3 long-context scaling when configured."""
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    s = cfg.rope_scaling
    if s:
        factor, lo, hi, orig = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_positions"]
        wavelen = 2 * math.pi / inv
        low_wl, high_wl = orig / lo, orig / hi
        scaled = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (orig / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= high_wl) & (wavelen <= low_wl)
        inv = torch.where(is_mid, mid, scaled)
    return inv.float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, T, H, D]; cos/sin: [B, T, 1, D] (half-split "rotate_half" layout, as in HF Llama weights)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.wqkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim, bias=cfg.attn_bias)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=cfg.out_bias)

    def _qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None):
        b, t, _ = x.shape
        qkv = self.wqkv(x).view(b, t, self.n_head + 2 * self.n_kv, self.hd)
        qk, v = qkv.split([self.n_head + self.n_kv, self.n_kv], dim=2)
        if rope is not None:
            qk = apply_rope(qk, *rope)  # q and k heads rotated together: half the kernels
        q, k = qk.split([self.n_head, self.n_kv], dim=2)
        return q, k, v

    def forward(self, x, rope, k_cache, v_cache, write_slot, write_pos, read_slot, ctx_len, mask):
        """Write this step's K/V into the cache, then attend over the first ctx_len positions of each row's
        slot. k_cache: [slots, n_kv, max_len, hd]; write_slot/write_pos: [B, T]; read_slot: [B] tensor, or a
        slice (rows occupy consecutive slots: a view instead of a gather); mask: additive, [B, 1, G*T, ctx_len],
        or None when every row is a fresh prefill (positions 0..T-1, ctx_len == T): then plain causal.

        Grouped-query attention without repeating K/V: the G = n_head / n_kv query heads of a group are
        folded into the query-length axis ([B, n_kv, G*T, hd], group-major), so every SDPA backend reads each
        cached K/V once, whatever its GQA support."""
        b, t, _ = x.shape
        g = self.n_head // self.n_kv
        q, k, v = self._qkv(x, rope)
        k_cache[write_slot, :, write_pos] = k
        v_cache[write_slot, :, write_pos] = v
        keys = k_cache[read_slot, :, :ctx_len]
        values = v_cache[read_slot, :, :ctx_len]
        if mask is None:  # fresh prefill from position 0: plainly causal, no mask to build or read
            y = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, is_causal=True, enable_gqa=g > 1)
            y = y.transpose(1, 2)
        elif g > 1:
            q = q.view(b, t, self.n_kv, g, self.hd).permute(0, 2, 3, 1, 4).reshape(b, self.n_kv, g * t, self.hd)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # [B, n_kv, G*T, hd]
            y = y.view(b, self.n_kv, g, t, self.hd).permute(0, 3, 1, 2, 4)
        else:
            y = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask).transpose(1, 2)
        return self.wo(y.reshape(b, t, self.n_head * self.hd))

    def forward_nocache(self, x, rope):
        b, t, _ = x.shape
        q, k, v = self._qkv(x, rope)
        rep = self.n_head // self.n_kv
        k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(b, t, self.n_head * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.family = cfg.family
        if cfg.family == "gpt2":
            self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.out_bias)
        else:  # gate and up projections fused into one matmul
            self.fc = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=cfg.out_bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.out_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.family == "gpt2":
            return self.proj(F.gelu(self.fc(x), approximate="tanh"))
        gate, up = self.fc(x).chunk(2, dim=-1)
        return self.proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        norm = (lambda: nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)) if cfg.family == "gpt2" else None
        self.norm1 = norm() if norm else RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = norm() if norm else RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_positions, cfg.d_model) if cfg.family == "gpt2" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = (
            nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps) if cfg.family == "gpt2" else RMSNorm(cfg.d_model, cfg.norm_eps)
        )
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        if cfg.family == "llama":
            self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        else:
            self.inv_freq = None

    # ---- helpers -------------------------------------------------------------------------------------
    def _rope(self, pos: torch.Tensor, dtype: torch.dtype):
        if self.inv_freq is None:
            return None
        freqs = pos.float()[..., None] * self.inv_freq  # [B, T, D/2], float32 as in the reference
        emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens)
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)
        return x

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def _mask(self, pos: torch.Tensor, ctx_len: int, dtype: torch.dtype) -> torch.Tensor:
        """One additive mask for all layers: query (b, t) sees cache positions <= pos[b, t]; laid out for the
        folded GQA queries ([B, 1, G*T, ctx_len], see Attention.forward)."""
        key_pos = torch.arange(ctx_len, device=pos.device)
        allowed = key_pos[None, None, None, :] <= pos[:, None, :, None]  # [B, 1, T, ctx_len]
        mask = torch.zeros(allowed.shape, dtype=dtype, device=pos.device).masked_fill_(~allowed, float("-inf"))
        g = self.cfg.n_head // self.cfg.n_kv_head
        if g > 1:
            mask = mask.repeat(1, 1, g, 1) if pos.shape[1] > 1 else mask.expand(-1, -1, g, -1)
        return mask

    # ---- forwards ------------------------------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,  # [B, T] int64
        pos: torch.Tensor,  # [B, T] int64, absolute positions (padding: any valid position)
        cache,  # KVCache
        write_slot: torch.Tensor,  # [B, T] slot each token's K/V goes to (padding: the scratch slot)
        write_pos: torch.Tensor,  # [B, T]
        read_slot,  # [B] tensor of slots, or a slice of consecutive slots
        ctx_len: int,  # attend over cache positions [0, ctx_len)
        logit_rows: torch.Tensor | None = None,  # flat indices into B*T whose logits are wanted (None: all)
        causal: bool = False,  # every row is positions 0..T-1 and ctx_len == T: causal SDPA, no mask
    ) -> torch.Tensor:
        """Cached forward; returns float32 logits [len(logit_rows), vocab] (or [B*T, vocab])."""
        x = self._embed(tokens, pos)
        rope = self._rope(pos, x.dtype)
        mask = None if causal else self._mask(pos, ctx_len, x.dtype)
        for i, blk in enumerate(self.blocks):
            x = x + blk.attn(
                blk.norm1(x), rope, cache.k[i], cache.v[i], write_slot, write_pos, read_slot, ctx_len, mask
            )
            x = x + blk.mlp(blk.norm2(x))
        x = x.reshape(-1, x.shape[-1])
        if logit_rows is not None:
            x = x.index_select(0, logit_rows)
        return self.lm_head(self.norm_f(x)).float()

    @torch.no_grad()
    def reference_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Naive full recompute without any cache: tokens [B, T] -> float32 logits [B, T, vocab]."""
        b, t = tokens.shape
        pos = torch.arange(t, device=tokens.device).expand(b, t)
        x = self._embed(tokens, pos)
        rope = self._rope(pos, x.dtype)
        for blk in self.blocks:
            x = x + blk.attn.forward_nocache(blk.norm1(x), rope)
            x = x + blk.mlp(blk.norm2(x))
        return self.lm_head(self.norm_f(x)).float()


@torch.no_grad()
def init_random_(model: Transformer, seed: int) -> None:
    """Seeded GPT-2-style init (normal(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)), made
    on the model's own device so multi-GB presets do not round-trip through host memory."""
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    resid_std = 0.02 / math.sqrt(2 * model.cfg.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm_f.weight"):
            p.fill_(1.0)
        elif name.endswith(".bias"):
            p.zero_()
        elif name.endswith("wo.weight") or name.endswith("mlp.proj.weight"):
            p.normal_(0.0, resid_std, generator=gen)
        else:
            p.normal_(0.0, 0.02, generator=gen)


def estimate_params(cfg: ModelConfig) -> int:
    """Parameters of `Transformer(cfg)` from its shapes alone (no allocation): embeddings, per layer the
    attention (q, k, v, o) and MLP (GPT-2: fc + proj; Llama: gate, up, down) weights, an untied LM head.
    Norms and biases are O(d) per layer and left out (a lower bound within a fraction of a percent)."""
    d, hd = cfg.d_model, cfg.head_dim or cfg.d_model // cfg.n_head
    attn = d * (cfg.n_head + 2 * cfg.n_kv_head) * hd + cfg.n_head * hd * d
    mlp = (2 if cfg.family == "gpt2" else 3) * d * cfg.d_ff
    embed = cfg.vocab_size * d + (cfg.max_positions * d if cfg.family == "gpt2" else 0)
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * d
    return embed + cfg.n_layer * (attn + mlp) + head


def build_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int | None = 0) -> Transformer:
    """Allocate the model directly on `device` in `dtype`; seeded random weights unless seed is None (the
    caller, e.g. the HF loader, fills them)."""
    with torch.device("meta"):
        model = Transformer(cfg).to(dtype)
    model = model.to_empty(device=device)
    if cfg.tie_embeddings:  # to_empty unties shared parameters
        model.lm_head.weight = model.tok_emb.weight
    if cfg.family == "llama":
        model.inv_freq = rope_inv_freq(cfg).to(device)  # rotary frequencies stay float32
    if seed is not None:
        init_random_(model, seed)
    return model.eval().requires_grad_(False)
