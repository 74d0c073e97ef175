"""The simulated engine: same interface as the torch engine, step times predicted from a profile.

It computes nothing and sleeps never: `step()` returns at once with `step_s` predicted by the cost model,
and the runner advances its *virtual* clock by that amount (the engine keeps no clock). Token bookkeeping
follows the real engine: one token for every sampling, non-idle sequence of the plan; useful tokens are the
plan's non-idle tokens, padded tokens the rest of what the step computes (padding to the longest in a padded
step, one token per idle slot). A sequence takes a KV slot at its first step and gives it back when freed or
swapped out; with no free slot it fails with the engine's reason.
Token ids are drawn from a hash of (seed, sequence id, position), so a replay is deterministic byte for byte
(the ids cannot match the real model's greedy choices, and nothing downstream depends on them).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import Any

from inferneo_bench.engine.cost_model import CostModel
from inferneo_bench.engine.profile import Profile, load_profile
from inferneo_bench.errors import UserError
from inferneo_bench.steps import StepPlan, StepResult

_MIX = 2654435761  # Knuth's multiplicative hash constant


class SimEngine:
    """Engine protocol on a profile. `num_slots` may exceed the profiled one (predictions then extrapolate,
    see cost_model); `max_model_len` may not exceed the model's. `stat` picks the profile statistic the
    cost model interpolates: default the mean (median for profiles without it, see CostModel), or "min_s"
    (fastest sample: steadier when the profiling machine's load drifted)."""

    def __init__(
        self,
        profile: Profile,
        *,
        max_num_seqs: int | None = None,
        max_model_len: int | None = None,
        seed: int = 0,
        stat: str | None = None,
    ) -> None:
        if max_model_len is not None and max_model_len > profile.max_model_len:
            raise UserError(
                f"--max-model-len {max_model_len}: the profiled model '{profile.model}' holds at most "
                f"{profile.max_model_len} tokens; use a smaller value"
            )
        self.profile = profile
        self.cost = CostModel(profile, stat)
        self.max_model_len = int(max_model_len or profile.max_model_len)
        self.num_slots = int(max_num_seqs or profile.num_slots)
        self.kv_bytes_per_token = profile.kv_bytes_per_token
        self.weight_bytes = profile.weight_bytes
        self.seed = seed
        self._vocab = int(profile.model_info.get("vocab_size") or 50257)
        self._base: dict[str, int] = {}  # seq_id -> hash seed of its token ids (registered sequences)
        self._kv: dict[str, int] = {}  # seq_id -> tokens in its KV slot, for sequences holding a slot
        self._swapped: dict[str, int] = {}  # seq_id -> tokens of its KV held on the host

    def model_info(self) -> dict[str, Any]:
        info = dict(self.profile.model_info)
        info["weights"] = "none (simulated engine: step times from a profile)"
        for key in ("weights_seed", "weights_sha256"):
            info.pop(key, None)
        info["simulated_from"] = {
            "device_type": self.profile.device_type,
            "device_name": self.profile.device_name,
            "dtype": self.profile.dtype,
            "created_at": self.profile.created_at,
        }
        return info

    def warmup(self, max_batch: int | None = None) -> int:
        """Interface parity with TorchEngine.warmup (nothing to capture); returns 0 graphs."""
        return 0

    def reset(self) -> None:
        """Forget every sequence (between replays), as TorchEngine.reset."""
        self._base.clear()
        self._kv.clear()
        self._swapped.clear()

    def add_sequence(self, seq_id: str, prompt_len: int, prompt_ids: Sequence[int] | None = None) -> None:
        if seq_id in self._base:
            raise ValueError(f"sequence {seq_id!r} is already registered")
        if not 0 < prompt_len <= self.max_model_len:
            raise ValueError(f"sequence {seq_id!r}: prompt of {prompt_len} tokens vs context {self.max_model_len}")
        if prompt_ids is not None and len(prompt_ids) != prompt_len:
            raise ValueError(f"sequence {seq_id!r}: {len(prompt_ids)} prompt ids but prompt_len {prompt_len}")
        self._base[seq_id] = zlib.crc32(f"{self.seed}:{seq_id}".encode())

    def _lifecycle(self, plan: StepPlan, failed: dict[str, str]) -> int:
        """Apply free / swap_out / swap_in like the torch engine; return the KV tokens copied."""
        kv, moved = self._kv, 0
        for s in plan.free:
            kv.pop(s, None)
            self._swapped.pop(s, None)
        for s in plan.swap_out:
            n = kv.pop(s)
            self._swapped[s] = n
            moved += n
        for s in plan.swap_in:
            if len(kv) >= self.num_slots:
                failed[s] = f"no free KV cache slot for swap-in (num_slots={self.num_slots})"
                continue
            n = self._swapped.pop(s)
            kv[s] = n
            moved += n
        return moved

    def _no_slot(self, sid: str, failed: dict[str, str]) -> bool:
        """A sequence without a slot takes one (first step, or after a free); True if none is left."""
        if sid in failed:
            return True
        if sid not in self._base:
            raise AssertionError(f"step for unregistered sequence {sid!r}")
        if len(self._kv) >= self.num_slots:
            failed[sid] = f"no free KV cache slot (num_slots={self.num_slots})"
            return True
        return False

    def step(self, plan: StepPlan) -> StepResult:
        failed: dict[str, str] = {}
        swap_s = 0.0
        if plan.free or plan.swap_out or plan.swap_in:
            moved = self._lifecycle(plan, failed)
            if moved:
                swap_s = self.cost.swap_time(moved)
        tokens: dict[str, int] = {}
        base, kv, vocab = self._base, self._kv, self._vocab
        seqs = plan.seqs
        one_ctx = n_idle = n_failed = 0
        prompts: list[int] = []
        for s in seqs:  # the hot loop of a replay: keep it lean
            sid = s.seq_id
            if s.idle:
                n_idle += 1
                continue
            if sid not in kv and self._no_slot(sid, failed):
                n_failed += 1
                continue
            nt = s.num_tokens
            end = s.start_pos + nt
            kv[sid] = end
            if nt != 1:
                prompts.append(nt)
            elif end > one_ctx:
                one_ctx = end
            if s.samples:
                tokens[sid] = (base[sid] + end * _MIX) % vocab
        if prompts:
            n_one = len(seqs) - n_idle - n_failed - len(prompts)
            useful = n_one + sum(prompts)
            computed = max(prompts) * (n_one + len(prompts)) + n_idle if plan.padded else useful + n_idle
            step_s = self.cost.step_time(plan.padded, n_one, one_ctx, n_idle, prompts)
        else:  # decodes (and idle slots) only: the step of almost every replay step, its time memoised
            useful = len(seqs) - n_idle - n_failed
            computed = useful + n_idle
            step_s = self.cost.decode_time(computed, one_ctx)
        return StepResult(step_s + swap_s, tokens, useful, computed - useful, failed, swap_s)

    def forget(self, seq_id: str) -> None:
        """Drop an ended sequence for good (as TorchEngine.forget); unknown ids are ignored."""
        self._base.pop(seq_id, None)
        self._kv.pop(seq_id, None)
        self._swapped.pop(seq_id, None)

    @property
    def kv_slots_used(self) -> int:
        """KV cache slots held by sequences now (of num_slots)."""
        return len(self._kv)

    def close(self) -> None:
        self._base.clear()
        self._kv.clear()
        self._swapped.clear()


def load_sim_engine(
    profile: str | os.PathLike[str] | Profile,
    *,
    model: str | None = None,
    max_num_seqs: int | None = None,
    max_model_len: int | None = None,
    seed: int = 0,
    stat: str | None = None,
) -> SimEngine:
    """A `SimEngine` from a shipped profile name ('tiny-cpu'), a profile file, or a `Profile`."""
    if not isinstance(profile, Profile):
        profile = load_profile(profile, model)
    elif model is not None and profile.model != model:
        raise UserError(f"profile of model '{profile.model}', not '{model}'")
    return SimEngine(profile, max_num_seqs=max_num_seqs, max_model_len=max_model_len, seed=seed, stat=stat)
