"""Per-request and per-step arrays for the plots, read only when a plot needs them.

`compare` loads summaries (results.load_summary); a plot asks here for the columns it draws. They come from
the records in memory when the result has them, else straight from the result's Parquet tables (a few
columns, as numpy arrays: no object per request or per token), else from a schema-1 file loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferneo_bench import result_tables, results
from inferneo_bench.results import RunResult
from inferneo_bench.steplog import StepStats, as_steplog

_REQUEST_COLUMNS = ["status", "warmup", "arrival_s", "first_token_s", "finish_s", "output_tokens", "itl_ns"]


@dataclass
class RequestArrays:
    """Completed, measured (non-warm-up) requests with a first token and a finish, in file order."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    output_tokens: np.ndarray
    itl_s: np.ndarray  # every gap of those requests, request after request
    itl_offsets: np.ndarray  # request i's gaps are itl_s[itl_offsets[i]:itl_offsets[i + 1]]

    def token_times(self) -> np.ndarray:
        """Sorted times (s) of every output token: each request's first token, then its gaps added up."""
        lengths = np.diff(self.itl_offsets)
        csum = np.cumsum(self.itl_s)
        start = np.concatenate(([0.0], csum))[self.itl_offsets[:-1]]  # cumulative gaps before each request
        later = np.repeat(self.first_token_s - start, lengths) + csum
        return np.sort(np.concatenate((self.first_token_s, later)))


def request_arrays(result: RunResult) -> RequestArrays:
    if not result.records_loaded and result.source is not None and result.source.is_dir():
        return _from_table(result)
    if not result.records_loaded:
        result = results.records_of(result)  # a schema-1 file: the records are in its JSON
    done = [
        r
        for r in result.requests
        if r.status == "completed" and not r.warmup and r.first_token_s is not None and r.finish_s is not None
    ]
    lengths = np.fromiter((len(r.itl_s) for r in done), dtype=np.int64, count=len(done))
    offsets = np.zeros(len(done) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RequestArrays(
        arrival_s=np.asarray([r.arrival_s for r in done], dtype=float),
        first_token_s=np.asarray([r.first_token_s for r in done], dtype=float),
        finish_s=np.asarray([r.finish_s for r in done], dtype=float),
        output_tokens=np.asarray([r.output_tokens for r in done], dtype=np.int64),
        itl_s=result_tables.flat_floats(r.itl_s for r in done),
        itl_offsets=offsets,
    )


def _from_table(result: RunResult) -> RequestArrays:
    assert result.source is not None
    cols = result_tables.read_request_columns(result.source / results.REQUESTS_FILE, _REQUEST_COLUMNS)
    keep = (
        (cols["status"] == "completed")
        & ~cols["warmup"].astype(bool)
        & ~np.isnan(cols["first_token_s"])
        & ~np.isnan(cols["finish_s"])
    )
    offsets = cols["itl_offsets"]
    lengths = np.diff(offsets)
    gap_keep = np.repeat(keep, lengths)
    kept_offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[keep], out=kept_offsets[1:])
    return RequestArrays(
        arrival_s=cols["arrival_s"][keep],
        first_token_s=cols["first_token_s"][keep],
        finish_s=cols["finish_s"][keep],
        output_tokens=cols["output_tokens"][keep].astype(np.int64),
        itl_s=cols["itl_ns"][gap_keep] / 1e9,
        itl_offsets=kept_offsets,
    )


@dataclass
class StepSeries:
    """What the timeline draws per strategy: per step when the result kept its steps, else per second
    (the aggregates' means, `per_second` True)."""

    t_s: np.ndarray
    queue_depth: np.ndarray
    batch_size: np.ndarray
    end_s: float  # when the last step ended (per second: the end of the last second with a step)
    per_second: bool


def step_stats(result: RunResult) -> StepStats:
    """The step aggregates (exact batch-size counts, histograms, per-second series): always at hand."""
    return as_steplog(result.steps).stats()


def step_series(result: RunResult) -> StepSeries:
    log = as_steplog(result.steps)
    if log.rows_kept and (len(log) or log.num_steps == 0):
        cols = log.arrays()
    elif result.source is not None and result.source.is_dir() and (result.source / results.STEPS_FILE).is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(
            result.source / results.STEPS_FILE, columns=["start_s", "step_ms", "queue_depth", "batch_size"]
        )
        cols = {name: table.column(name).to_numpy() for name in table.column_names}
    else:
        stats = log.stats()
        seconds = np.asarray(sorted(stats.per_second), dtype=float)
        rows = [stats.per_second[int(s)] for s in seconds]
        steps = np.asarray([r[0] for r in rows], dtype=float)
        return StepSeries(
            t_s=seconds + 0.5,
            queue_depth=np.asarray([r[3] for r in rows], dtype=float) / np.maximum(steps, 1),
            batch_size=np.asarray([r[1] for r in rows], dtype=float) / np.maximum(steps, 1),
            end_s=float(seconds[-1] + 1.0) if seconds.size else 0.0,
            per_second=True,
        )
    start = np.asarray(cols["start_s"], dtype=float)
    end = start + np.asarray(cols["step_ms"], dtype=float) / 1000.0
    return StepSeries(
        t_s=start,
        queue_depth=np.asarray(cols["queue_depth"], dtype=float),
        batch_size=np.asarray(cols["batch_size"], dtype=float),
        end_s=float(end.max()) if end.size else 0.0,
        per_second=False,
    )
