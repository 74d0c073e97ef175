"""What a workload is: a list of requests with arrival times and lengths, plus where it came from.

`RequestSpec` is the unit the runner replays; `Workload` carries the requests with their provenance
(name, source/attribution, format, load statistics, replay options) and a content hash that compare/check
use to refuse comparing results of different traffic.
"""

from __future__ import annotations

import gc
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_PRIORITY = 5
MIN_PRIORITY, MAX_PRIORITY = 1, 10  # 1 lowest .. 10 highest (the scheduler's convention)


@dataclass(slots=True)
class RequestSpec:
    """One request. Times in seconds from the workload start (the first request arrives at 0 unless offline)."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int  # what the engine will generate (the trace's recorded output length)
    max_tokens: int | None = None  # what a scheduler may see; defaults to output_tokens
    priority: int = DEFAULT_PRIORITY
    prefix_block_ids: tuple[int, ...] | None = None  # shareable prefix blocks (Mooncake hash_ids)

    def __post_init__(self) -> None:
        if self.max_tokens is None:
            self.max_tokens = self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "max_tokens": self.max_tokens,
            "priority": self.priority,
        }
        if self.prefix_block_ids is not None:
            data["prefix_block_ids"] = list(self.prefix_block_ids)
        return data


@dataclass
class Workload:
    """Requests sorted by arrival (ties in source order) with their provenance."""

    name: str
    requests: list[RequestSpec]
    description: str = ""
    source: str = ""  # origin and attribution (licence) of the data
    format: str = "synthetic"  # synthetic | azure | burstgpt | mooncake | lengths | splitwise | jsonl
    path: str | None = None  # the spec or trace file it was loaded from
    stats: dict[str, int] = field(default_factory=dict)  # rows_read, dropped_failed, skipped_bad_rows, reordered ...
    replay: dict[str, Any] = field(default_factory=dict)  # replay options applied (window, time scale, ...)
    context_policy: str = "reject"  # what the runner does with requests longer than the model context
    prefix_block_size: int | None = None  # tokens per prefix block when prefix_block_ids are set

    @property
    def num_requests(self) -> int:
        return len(self.requests)

    @property
    def duration_s(self) -> float:
        """Span from the first to the last arrival."""
        if not self.requests:
            return 0.0
        return float(self.requests[-1].arrival_s - self.requests[0].arrival_s)

    @property
    def mean_rate(self) -> float | None:
        """Mean arrival rate = 1 / mean inter-arrival gap = (n - 1) / duration; None if it has no duration."""
        duration = self.duration_s
        if len(self.requests) < 2 or duration <= 0:
            return None
        return (len(self.requests) - 1) / duration

    @property
    def content_hash(self) -> str:
        """sha256 over every request field, in order; independent of name, path and float formatting noise
        (arrivals are hashed at nanosecond resolution). Recomputed on each call (O(n))."""
        return content_hash(self.requests)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns as numpy arrays (for statistics)."""
        reqs = self.requests
        return {
            "arrival_s": np.fromiter((r.arrival_s for r in reqs), dtype=np.float64, count=len(reqs)),
            "prompt_tokens": np.fromiter((r.prompt_tokens for r in reqs), dtype=np.int64, count=len(reqs)),
            "output_tokens": np.fromiter((r.output_tokens for r in reqs), dtype=np.int64, count=len(reqs)),
            "priority": np.fromiter((r.priority for r in reqs), dtype=np.int64, count=len(reqs)),
        }

    def info(self, context: Any = None) -> dict[str, Any]:
        """The result file's `workload` key. `context`: the runner's `ContextPolicyResult`, recorded under
        "context" (policy, max_model_len, rejected/truncated/scaled counts)."""
        rate = self.mean_rate
        info = {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "format": self.format,
            "path": self.path,
            "num_requests": self.num_requests,
            "duration_s": round(self.duration_s, 6),
            "mean_rate": None if rate is None else round(rate, 6),
            "content_hash": self.content_hash,
            "stats": dict(self.stats),
            "replay": dict(self.replay),
            "context_policy": self.context_policy,
        }
        if context is not None:
            info["context"] = context.info()
        return info


def content_hash(requests: list[RequestSpec]) -> str:
    """Stable sha256 of the requests, in order: the ids, then each numeric column as little-endian int64
    (arrival in integer nanoseconds, so float formatting noise does not matter), then the prefix block ids.
    Vectorised: well under a second for a million requests."""
    n = len(requests)
    digest = hashlib.sha256(f"inferneo-workload-v1 n={n}\n".encode())
    digest.update("\n".join([r.request_id for r in requests]).encode())
    arrival = np.fromiter((r.arrival_s for r in requests), dtype=np.float64, count=n)
    digest.update(np.rint(arrival * 1e9).astype("<i8").tobytes())
    for name in ("prompt_tokens", "output_tokens", "max_tokens", "priority"):
        column = np.fromiter((getattr(r, name) for r in requests), dtype=np.int64, count=n)
        digest.update(column.astype("<i8").tobytes())
    if any(r.prefix_block_ids is not None for r in requests):
        prefixes = ("-" if r.prefix_block_ids is None else ",".join(map(str, r.prefix_block_ids)) for r in requests)
        digest.update(("\n".join(prefixes)).encode())
    return "sha256:" + digest.hexdigest()


def build_requests(
    arrival_s: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    max_tokens: np.ndarray | None = None,
    priority: np.ndarray | None = None,
    prefix_block_ids: list[tuple[int, ...] | None] | None = None,
    ids: list[str] | None = None,
) -> list[RequestSpec]:
    """Columns -> RequestSpec list (fast path: plain Python scalars via tolist())."""
    n = len(arrival_s)
    arr = np.asarray(arrival_s, dtype=np.float64).tolist()
    pro = np.asarray(prompt_tokens, dtype=np.int64).tolist()
    out = np.asarray(output_tokens, dtype=np.int64).tolist()
    mx = out if max_tokens is None else np.asarray(max_tokens, dtype=np.int64).tolist()
    pri = [DEFAULT_PRIORITY] * n if priority is None else np.asarray(priority, dtype=np.int64).tolist()
    pre = [None] * n if prefix_block_ids is None else prefix_block_ids
    with no_gc():
        rid = ids if ids is not None else [f"r{i}" for i in range(n)]
        return list(map(RequestSpec, rid, arr, pro, out, mx, pri, pre))


@contextmanager
def no_gc():
    """Pause the cyclic garbage collector while allocating many small acyclic objects: its generation-0
    passes otherwise dominate building a million RequestSpecs (about 4x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
