"""Static KV cache (gpt-fast style): preallocated slots, one per resident sequence, freed and reused.

Layout per tensor: [n_layer, num_slots + 1, n_kv_head, max_len, head_dim]. The extra last slot is a scratch
slot: padding tokens and idle rows write their K/V there, so real compute on padding never touches another
sequence's cache. Slots are handed out lowest-first, which keeps a running batch on consecutive slots (the
attention can then read a view instead of gathering).
"""

from __future__ import annotations

import heapq
import os

import torch

from inferneo_bench.engine.model import ModelConfig


def kv_bytes_per_token(cfg: ModelConfig, dtype: torch.dtype) -> int:
    """K and V of one token across all layers."""
    return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * torch.empty((), dtype=dtype).element_size()


def default_kv_tokens(cfg: ModelConfig, dtype: torch.dtype, device: torch.device, max_num_seqs: int) -> int:
    """Tokens of KV to preallocate when the caller does not say: enough for max_num_seqs full-length
    sequences, capped by 90% of free CUDA memory (less 2 GiB for activations and graphs), or on the CPU
    by a quarter of physical memory."""
    want = max_num_seqs * cfg.max_model_len
    per_tok = kv_bytes_per_token(cfg, dtype)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = int(free * 0.9) - (2 << 30)
    else:
        try:
            budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        except (ValueError, OSError, AttributeError):
            budget = 4 << 30
    return max(0, min(want, budget // per_tok))


def _zeros(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Zero-filled tensor. On the CPU it comes from calloc (via numpy), so the OS hands out zero pages lazily:
    a large cache costs memory only where sequences actually write, and no seconds of memset up front."""
    if device.type != "cpu":
        return torch.zeros(shape, device=device, dtype=dtype)
    import numpy as np

    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = np.zeros(shape, dtype={1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[itemsize])
    return torch.from_numpy(raw).view(dtype)


class KVCache:
    def __init__(self, cfg: ModelConfig, num_slots: int, device: torch.device, dtype: torch.dtype) -> None:
        if num_slots < 1:
            raise ValueError("the KV cache needs at least one slot")
        self.num_slots = num_slots
        self.max_len = cfg.max_model_len
        self.scratch = num_slots
        shape = (cfg.n_layer, num_slots + 1, cfg.n_kv_head, cfg.max_model_len, cfg.head_dim)
        # zeros, not empty: masked-out positions are multiplied by 0 in attention, and 0 * NaN garbage = NaN
        self.k = _zeros(shape, device, dtype)
        self.v = _zeros(shape, device, dtype)
        self.bytes_per_token = kv_bytes_per_token(cfg, dtype)
        self._free = list(range(num_slots))
        heapq.heapify(self._free)

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def alloc(self) -> int | None:
        return heapq.heappop(self._free) if self._free else None

    def release(self, slot: int) -> None:
        assert 0 <= slot < self.num_slots and slot not in self._free, f"bad slot release {slot}"
        heapq.heappush(self._free, slot)

    def copy_out(self, slot: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `length` positions of a slot, copied to host memory (pinned when the cache is on CUDA)."""
        k = self.k[:, slot, :, :length]
        v = self.v[:, slot, :, :length]
        if self.k.device.type == "cuda":
            hk = torch.empty(k.shape, dtype=k.dtype, pin_memory=True)
            hv = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
            hk.copy_(k, non_blocking=True)
            hv.copy_(v, non_blocking=True)
            return hk, hv
        return k.clone(), v.clone()

    def copy_in(self, slot: int, k: torch.Tensor, v: torch.Tensor) -> None:
        length = k.shape[2]
        self.k[:, slot, :, :length].copy_(k, non_blocking=True)
        self.v[:, slot, :, :length].copy_(v, non_blocking=True)

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2
