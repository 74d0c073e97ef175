"""Why strategies tie: which limit closed each static batch, and a one-line note when two strategies formed
the same batches (the same `schedule_digest` on the same workload).

Every static batch records the limit that closed it (`StepRecord.closed_by`, `SchedulerCore._closed_by`);
the summary keeps the share of each (`batch_closed_by`). When two strategies' rules differ only in a limit
that never binds, they form the same batches, and the note says which limit did bind and which setting
moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LIMITS = {
    "request_cap": "the request cap",
    "token_budget": "the token budget",
    "kv_capacity": "the KV capacity",
    "fill_delay": "the fill delay expiring",
    "queue_empty": "an empty queue",
}


@dataclass
class Schedule:
    """One strategy's schedule on one workload (a result, or a sweep point)."""

    strategy: str
    digest: int | None
    closed_by: dict[str, float] | None  # share of batches per limit
    config: dict[str, Any]
    where: str = ""  # the workload/point, to group schedules that can be compared


def shares_text(closed_by: dict[str, float] | None) -> str:
    """'token budget 97%, request cap 2%, ...' (largest first), or '' for continuous batching."""
    if not closed_by:
        return ""
    items = sorted(closed_by.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in items)


def _advice(limit: str, config: dict[str, Any]) -> str:
    if limit == "token_budget":
        return f"(max_waiting_tokens={config.get('max_waiting_tokens')}); raise it to let the cap matter"
    if limit == "kv_capacity":
        return f"(kv_cache_tokens={config.get('kv_cache_tokens')}); raise it or lower max_tokens to let the cap matter"
    if limit == "request_cap":
        return f"(max_num_partial_prefills={config.get('max_num_partial_prefills')}); their caps never differed"
    if limit == "fill_delay":
        return (
            f"(max_queue_delay_ms={config.get('max_queue_delay_ms')}): the load is too light to fill a batch; "
            "raise the rate"
        )
    return "(each took every waiting request): the load is too light for the batching rules to differ; raise the rate"


def tie_notes(schedules: Sequence[Schedule]) -> list[str]:
    """One note per group of (at least two) strategies with the same digest at the same `where`."""
    groups: dict[tuple[str, str], list[Schedule]] = {}
    for s in schedules:
        if s.digest is not None:
            groups.setdefault((s.where, s.digest), []).append(s)
    notes = []
    for (where, _), members in groups.items():
        names = list(dict.fromkeys(m.strategy for m in members))
        if len(names) < 2:
            continue
        notes.append(tie_line(names, members) + (f" [{where}]" if where else ""))
    return notes


def tie_line(names: Sequence[str], members: Sequence[Schedule]) -> str:
    """'adaptive == fixed_size (the same batches): closed by the token budget: adaptive 97%, fixed_size 84%
    (max_waiting_tokens=2048); raise it to let the cap matter'."""
    pooled: dict[str, float] = {}
    for m in members:
        for k, v in (m.closed_by or {}).items():
            pooled[k] = pooled.get(k, 0.0) + v
    head = " == ".join(names) + " (the same batches)"
    if not pooled:
        return head
    limit = max(pooled, key=lambda k: pooled[k])
    per = ", ".join(f"{m.strategy} {(m.closed_by or {}).get(limit, 0.0):.0%}" for m in _first_each(members))
    return f"{head}: batches closed by {LIMITS.get(limit, limit)}: {per} {_advice(limit, members[0].config)}"


def _first_each(members: Sequence[Schedule]) -> list[Schedule]:
    seen: dict[str, Schedule] = {}
    for m in members:
        seen.setdefault(m.strategy, m)
    return list(seen.values())
