"""Replay controls: reshape a loaded trace in time and length, and fit requests to a model's context.

Order of application (each optional, all recorded in the workload's `replay` info):
1. window: keep arrivals in [start_s, start_s + duration_s) of the original time line; arrivals then count
   from start_s (so a window opening inside an idle gap keeps that gap);
2. max_requests: the first N of the window;
3. time_scale: speed-up factor, arrival / time_scale (2 = twice as fast);
4. target_rate: rescale every gap so the mean rate (n - 1) / duration equals it (overrides time_scale's rate);
5. length_scale: prompt, output and max_tokens multiplied and rounded, at least 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from inferneo_bench.errors import UserError
from inferneo_bench.workload.spec import RequestSpec
from inferneo_bench.workload.traces import TraceData

CONTEXT_POLICIES = ("reject", "truncate", "scale")


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or not math.isfinite(value):
        raise UserError(f"replay: {name} must be a number > 0, got {value!r}")
    return float(value)


def apply_replay(
    data: TraceData,
    *,
    start_s: float | None = None,
    duration_s: float | None = None,
    max_requests: int | None = None,
    time_scale: float | None = None,
    target_rate: float | None = None,
    length_scale: float | None = None,
) -> tuple[TraceData, dict[str, Any]]:
    """Apply the replay controls to columns with arrivals; returns the new columns and the options applied."""
    assert data.arrival_s is not None
    applied: dict[str, Any] = {}
    arrival = data.arrival_s
    keep = np.ones(len(arrival), dtype=bool)
    if start_s is not None:
        if isinstance(start_s, bool) or not isinstance(start_s, int | float) or start_s < 0:
            raise UserError(f"replay: start_s must be a number >= 0, got {start_s!r}")
        keep &= arrival >= start_s
        applied["start_s"] = float(start_s)
    if duration_s is not None:
        dur = _positive("duration_s", duration_s)
        keep &= arrival < (start_s or 0.0) + dur
        applied["duration_s"] = dur
    index = np.flatnonzero(keep)
    if max_requests is not None:
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
            raise UserError(f"replay: max_requests must be an integer >= 1, got {max_requests!r}")
        index = index[:max_requests]
        applied["max_requests"] = max_requests
    if index.size == 0:
        raise UserError(
            f"replay: the window start_s={start_s} duration_s={duration_s} holds no requests "
            f"(the workload spans 0..{float(arrival.max()):.3f} s); widen or move the window"
        )
    out = _take(data, index) if index.size != len(arrival) else replace(data)
    arrival = out.arrival_s - (start_s or 0.0)
    if time_scale is not None:
        arrival = arrival / _positive("time_scale", time_scale)
        applied["time_scale"] = float(time_scale)
    if target_rate is not None:
        rate = _positive("target_rate", target_rate)
        span = float(arrival[-1] - arrival[0])
        if len(arrival) < 2 or span <= 0:
            raise UserError("replay: target_rate needs at least two requests with distinct arrival times")
        current = (len(arrival) - 1) / span
        arrival = arrival[0] + (arrival - arrival[0]) * (current / rate)
        applied["target_rate"] = rate
        applied["rate_factor"] = round(current / rate, 9)
    out.arrival_s = arrival
    if length_scale is not None:
        scale = _positive("length_scale", length_scale)
        out.prompt_tokens = np.maximum(1, np.rint(out.prompt_tokens * scale)).astype(np.int64)
        out.output_tokens = np.maximum(1, np.rint(out.output_tokens * scale)).astype(np.int64)
        if out.max_tokens is not None:
            out.max_tokens = np.maximum(out.output_tokens, np.rint(out.max_tokens * scale)).astype(np.int64)
        applied["length_scale"] = scale
    return out, applied


def _take(data: TraceData, index: np.ndarray) -> TraceData:
    idx = index.tolist()
    return replace(
        data,
        arrival_s=None if data.arrival_s is None else data.arrival_s[index],
        prompt_tokens=data.prompt_tokens[index],
        output_tokens=data.output_tokens[index],
        max_tokens=None if data.max_tokens is None else data.max_tokens[index],
        priority=None if data.priority is None else data.priority[index],
        prefix_block_ids=None if data.prefix_block_ids is None else [data.prefix_block_ids[i] for i in idx],
        # ids keep the position in the full workload, so a window's r57 is the trace's r57
        request_ids=[f"r{i}" for i in idx] if data.request_ids is None else [data.request_ids[i] for i in idx],
    )


@dataclass
class ContextPolicyResult:
    """What `apply_context_policy` did: requests to run, requests to mark rejected (with the reason), and
    how many were changed (truncate/scale). `info()` goes into the result's workload info."""

    kept: list[RequestSpec]
    rejected: list[tuple[RequestSpec, str]] = field(default_factory=list)
    modified: int = 0
    policy: str = "reject"
    max_model_len: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "max_model_len": self.max_model_len,
            "rejected": len(self.rejected),
            "truncated": self.modified if self.policy == "truncate" else 0,
            "scaled": self.modified if self.policy == "scale" else 0,
        }


def apply_context_policy(
    requests: list[RequestSpec],
    max_model_len: int,
    policy: str = "reject",
    prefix_block_size: int | None = None,
) -> ContextPolicyResult:
    """Fit requests to a model context of `max_model_len` tokens (prompt + max(max_tokens, output) must fit).

    - reject (default): over-long requests are returned in `rejected` with the reason; the runner records
      them as rejected (they count in the result, as a server's 400 would).
    - truncate: keep the prompt's first tokens (so shared prefixes stay shared) down to what fits beside
      max_tokens; if max_tokens alone does not fit, the prompt becomes 1 token and max_tokens/output are cut.
    - scale: prompt, max_tokens and output multiplied by max_model_len / (prompt + max_tokens), rounded down,
      at least 1 (keeps the prompt/output ratio).
    A context under 2 tokens cannot hold a prompt and one output token: every request is rejected.
    """
    if policy not in CONTEXT_POLICIES:
        raise UserError(f"unknown context policy {policy!r}; supported: {', '.join(CONTEXT_POLICIES)}")
    if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 1:
        raise UserError(f"max_model_len must be an integer >= 1, got {max_model_len!r}")
    result = ContextPolicyResult(kept=[], policy=policy, max_model_len=max_model_len)
    limit = max_model_len
    for r in requests:
        budget = max(r.max_tokens or 0, r.output_tokens)
        need = r.prompt_tokens + budget
        if need <= limit:
            result.kept.append(r)
            continue
        if policy == "reject" or limit < 2:
            result.rejected.append(
                (r, f"prompt_tokens {r.prompt_tokens} + max_tokens {budget} = {need} exceeds max_model_len {limit}")
            )
            continue
        if policy == "truncate":
            prompt = max(1, min(r.prompt_tokens, limit - budget))
            max_tokens = min(budget, limit - prompt)
        else:
            factor = limit / need
            prompt = max(1, math.floor(r.prompt_tokens * factor))
            max_tokens = max(1, min(math.floor(budget * factor), limit - prompt))
        output = max(1, min(r.output_tokens, max_tokens))
        if policy == "scale":
            output = max(1, min(math.floor(r.output_tokens * factor), max_tokens))
        prefix = r.prefix_block_ids
        if prefix is not None and prefix_block_size:
            prefix = prefix[: -(-prompt // prefix_block_size)]
        result.kept.append(
            replace(r, prompt_tokens=prompt, max_tokens=max_tokens, output_tokens=output, prefix_block_ids=prefix)
        )
        result.modified += 1
    return result
