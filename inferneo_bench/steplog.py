"""Per-step records of a replay: compact columns in memory, every row up to a limit, aggregates beyond it.

An hour of a production trace runs millions of engine steps under a static strategy; one Python object per
step costs ~450 bytes and a second of bookkeeping per 200k steps. The replay loop packs a step's figures
into one bytearray (53 bytes a step). The rule for what a result keeps (README, "Result files"):

- a run of at most `keep` steps (default `DEFAULT_KEEP_STEPS`) keeps every step's row;
- a longer run keeps aggregated step statistics (`StepStats`: exact totals, the batch-size distribution,
  log-binned histograms of step time and scheduler time, a per-second series) and every step event (adaptive
  cap changes, preemptions) with its step index and time; the rows are folded into the aggregates as the
  replay goes, so memory stays bounded;
- `keep=None` (`run --keep-steps all`) keeps every row whatever the length.

The aggregates always exist (computed from the rows when they are kept), and hold everything the summary's
step figures need, exactly: `metrics.step_figures` gives the same values from rows or from aggregates.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_KEEP_STEPS = 250_000
FOLD_CHUNK = 65_536  # rows folded at once once the run is past its limit
BINS_PER_DECADE = 20  # log-binned histograms: bin k spans [10^(k/20), 10^((k+1)/20)), ~12% wide

# column name -> struct format code (d float64, q int64, i int32); StepRecord's order, without index and events
COLUMNS: dict[str, str] = {
    "start_s": "d",
    "batch_id": "q",  # -1: none (continuous batching)
    "batch_size": "i",
    "new_tokens": "i",
    "padded_tokens": "i",
    "step_ms": "d",
    "scheduler_us": "d",
    "queue_depth": "i",
    "idle_slots": "i",
    "closed_by": "b",  # a static batch's first step: the limit that closed it (CLOSED_BY code; 0: none)
}
ROW = struct.Struct("<" + "".join(COLUMNS.values()))  # one step, packed (53 bytes)
# closed_by codes: which limit closed a static batch (scheduler.core.SchedulerCore._closed_by)
CLOSED_BY: tuple[str | None, ...] = (None, "request_cap", "token_budget", "kv_capacity", "fill_delay", "queue_empty")
CLOSE_CODE: dict[str | None, int] = {name: code for code, name in enumerate(CLOSED_BY)}
_NUMPY_CODE = {"d": "f8", "q": "i8", "i": "i4", "b": "i1"}
ROW_DTYPE = np.dtype([(name, "<" + _NUMPY_CODE[code]) for name, code in COLUMNS.items()])
# rounding of the measured columns, round(x * scale) / scale, applied once before any figure is computed so
# that a result's figures recompute exactly from what it stores: all three to 0.1 us
ROUNDING = {"start_s": 1e7, "step_ms": 1e4, "scheduler_us": 10.0}
PER_SECOND = (
    "steps",
    "batch_size_sum",
    "batch_size_max",
    "queue_depth_sum",
    "queue_depth_max",
    "new_tokens",
    "padded_tokens",
    "idle_slots",
    "busy_ms",
)


def quantized(values: np.ndarray, scale: float) -> np.ndarray:
    """round(x * scale) / scale elementwise, the same doubles Python's round() gives (half to even)."""
    return np.rint(values * scale) / scale


@dataclass
class LogHistogram:
    """Count, sum, min, max and log-binned counts of positive values (zeros counted apart); mergeable."""

    count: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    zero: int = 0
    bins: dict[int, int] = field(default_factory=dict)  # k -> count, bin k = [10^(k/B), 10^((k+1)/B))

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.count += int(values.size)
        self.total += float(values.sum())
        lo, hi = float(values.min()), float(values.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        positive = values[values > 0]
        self.zero += int(values.size - positive.size)
        if positive.size:
            ks, counts = np.unique(np.floor(np.log10(positive) * BINS_PER_DECADE).astype(np.int64), return_counts=True)
            for k, c in zip(ks.tolist(), counts.tolist(), strict=True):
                self.bins[k] = self.bins.get(k, 0) + c

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.total,
            "min": self.min,
            "max": self.max,
            "zero": self.zero,
            "bins_per_decade": BINS_PER_DECADE,
            "bins": [[float(f"{10 ** (k / BINS_PER_DECADE):.6g}"), n] for k, n in sorted(self.bins.items())],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        per = data.get("bins_per_decade", BINS_PER_DECADE)
        bins = {round(math.log10(lower) * per): int(n) for lower, n in data.get("bins", [])}
        return cls(int(data["count"]), float(data["sum"]), data["min"], data["max"], int(data.get("zero", 0)), bins)


@dataclass
class StepStats:
    """Aggregated statistics of a run's steps. Totals and the batch-size distribution are exact; step time
    and scheduler time are log-binned histograms; `per_second` sums and maxima per second of run time (by
    each step's start). Everything merges across chunks of rows (`add_rows`)."""

    num_steps: int = 0
    slot_steps: int = 0  # sum of batch sizes (sequence slots computed, idle slots included)
    new_tokens: int = 0
    padded_tokens: int = 0
    idle_slots: int = 0
    batch_size_counts: dict[int, int] = field(default_factory=dict)
    step_ms: LogHistogram = field(default_factory=LogHistogram)
    scheduler_us: LogHistogram = field(default_factory=LogHistogram)
    per_second: dict[int, list[float]] = field(default_factory=dict)  # second -> values in PER_SECOND order
    closed_by_counts: dict[str, int] = field(default_factory=dict)  # static batches per closing limit
    # the schedule's fingerprint: the first 52 bits of the SHA-256 of every step's batch size, useful and padded
    # tokens in order (an integer a JSON number holds exactly), hashed chunk by chunk as rows are added
    # (metrics.step_figures says what it is for)
    schedule_digest: int | None = None
    _hasher: Any = field(default=None, compare=False, repr=False)

    def add_rows(self, cols: dict[str, np.ndarray]) -> None:
        n = int(cols["start_s"].size)
        if n == 0:
            return
        sizes = cols["batch_size"].astype(np.int64)
        if self._hasher is None:
            self._hasher = hashlib.sha256()
        shape = np.stack([sizes, cols["new_tokens"].astype(np.int64), cols["padded_tokens"].astype(np.int64)], axis=1)
        self._hasher.update(shape.astype("<i8").tobytes())
        self.schedule_digest = int(self._hasher.hexdigest()[:13], 16)
        codes = cols.get("closed_by")
        if codes is not None and codes.size:
            values, counts = np.unique(codes[codes > 0], return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                name = CLOSED_BY[v]
                self.closed_by_counts[name] = self.closed_by_counts.get(name, 0) + c
        self.num_steps += n
        self.slot_steps += int(sizes.sum())
        self.new_tokens += int(cols["new_tokens"].astype(np.int64).sum())
        self.padded_tokens += int(cols["padded_tokens"].astype(np.int64).sum())
        self.idle_slots += int(cols["idle_slots"].astype(np.int64).sum())
        values, counts = np.unique(sizes, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.batch_size_counts[v] = self.batch_size_counts.get(v, 0) + c
        self.step_ms.add(cols["step_ms"])
        self.scheduler_us.add(cols["scheduler_us"])
        seconds = np.floor(cols["start_s"]).astype(np.int64)
        order = np.argsort(seconds, kind="stable")  # already sorted in a replay; cheap when it is
        seconds = seconds[order]
        keys, starts = np.unique(seconds, return_index=True)
        depth = cols["queue_depth"].astype(np.int64)[order]
        sums = [np.add.reduceat(a, starts) for a in (
            sizes[order], depth, cols["new_tokens"].astype(np.int64)[order],
            cols["padded_tokens"].astype(np.int64)[order], cols["idle_slots"].astype(np.int64)[order],
        )]  # fmt: skip
        busy = np.add.reduceat(cols["step_ms"][order], starts)
        size_max = np.maximum.reduceat(sizes[order], starts)
        depth_max = np.maximum.reduceat(depth, starts)
        steps = np.diff(np.append(starts, seconds.size))
        for i, sec in enumerate(keys.tolist()):
            row = [
                int(steps[i]),
                int(sums[0][i]),
                int(size_max[i]),
                int(sums[1][i]),
                int(depth_max[i]),
                int(sums[2][i]),
                int(sums[3][i]),
                int(sums[4][i]),
                float(busy[i]),
            ]
            old = self.per_second.get(sec)
            if old is None:
                self.per_second[sec] = row
            else:
                self.per_second[sec] = [
                    max(a, b) if name.endswith("_max") else a + b
                    for name, a, b in zip(PER_SECOND, old, row, strict=True)
                ]

    # ---- figures (exact from the counts; numpy's definitions) ------------------------------------------
    def mean_batch_size(self) -> float | None:
        return self.slot_steps / self.num_steps if self.num_steps else None

    def median_batch_size(self) -> float | None:
        """np.median of every step's batch size, from the counts (the two middle values averaged)."""
        n = self.num_steps
        if not n:
            return None
        lo, hi = (n - 1) // 2, n // 2
        seen, a, b = 0, None, None
        for size in sorted(self.batch_size_counts):
            seen += self.batch_size_counts[size]
            if a is None and seen > lo:
                a = size
            if seen > hi:
                b = size
                break
        return (float(a) + float(b)) / 2.0 if a != b else float(a)

    def max_batch_size(self) -> int | None:
        return max(self.batch_size_counts) if self.batch_size_counts else None

    # ---- storage ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        seconds = sorted(self.per_second)
        series: dict[str, list[Any]] = {"t_s": seconds}
        for i, name in enumerate(PER_SECOND):
            series[name] = [self.per_second[s][i] for s in seconds]
        return {
            "num_steps": self.num_steps,
            "slot_steps": self.slot_steps,
            "new_tokens": self.new_tokens,
            "padded_tokens": self.padded_tokens,
            "idle_slots": self.idle_slots,
            "batch_size_counts": [[k, v] for k, v in sorted(self.batch_size_counts.items())],
            "step_ms": self.step_ms.to_dict(),
            "scheduler_us": self.scheduler_us.to_dict(),
            "per_second": series,
            "closed_by_counts": dict(sorted(self.closed_by_counts.items())),
            "schedule_digest": self.schedule_digest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepStats:
        series = data.get("per_second") or {"t_s": []}
        per_second = {int(t): [series[name][i] for name in PER_SECOND] for i, t in enumerate(series.get("t_s", []))}
        return cls(
            num_steps=int(data["num_steps"]),
            slot_steps=int(data["slot_steps"]),
            new_tokens=int(data["new_tokens"]),
            padded_tokens=int(data["padded_tokens"]),
            idle_slots=int(data["idle_slots"]),
            batch_size_counts={int(k): int(v) for k, v in data["batch_size_counts"]},
            step_ms=LogHistogram.from_dict(data["step_ms"]),
            scheduler_us=LogHistogram.from_dict(data["scheduler_us"]),
            per_second=per_second,
            closed_by_counts={str(k): int(v) for k, v in (data.get("closed_by_counts") or {}).items()},
            schedule_digest=None if data.get("schedule_digest") is None else int(data["schedule_digest"]),
        )


class StepLog(Sequence):
    """The steps of one run. A sequence of `results.StepRecord` (built on access) over packed rows, or, past
    the keep limit, no rows and only `stats` and `events`.

    Rows are `ROW` structs packed into one bytearray: the replay loop appends a step with one `ROW.pack`
    (~0.2 us, a third of nine typed-array appends) and numpy reads the columns without a copy (`ROW_DTYPE`).
    Call `fold_if_due()` after each append and `finish()` once at the end (rounds the measured columns)."""

    def __init__(self, keep: int | None = DEFAULT_KEEP_STEPS) -> None:
        if keep is not None and keep < 0:
            raise ValueError(f"keep={keep}: must be >= 0 or None (keep every step)")
        self.keep = keep
        self.rows = bytearray()  # ROW structs, COLUMNS order
        self.events: list[tuple[int, float, str]] = []  # (step index, step start_s, text)
        self._folded = 0  # steps folded into _stats (their rows dropped)
        self._stats = StepStats()
        self._finished = False
        self.fold_at = math.inf if keep is None else keep + 1  # rows held when the next fold is due

    # ---- building ----------------------------------------------------------------------------------------
    def append(
        self,
        start_s: float,
        batch_id: int | None,
        batch_size: int,
        new_tokens: int,
        padded_tokens: int,
        step_ms: float,
        scheduler_us: float,
        queue_depth: int,
        idle_slots: int = 0,
        events: Iterable[str] = (),
        closed_by: str | None = None,
    ) -> None:
        index = self.num_steps
        self.rows += ROW.pack(start_s, -1 if batch_id is None else batch_id, batch_size, new_tokens, padded_tokens,
                              step_ms, scheduler_us, queue_depth, idle_slots, CLOSE_CODE[closed_by])  # fmt: skip
        for text in events:
            self.events.append((index, start_s, text))
        self.fold_if_due()

    def add_event(self, text: str) -> None:
        """An event of the step just appended (the last row)."""
        start_s = ROW.unpack_from(self.rows, len(self.rows) - ROW.size)[0]
        self.events.append((self.num_steps - 1, start_s, text))

    def fold_if_due(self) -> None:
        if len(self.rows) // ROW.size >= self.fold_at:
            self._fold()

    def _fold(self) -> None:
        arrays = self._arrays(quantize=not self._finished)
        self._stats.add_rows(arrays)
        self._folded += int(arrays["start_s"].size)
        del self.rows[:]  # emptied in place: the replay loop holds this bytearray
        self.fold_at = FOLD_CHUNK

    def finish(self, quantize: bool = True) -> StepLog:
        """End of the replay: round the measured columns once (see ROUNDING), fold what remains when the run
        went past its limit, and round the events' times like the rows'."""
        if self._finished:
            return self
        if self._folded:
            self._fold()
        elif quantize and self.rows:
            packed = np.frombuffer(self.rows, dtype=ROW_DTYPE).copy()
            for name, scale in ROUNDING.items():
                packed[name] = quantized(packed[name], scale)
            self.rows = bytearray(packed.tobytes())
        if quantize:
            scale = ROUNDING["start_s"]
            self.events = [(i, round(t * scale) / scale, text) for i, t, text in self.events]
        self._finished = True
        self.fold_at = math.inf
        return self

    @classmethod
    def from_records(cls, records: Iterable[Any], keep: int | None = None) -> StepLog:
        """From StepRecord-like objects (tests, schema-1 files); values are stored as given."""
        log = cls(keep)
        for r in records:
            log.append(r.start_s, r.batch_id, r.batch_size, r.new_tokens, r.padded_tokens, r.step_ms,
                       r.scheduler_us, r.queue_depth, r.idle_slots, r.events,
                       getattr(r, "closed_by", None))  # fmt: skip
        return log.finish(quantize=False)

    @classmethod
    def from_columns(
        cls, arrays: dict[str, np.ndarray], events: list[tuple[int, float, str]], stats: StepStats | None = None
    ) -> StepLog:
        """From stored columns (a result's steps table) or, with no rows, from stored aggregates."""
        log = cls(None)
        n = int(arrays["start_s"].size) if arrays else 0
        if n:
            packed = np.zeros(n, dtype=ROW_DTYPE)
            for name in COLUMNS:
                if name in arrays:  # (closed_by is absent from results written before it existed: 0)
                    packed[name] = arrays[name]
            log.rows = bytearray(packed.tobytes())
        elif stats is not None and stats.num_steps:
            log._stats, log._folded = stats, stats.num_steps
        log.events = list(events)
        log._finished = True
        log.fold_at = math.inf
        return log

    # ---- reading -----------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self._folded + len(self.rows) // ROW.size

    @property
    def rows_kept(self) -> bool:
        """True when every step's row is here (the run stayed within its keep limit, or keep was None)."""
        return self._folded == 0

    def stats(self) -> StepStats:
        """The aggregates: stored ones past the limit, else computed from the rows."""
        if self._folded:
            return self._stats
        stats = StepStats()
        stats.add_rows(self._arrays(quantize=False))
        return stats

    def arrays(self) -> dict[str, np.ndarray]:
        """The kept rows as numpy columns (empty when only aggregates are kept)."""
        return self._arrays(quantize=False)

    def _arrays(self, quantize: bool) -> dict[str, np.ndarray]:
        # copies, not views: a view would pin the bytearray (appending to it would then fail)
        packed = np.frombuffer(self.rows, dtype=ROW_DTYPE) if self.rows else np.zeros(0, dtype=ROW_DTYPE)
        out = {name: packed[name].copy() for name in COLUMNS}
        if quantize:
            for name, scale in ROUNDING.items():
                out[name] = quantized(out[name], scale)
        return out

    def events_by_step(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for index, _, text in self.events:
            out.setdefault(index, []).append(text)
        return out

    def __len__(self) -> int:
        return len(self.rows) // ROW.size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        from inferneo_bench.results import StepRecord

        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("step index out of range")
        start, bid, size, new, pad, ms, us, depth, idle, closed = ROW.unpack_from(self.rows, i * ROW.size)
        events = [text for index, _, text in self.events if index == i]
        bid = None if bid < 0 else bid
        return StepRecord(i, start, bid, size, new, pad, ms, us, depth, idle, events, CLOSED_BY[closed])

    def __iter__(self) -> Iterator[Any]:
        from inferneo_bench.results import StepRecord

        by_step = self.events_by_step()
        for i, (start, bid, size, new, pad, ms, us, depth, idle, closed) in enumerate(ROW.iter_unpack(self.rows)):
            yield StepRecord(i, start, None if bid < 0 else bid, size, new, pad, ms, us, depth, idle,
                             list(by_step.get(i, ())), CLOSED_BY[closed])  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StepLog):
            if self.rows_kept != other.rows_kept or self.events != other.events:
                return False
            return self.rows == other.rows if self.rows_kept else self._stats == other._stats
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self.rows_kept and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kept = f"{len(self)} rows" if self.rows_kept else "aggregates only"
        return f"StepLog({self.num_steps} steps, {kept}, {len(self.events)} events)"


def as_steplog(steps: Sequence[Any] | StepLog) -> StepLog:
    """A StepLog for any sequence of step records (a plain list from old code or tests is converted)."""
    return steps if isinstance(steps, StepLog) else StepLog.from_records(steps)
