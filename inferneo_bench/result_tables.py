"""The bulk of a result as Parquet tables (pyarrow): one row per request, and one per step when kept.

pandas, polars and DuckDB read them directly, e.g. ``duckdb -c "select quantile_cont(first_token_s -
arrival_s, 0.99) from 'results/<run>/adaptive/requests.parquet' where status = 'completed'"``.

requests.parquet: the fields of `results.RequestRecord`, times in seconds since the run's start (float64,
already rounded to 0.1 us by the replay), except the inter-token gaps: ``itl_ns``, list<int64> of
nanoseconds per request (exact: every gap is a whole number of 0.1 us, so ``itl_ns / 1e9`` gives back the
very doubles the summary was computed from). steps.parquet: the fields of `results.StepRecord`, ``batch_id``
null under continuous batching, ``events`` a list of strings per step.
Compression: zstd; the integer columns use Parquet's delta encoding (consecutive gaps and step times of a
run differ little, so deltas pack into a few bits).
"""

from __future__ import annotations

import os
from array import array
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from inferneo_bench.steplog import CLOSE_CODE, CLOSED_BY, StepLog
from inferneo_bench.steplog import COLUMNS as STEP_COLUMNS

ITL_SCALE = 1e7  # the replay's time quantum is 0.1 us: gap = k / 1e7 s, stored as k * 100 ns


def _pa() -> Any:
    import pyarrow

    return pyarrow


def _write(table: Any, path: Path, delta: list[str]) -> None:
    import pyarrow.parquet as pq

    dictionary = [name for name in table.column_names if name not in delta]
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=dictionary,
        column_encoding=dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
    )


# ---- requests ---------------------------------------------------------------------------------------------
def itl_to_ns(values: np.ndarray) -> np.ndarray:
    """Seconds (multiples of 0.1 us) -> int64 nanoseconds, exactly."""
    return np.rint(values * ITL_SCALE).astype(np.int64) * 100


def flat_floats(lists: Any) -> np.ndarray:
    """Concatenate float lists into one float64 array (array.extend runs in C: ~20 ns a value)."""
    out = array("d")
    for values in lists:
        out.extend(values)
    return np.frombuffer(out, dtype=np.float64) if len(out) else np.zeros(0)


def _request_columns() -> list[tuple[str, str, bool]]:
    """(field, kind, nullable) for every RequestRecord field in order, kind one of int, float, bool, str,
    list_int (from the field's annotation, so a field added to RequestRecord gets its column), or itl."""
    from typing import get_type_hints

    from inferneo_bench.results import RequestRecord

    hints = get_type_hints(RequestRecord)
    out = []
    for f in fields(RequestRecord):
        if f.name == "itl_s":
            out.append((f.name, "itl", False))  # stored as itl_ns
            continue
        text = str(hints[f.name])
        nullable = "None" in text
        if "list" in text:
            kind = "list_int"
        elif "bool" in text:
            kind = "bool"
        elif "int" in text:
            kind = "int"
        elif "float" in text:
            kind = "float"
        else:
            kind = "str"
        out.append((f.name, kind, nullable))
    return out


def requests_table(records: list[Any]) -> Any:
    """An Arrow table of RequestRecord objects (see the module docstring for the columns)."""
    pa = _pa()
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    arrays, schema = [], []
    for name, kind, nullable in _request_columns():
        if kind == "itl":
            lengths = np.fromiter((len(r.itl_s) for r in records), dtype=np.int64, count=len(records))
            offsets = np.zeros(len(records) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            values = pa.array(itl_to_ns(flat_floats(r.itl_s for r in records)), type=pa.int64())
            arrays.append(pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), values))
            schema.append(pa.field("itl_ns", pa.large_list(pa.int64()), nullable=False))
            continue
        column = [getattr(r, name) for r in records]
        if kind == "list_int":
            arrays.append(pa.array(column, type=pa.large_list(pa.int64())))
            schema.append(pa.field(name, pa.large_list(pa.int64()), nullable=False))
        else:
            arrays.append(pa.array(column, type=types[kind]))
            schema.append(pa.field(name, types[kind], nullable=nullable or kind == "str"))
    return pa.Table.from_arrays(arrays, schema=pa.schema(schema))


def write_requests(records: list[Any], path: Path) -> None:
    ints = [name for name, kind, _ in _request_columns() if kind in ("int", "list_int")]
    _write(requests_table(records), path, delta=["itl_ns", *ints])


def read_requests(path: str | os.PathLike[str]) -> list[Any]:
    """RequestRecord objects back from requests.parquet (itl_s as lists of float seconds). A column the file
    lacks (a field newer than the file) keeps the field's default; a column the tool does not know is ignored."""
    import pyarrow.parquet as pq

    from inferneo_bench.results import RequestRecord

    table = pq.read_table(path)
    present = set(table.column_names)
    names = [name for name, kind, _ in _request_columns() if kind != "itl" and name in present]
    columns = {name: table.column(name).to_pylist() for name in names}
    flat, offsets = list_column(table.column("itl_ns"))
    gaps = (flat / 1e9).tolist()
    out = []
    for i in range(table.num_rows):
        kwargs = {name: columns[name][i] for name in names}
        out.append(RequestRecord(**kwargs, itl_s=gaps[offsets[i] : offsets[i + 1]]))
    return out


def list_column(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat values, offsets with one more entry than rows)."""
    import pyarrow.compute as pc

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return values, offsets


def read_request_columns(path: str | os.PathLike[str], columns: list[str]) -> dict[str, np.ndarray]:
    """Chosen columns of requests.parquet as numpy arrays (None -> nan in the float columns); ``itl_ns``
    comes back as ``itl_ns`` (flat int64) plus ``itl_offsets``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=columns)
    out: dict[str, np.ndarray] = {}
    for name in columns:
        col = table.column(name)
        if name == "itl_ns":
            out["itl_ns"], out["itl_offsets"] = list_column(col)
        elif col.type == _pa().float64():
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


# ---- steps ------------------------------------------------------------------------------------------------
def steps_table(log: StepLog) -> Any:
    pa = _pa()
    arrays = log.arrays()
    n = int(arrays["start_s"].size)
    cols = [pa.array(np.arange(n, dtype=np.int64))]
    schema = [pa.field("index", pa.int64(), nullable=False)]
    for name in STEP_COLUMNS:
        values = arrays[name]
        if name == "batch_id":
            cols.append(pa.array(values, type=pa.int64(), mask=values < 0))
            schema.append(pa.field(name, pa.int64()))
        elif name == "closed_by":  # the limit's name (null on steps that did not start a static batch)
            cols.append(pa.array([CLOSED_BY[c] for c in values.tolist()], type=pa.string()).dictionary_encode())
            schema.append(pa.field(name, pa.dictionary(pa.int32(), pa.string())))
        else:
            typ = pa.float64() if values.dtype.kind == "f" else pa.int64()
            cols.append(pa.array(values, type=typ))
            schema.append(pa.field(name, typ, nullable=False))
    by_step = log.events_by_step()
    offsets = np.zeros(n + 1, dtype=np.int64)
    texts: list[str] = []
    for i in sorted(by_step):
        offsets[i + 1] = len(by_step[i])
        texts.extend(by_step[i])
    np.cumsum(offsets, out=offsets)
    cols.append(pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), pa.array(texts, type=pa.string())))
    schema.append(pa.field("events", pa.large_list(pa.string()), nullable=False))
    return pa.Table.from_arrays(cols, schema=pa.schema(schema))


def write_steps(log: StepLog, path: Path) -> None:
    ints = ["index", "batch_id", "batch_size", "new_tokens", "padded_tokens", "queue_depth", "idle_slots"]
    _write(steps_table(log), path, delta=ints)


def read_steps(path: str | os.PathLike[str], events: list[tuple[int, float, str]]) -> StepLog:
    """A StepLog of every row of steps.parquet (the events come from result.json, with their times)."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    numeric = [c for c in STEP_COLUMNS if c not in ("batch_id", "closed_by")]
    table = pq.read_table(path, columns=["batch_id", *numeric, *(["closed_by"] if "closed_by" in present else [])])
    arrays = {name: table.column(name).to_numpy(zero_copy_only=False) for name in numeric}
    arrays["batch_id"] = table.column("batch_id").fill_null(-1).to_numpy(zero_copy_only=False)
    if "closed_by" in present:  # (results written before the column existed have none: code 0)
        names = table.column("closed_by").to_pylist()
        arrays["closed_by"] = np.asarray([CLOSE_CODE.get(n, 0) for n in names], dtype=np.int8)
    return StepLog.from_columns(arrays, events)
