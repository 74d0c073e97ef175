"""Recorded-trace readers: format detection and one parser per public format.

Every reader returns columns (`TraceData`) in file order with the file line of each row, so a bad value
is reported as `file:line: column 'X': ...`. Common rules, applied to every format:
- lengths must be integers >= 1 (an integral float such as `12.0` is accepted); anything else is a bad row;
- a bad row fails the load (UserError, exit 2) unless `skip_bad_rows`, which skips it and counts it in
  `stats["skipped_bad_rows"]`;
- timestamps that go backwards are repaired by a stable sort (ties keep file order) and counted in
  `stats["reordered"]`, or refused with `on_unsorted="error"`;
- timed traces are rebased so the first request arrives at 0 (the project JSONL keeps its times).

Files are streamed line by line (a line longer than 1 MiB is refused: no trace row is that long), and with a
limit (`--num-requests`, `--duration`: `Stop`) the reader stops at the first row it does not need, so a
multi-gigabyte trace costs what the requests kept cost. Rows are then taken in file order: a row out of order
beyond the stop point is not seen (the rows read are still sorted). Values enter through the validation
layer's rules: token counts are whole numbers in 1..1,000,000,000, times finite, priorities in range; error
messages quote at most a short, sanitised excerpt of a cell.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inferneo_bench.errors import UserError, where
from inferneo_bench.validation import MAX_TOKENS, excerpt
from inferneo_bench.workload.spec import MAX_PRIORITY, MIN_PRIORITY

FORMATS = ("azure", "burstgpt", "mooncake", "lengths", "splitwise", "jsonl")
FORMAT_HELP = {
    "azure": "Azure LLM inference trace 2023/2024 CSV: TIMESTAMP,ContextTokens,GeneratedTokens",
    "burstgpt": "BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,... (by column name)",
    "mooncake": "Mooncake JSONL: timestamp (ms),input_length,output_length,hash_ids",
    "lengths": "length-only CSV: num_prefill_tokens,num_decode_tokens,... (arrivals generated)",
    "splitwise": "Splitwise/Vidur processed CSV: arrived_at,num_prefill_tokens,num_decode_tokens",
    "jsonl": "inferneo-bench JSONL: one request per line (arrival_s, prompt_tokens, output_tokens, ...)",
}
ALIASES = {"vidur": "splitwise", "sharegpt": "lengths", "length-only": "lengths", "inferneo": "jsonl"}
JSONL_HEADER_FORMAT = "inferneo-jsonl"
JSONL_FIELDS = (
    "request_id",
    "arrival_s",
    "prompt_tokens",
    "output_tokens",
    "max_tokens",
    "priority",
    "prefix_block_ids",
)
MOONCAKE_BLOCK_TOKENS = 512
MAX_LINE_CHARS = 1 << 20  # no trace row is anywhere near this long; a longer line is corruption


@dataclass(frozen=True)
class Stop:
    """Where a reader may stop: after `max_rows` kept rows at or after `start_s`, or at the first row at or
    after `start_s + duration_s` (times relative to the first row kept)."""

    max_rows: int | None = None
    start_s: float | None = None
    duration_s: float | None = None


@dataclass
class TraceData:
    """Columns of a trace, one entry per kept row, sorted by arrival (ties in file order)."""

    format: str
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray | None = None  # None for length-only data
    max_tokens: np.ndarray | None = None
    priority: np.ndarray | None = None
    prefix_block_ids: list[tuple[int, ...] | None] | None = None
    request_ids: list[str] | None = None
    stats: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # the JSONL header's name/description/source
    prefix_block_size: int | None = None


class BadValue(Exception):
    """A bad field: `column` and `value` name it for the error message."""

    def __init__(self, column: str, value: object, reason: str) -> None:
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


def normalize_format(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise UserError(f"unknown trace format {name!r}; supported: {', '.join(FORMATS)} (aliases: {_aliases()})")
    return key


def _aliases() -> str:
    return ", ".join(f"{a}={f}" for a, f in ALIASES.items())


def _open_text(path: Path) -> Any:
    try:
        return path.open("r", encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a trace file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its terminator), streamed; BOM dropped; LF, CRLF or CR line ends."""
    with _open_text(path) as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"{where(path, lineno + 1)}: not UTF-8 text (byte {exc.start}); is this a trace file?"
                ) from None
            except OSError as exc:
                raise UserError(f"{path}: cannot read ({exc.strerror})") from None
            if not line:
                return
            lineno += 1
            if len(line) > MAX_LINE_CHARS:
                raise UserError(
                    f"{where(path, lineno)}: a line longer than {MAX_LINE_CHARS:,} characters; no trace row is that "
                    "long: the file is corrupt or not a trace"
                )
            yield lineno, line.rstrip("\r\n")


def _first_line(path: Path) -> str | None:
    return next((line for _, line in _lines(path) if line.strip()), None)


def detect_format(path: Path, first: str | None) -> str:
    """The format from the header (CSV) or first record (JSONL): `first` is the first non-blank line."""
    if first is None:
        raise UserError(f"{path}: empty file; no requests to load")
    stripped = first.strip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except (ValueError, RecursionError):  # not JSON, absurdly nested, or an integer of thousands of digits
            record = None
        if isinstance(record, dict):
            if record.get("format") == JSONL_HEADER_FORMAT or "arrival_s" in record:
                return "jsonl"
            if {"timestamp", "input_length", "output_length"} <= set(record):
                return "mooncake"
    else:
        try:
            columns = {c.strip().lower() for c in next(csv.reader([first]))}
        except csv.Error:
            columns = set()
        if {"timestamp", "contexttokens", "generatedtokens"} <= columns:
            return "azure"
        if {"timestamp", "request tokens", "response tokens"} <= columns:
            return "burstgpt"
        if {"arrived_at", "num_prefill_tokens", "num_decode_tokens"} <= columns:
            return "splitwise"
        if {"num_prefill_tokens", "num_decode_tokens"} <= columns:
            return "lengths"
    supported = "; ".join(f"{k} ({v})" for k, v in FORMAT_HELP.items())
    raise UserError(
        f"{path}: cannot detect the trace format from its first line {excerpt(first)}; supported: {supported}; "
        "pass --format to override"
    )


# ---- field parsers -----------------------------------------------------------------------------------------


def _length(column: str, value: str | object, allow_zero: bool = False) -> int:
    if isinstance(value, bool):
        raise BadValue(column, value, "not a token count")
    if isinstance(value, int):
        number = value
    else:
        number = _as_int(column, value)
    if number < 0:
        raise BadValue(column, value, "negative token count")
    if number == 0 and not allow_zero:
        raise BadValue(column, value, "zero tokens (a request needs >= 1)")
    if number > MAX_TOKENS:
        raise BadValue(column, value, f"more than {MAX_TOKENS:,} tokens (no model has such a context)")
    return number


def _as_int(column: str, value: object) -> int:
    """`12` or an integral float (`12.0`, as some exports write counts); anything else is a bad value."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadValue(column, value, "not a number") from None
    if not as_float.is_integer():
        raise BadValue(column, value, "not a whole number of tokens")
    if abs(as_float) > MAX_TOKENS:
        raise BadValue(column, value, f"more than {MAX_TOKENS:,} tokens (no model has such a context)")
    return int(as_float)


def _seconds(column: str, value: str | object) -> float:
    if isinstance(value, bool):
        raise BadValue(column, value, "not a time")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadValue(column, value, "not a number") from None
    if not np.isfinite(number):
        raise BadValue(column, value, "not a finite time")
    return number


_DAY_ORDINALS: dict[str, int] = {}
_UNIX_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def parse_datetime_ns(value: str) -> int:
    """`YYYY-MM-DD HH:MM:SS[.f{1,9}][+HH:MM|-HH:MM|Z]` (space or T) -> integer ns since the Unix epoch, UTC.

    A hand parser (no strptime): Azure 2023 has 7 fractional digits, which strptime cannot read, and a
    per-row strptime would be the slowest part of loading. A time without offset is taken as UTC.
    """
    s = value.strip()
    if len(s) < 19 or s[10] not in " T" or s[13] != ":" or s[16] != ":":
        raise ValueError("expected YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]")
    day = s[:10]
    ordinal = _DAY_ORDINALS.get(day)
    if ordinal is None:
        ordinal = _dt.date.fromisoformat(day).toordinal() - _UNIX_EPOCH_ORDINAL
        _DAY_ORDINALS[day] = ordinal
    rest = s[19:]
    offset_s = 0
    if rest.endswith("Z"):
        rest = rest[:-1]
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
        hh, mm = rest[-5:-3], rest[-2:]
        if not (hh.isdigit() and mm.isdigit()):
            raise ValueError("bad UTC offset")
        offset_s = (int(hh) * 3600 + int(mm) * 60) * (1 if rest[-6] == "+" else -1)
        rest = rest[:-6]
    frac_ns = 0
    if rest:
        digits = rest[1:]
        if rest[0] != "." or not digits.isdigit() or len(digits) > 9:
            raise ValueError("bad fractional seconds")
        frac_ns = int(digits.ljust(9, "0"))
    hour, minute, second = s[11:13], s[14:16], s[17:19]
    if not (hour.isdigit() and minute.isdigit() and second.isdigit()):
        raise ValueError("bad time of day")
    h, m, sec = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or sec > 60:
        raise ValueError("time of day out of range")
    return (ordinal * 86400 + h * 3600 + m * 60 + sec - offset_s) * 1_000_000_000 + frac_ns


# ---- row loop ----------------------------------------------------------------------------------------------


class _Rows:
    """Collects parsed rows, turning BadValue into the file:line error or a counted skip."""

    def __init__(self, path: Path, fmt: str, skip_bad_rows: bool, stop: Stop | None = None) -> None:
        self.path, self.fmt, self.skip = path, fmt, skip_bad_rows
        self.lines: list[int] = []
        self.stats: dict[str, int] = {"rows_read": 0, "skipped_bad_rows": 0}
        self.stop = stop or Stop()
        self._t0: float | None = None
        self._in_window = 0

    def past_end(self, lineno: int, t: float | None, scale: float = 1.0) -> bool:
        """True when the reader needs no more rows: this row (arrival `t` in units of `scale` seconds, None for
        length-only data) lies beyond the window, or enough rows of the window were kept already. Call before
        keeping a row. Times are subtracted in their own unit (integer ns stay exact)."""
        stop = self.stop
        if stop.max_rows is None and stop.duration_s is None:
            return False
        rel = 0.0
        if t is not None:
            if self._t0 is None:
                self._t0 = t
            rel = (t - self._t0) * scale
        start = stop.start_s or 0.0
        done = (stop.duration_s is not None and t is not None and rel >= start + stop.duration_s) or (
            stop.max_rows is not None and self._in_window >= stop.max_rows
        )
        if done:
            self.stats["stopped_at_line"] = lineno
            return True
        if rel >= start:
            self._in_window += 1
        return False

    def bad(self, lineno: int, exc: BadValue) -> None:
        if self.skip:
            self.stats["skipped_bad_rows"] += 1
            return
        raise UserError(
            f"{where(self.path, lineno)}: column '{exc.column}': {exc.reason}: {excerpt(str(exc.value))} "
            f"({self.fmt} format); fix the row or pass --skip-bad-rows to skip bad rows"
        )

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def _csv(
    path: Path, lines: Iterator[tuple[int, str]]
) -> tuple[dict[str, int], list[str], Iterator[tuple[int, list[str]]]]:
    """Header column index (lower-cased, stripped names), header names, and (line number, fields) rows."""
    current = [0]

    def text() -> Iterator[str]:
        for lineno, line in lines:
            current[0] = lineno
            yield line

    reader = csv.reader(text())

    def next_row() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:  # e.g. a field over csv's 131,072-character limit
            raise UserError(
                f"{where(path, current[0])}: not a CSV row ({str(exc)[:80]}); the file is corrupt"
            ) from None

    header_fields = next_row()
    while header_fields is not None and not any(f.strip() for f in header_fields):
        header_fields = next_row()
    header = [c.strip() for c in header_fields or []]
    index = {name.lower(): i for i, name in enumerate(header)}

    def rows() -> Iterator[tuple[int, list[str]]]:
        while (fields_ := next_row()) is not None:
            if fields_ and any(f.strip() for f in fields_):
                yield current[0], fields_

    return index, header, rows()


def _columns(path: Path, index: dict[str, int], header: list[str], fmt: str, *names: str) -> list[int]:
    missing = [n for n in names if n.lower() not in index]
    if missing:
        raise UserError(
            f"{where(path, 1)}: {fmt} format needs column(s) {', '.join(missing)}; the header has "
            f"{', '.join(header)}; pick the right --format ({', '.join(FORMATS)})"
        )
    return [index[n.lower()] for n in names]


def _field(fields_: list[str], i: int, name: str) -> str:
    if i >= len(fields_):
        raise BadValue(name, "", f"missing (row has {len(fields_)} fields)")
    return fields_[i].strip()


def _datetime_ns(column: str, value: str) -> int:
    try:
        return parse_datetime_ns(value)
    except ValueError as exc:
        raise BadValue(column, value, f"not a datetime ({exc})") from None


def _parse_columns(
    path: Path,
    lines: Iterator[tuple[int, str]],
    rows: _Rows,
    fmt: str,
    parsers: Sequence[tuple[str, Callable[[str, str], Any], str]],
    seconds: Callable[[list[Any]], float | None] = lambda values: None,
    scale: float = 1.0,
) -> list[Any]:
    """The named columns of every data row, each through its parser (name, raw) -> value, each kept in a compact
    array of its typecode ('q' int64, 'd' float64). A bad value fails the row (error or counted skip, by `rows`).
    `seconds(values)`: a row's arrival in seconds, for the stop window."""
    from array import array

    index, header, it = _csv(path, lines)
    cis = _columns(path, index, header, fmt, *(name for name, _, _ in parsers))
    specs = [(name, parse, ci) for (name, parse, _), ci in zip(parsers, cis, strict=True)]
    columns: list[Any] = [array(code) for _, _, code in parsers]
    for lineno, f in it:
        rows.stats["rows_read"] += 1
        try:
            values = [parse(name, _field(f, ci, name)) for name, parse, ci in specs]
        except BadValue as exc:
            rows.bad(lineno, exc)
            continue
        if rows.past_end(lineno, seconds(values), scale):
            break
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        rows.lines.append(lineno)
    return columns


def _relative_seconds(ts: Sequence[float]) -> np.ndarray:
    arr = np.asarray(ts, dtype=np.float64)
    return arr - arr.min() if len(arr) else arr


def _read_azure(path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, **_: Any) -> dict[str, Any]:
    ts, prompt, output = _parse_columns(
        path,
        lines,
        rows,
        "azure",
        [("TIMESTAMP", _datetime_ns, "q"), ("ContextTokens", _length, "q"), ("GeneratedTokens", _length, "q")],
        lambda values: values[0],
        1e-9,
    )
    arr = (
        np.frombuffer(ts, dtype=np.int64) if len(ts) else np.zeros(0, dtype=np.int64)
    )  # integer nanoseconds: exact differences (4.314579 s, not 4.3145789...)
    arrival = (arr - arr.min()).astype(np.float64) / 1e9 if len(arr) else np.zeros(0)
    return {"arrival_s": arrival, "prompt_tokens": prompt, "output_tokens": output}


def _read_burstgpt(
    path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, model_filter: str | None = None, **_: Any
) -> dict[str, Any]:
    index, header, it = _csv(path, lines)
    names = ("Timestamp", "Request tokens", "Response tokens")
    ci = _columns(path, index, header, "burstgpt", *names)
    mi = index.get("model")
    if model_filter is not None and mi is None:
        raise UserError(f"{where(path, 1)}: a Model filter was given but the header has no Model column")
    wanted = None if model_filter is None else model_filter.strip().lower()
    ts: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    for lineno, f in it:
        rows.stats["rows_read"] += 1
        try:
            t = _seconds("Timestamp", _field(f, ci[0], "Timestamp"))
            p = _length("Request tokens", _field(f, ci[1], "Request tokens"), allow_zero=True)
            o = _length("Response tokens", _field(f, ci[2], "Response tokens"), allow_zero=True)
            m = _field(f, mi, "Model") if mi is not None else ""
        except BadValue as exc:
            rows.bad(lineno, exc)
            continue
        if wanted is not None and m.lower() != wanted:
            rows.count("filtered_model")
            continue
        if o == 0:  # BurstGPT logs failed requests with 0 response tokens
            rows.count("dropped_failed")
            continue
        if p == 0:
            rows.count("dropped_zero_prompt")
            continue
        if rows.past_end(lineno, t):
            break
        ts.append(t)
        prompt.append(p)
        output.append(o)
        rows.lines.append(lineno)
    return {"arrival_s": _relative_seconds(ts), "prompt_tokens": prompt, "output_tokens": output}


def _read_lengths(path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, **_: Any) -> dict[str, Any]:
    prompt, output = _parse_columns(
        path, lines, rows, "lengths", [("num_prefill_tokens", _length, "q"), ("num_decode_tokens", _length, "q")]
    )
    return {"arrival_s": None, "prompt_tokens": prompt, "output_tokens": output}


def _read_splitwise(path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, **_: Any) -> dict[str, Any]:
    ts, prompt, output = _parse_columns(
        path,
        lines,
        rows,
        "splitwise",
        [("arrived_at", _seconds, "d"), ("num_prefill_tokens", _length, "q"), ("num_decode_tokens", _length, "q")],
        lambda values: values[0],
    )
    return {"arrival_s": _relative_seconds(ts), "prompt_tokens": prompt, "output_tokens": output}


def _json_records(lines: Iterator[tuple[int, str]], rows: _Rows) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in lines:
        if not line.strip():
            continue
        rows.stats["rows_read"] += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.bad(lineno, BadValue("<line>", line.strip(), f"not valid JSON ({exc.msg} at char {exc.pos})"))
            continue
        except RecursionError:
            rows.bad(lineno, BadValue("<line>", line.strip(), "JSON nested too deeply"))
            continue
        except ValueError as exc:  # an integer of thousands of digits
            rows.bad(lineno, BadValue("<line>", line.strip(), f"not valid JSON ({str(exc)[:60]})"))
            continue
        if not isinstance(record, dict):
            rows.bad(lineno, BadValue("<line>", line.strip(), "not a JSON object"))
            continue
        yield lineno, record


def _get(record: dict[str, Any], key: str) -> Any:
    if key not in record:
        raise BadValue(key, "<missing>", "required field missing")
    return record[key]


def _read_mooncake(path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, **_: Any) -> dict[str, Any]:
    ts: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    prefix: list[tuple[int, ...] | None] = []
    for lineno, rec in _json_records(lines, rows):
        try:
            t = _seconds("timestamp", _get(rec, "timestamp")) / 1000.0  # milliseconds
            p = _length("input_length", _get(rec, "input_length"))
            o = _length("output_length", _get(rec, "output_length"))
            ids = rec.get("hash_ids")
            if ids is not None:
                if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
                    raise BadValue("hash_ids", ids, "not a list of integers")
                ids = tuple(ids)
        except BadValue as exc:
            rows.bad(lineno, exc)
            continue
        if rows.past_end(lineno, t):
            break
        ts.append(t)
        prompt.append(p)
        output.append(o)
        prefix.append(ids)
        rows.lines.append(lineno)
    return {
        "arrival_s": _relative_seconds(ts),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "prefix_block_ids": prefix,
        "prefix_block_size": MOONCAKE_BLOCK_TOKENS,
    }


def _read_jsonl(path: Path, lines: Iterator[tuple[int, str]], rows: _Rows, **_: Any) -> dict[str, Any]:
    ts: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    max_tokens: list[int] = []
    priority: list[int] = []
    prefix: list[tuple[int, ...] | None] = []
    ids: list[str] = []
    seen: set[str] = set()
    meta: dict[str, Any] = {}
    allowed = set(JSONL_FIELDS)
    for lineno, rec in _json_records(lines, rows):
        if rec.get("format") == JSONL_HEADER_FORMAT:
            if ts or meta:
                rows.bad(lineno, BadValue("format", rec["format"], "header record must be the first line"))
                continue
            rows.stats["rows_read"] -= 1
            version = rec.get("version", 1)
            if version != 1:
                raise UserError(
                    f"{where(path, lineno)}: inferneo-jsonl version {version!r} not supported (this reads 1)"
                )
            meta = {k: rec[k] for k in ("name", "description", "source", "prefix_block_size") if k in rec}
            continue
        try:
            unknown = sorted(set(rec) - allowed)
            if unknown:
                raise BadValue(unknown[0], rec[unknown[0]], f"unknown field (allowed: {', '.join(JSONL_FIELDS)})")
            t = _seconds("arrival_s", _get(rec, "arrival_s"))
            if t < 0:
                raise BadValue("arrival_s", rec["arrival_s"], "negative arrival time")
            p = _length("prompt_tokens", _get(rec, "prompt_tokens"))
            o = _length("output_tokens", _get(rec, "output_tokens"))
            mx = o if rec.get("max_tokens") is None else _length("max_tokens", rec["max_tokens"])
            if mx < o:
                raise BadValue("max_tokens", mx, f"smaller than output_tokens {o}")
            pr = rec.get("priority", 5)
            if isinstance(pr, bool) or not isinstance(pr, int) or not MIN_PRIORITY <= pr <= MAX_PRIORITY:
                raise BadValue("priority", pr, f"not an integer in {MIN_PRIORITY}..{MAX_PRIORITY}")
            pb = rec.get("prefix_block_ids")
            if pb is not None:
                if not isinstance(pb, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in pb):
                    raise BadValue("prefix_block_ids", pb, "not a list of integers")
                pb = tuple(pb)
            rid = str(rec.get("request_id", f"r{len(ids)}"))
            if rid in seen:
                raise BadValue("request_id", rid, "duplicate request_id")
        except BadValue as exc:
            rows.bad(lineno, exc)
            continue
        if rows.past_end(lineno, t):
            break
        seen.add(rid)
        ts.append(t)
        prompt.append(p)
        output.append(o)
        max_tokens.append(mx)
        priority.append(pr)
        prefix.append(pb)
        ids.append(rid)
        rows.lines.append(lineno)
    has_prefix = any(p is not None for p in prefix)
    return {
        "arrival_s": np.asarray(ts, dtype=np.float64),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "max_tokens": max_tokens,
        "priority": priority,
        "prefix_block_ids": prefix if has_prefix else None,
        "request_ids": ids,
        "meta": meta,
        "prefix_block_size": meta.get("prefix_block_size"),
    }


_READERS: dict[str, Callable[..., dict[str, Any]]] = {
    "azure": _read_azure,
    "burstgpt": _read_burstgpt,
    "mooncake": _read_mooncake,
    "lengths": _read_lengths,
    "splitwise": _read_splitwise,
    "jsonl": _read_jsonl,
}


def read_trace(
    path: str | Path,
    format: str | None = None,
    *,
    skip_bad_rows: bool = False,
    model_filter: str | None = None,
    on_unsorted: str = "sort",
    stop: Stop | None = None,
) -> TraceData:
    """Read a trace file into columns. `format` None = detect; `model_filter` keeps BurstGPT rows of one Model;
    `stop`: read no further than the rows these limits keep (see the module docstring)."""
    path = Path(path)
    first = _first_line(path)
    fmt = normalize_format(format) if format else detect_format(path, first)
    if model_filter is not None and fmt != "burstgpt":
        raise UserError(f"{path}: a model filter applies to BurstGPT traces only (this is {fmt})")
    if on_unsorted not in ("sort", "error"):
        raise UserError(f"on_unsorted must be 'sort' or 'error', got {on_unsorted!r}")
    if first is None:
        raise UserError(f"{path}: empty file; no requests to load")
    rows = _Rows(path, fmt, skip_bad_rows, stop)
    cols = _READERS[fmt](path, _lines(path), rows, model_filter=model_filter)
    n = len(cols["prompt_tokens"])
    if n == 0:
        detail = ", ".join(f"{k} {v}" for k, v in rows.stats.items() if v)
        raise UserError(f"{path}: no requests left to replay ({detail or 'no data rows'})")
    data = TraceData(
        format=fmt,
        prompt_tokens=np.asarray(cols["prompt_tokens"], dtype=np.int64),
        output_tokens=np.asarray(cols["output_tokens"], dtype=np.int64),
        arrival_s=cols.get("arrival_s"),
        max_tokens=None if cols.get("max_tokens") is None else np.asarray(cols["max_tokens"], dtype=np.int64),
        priority=None if cols.get("priority") is None else np.asarray(cols["priority"], dtype=np.int64),
        prefix_block_ids=cols.get("prefix_block_ids"),
        request_ids=cols.get("request_ids"),
        stats=rows.stats,
        meta=cols.get("meta") or {},
        prefix_block_size=cols.get("prefix_block_size"),
    )
    rows.stats["reordered"] = 0
    if data.arrival_s is not None:
        _sort(data, path, rows.lines, on_unsorted)
    return data


def _sort(data: TraceData, path: Path, lines: list[int], on_unsorted: str) -> None:
    arrival = data.arrival_s
    assert arrival is not None
    backwards = np.flatnonzero(arrival[1:] < np.maximum.accumulate(arrival)[:-1]) + 1
    if backwards.size == 0:
        return
    if on_unsorted == "error":
        i = int(backwards[0])
        raise UserError(
            f"{where(path, lines[i])}: timestamp goes backwards (arrival {arrival[i]:.6f} s after "
            f"{arrival[:i].max():.6f} s); sort the file by time or allow the repair (on_unsorted: sort)"
        )
    data.stats["reordered"] = int(backwards.size)
    order = np.argsort(arrival, kind="stable")
    data.arrival_s = arrival[order]
    data.prompt_tokens = data.prompt_tokens[order]
    data.output_tokens = data.output_tokens[order]
    if data.max_tokens is not None:
        data.max_tokens = data.max_tokens[order]
    if data.priority is not None:
        data.priority = data.priority[order]
    idx = order.tolist()
    if data.prefix_block_ids is not None:
        data.prefix_block_ids = [data.prefix_block_ids[i] for i in idx]
    if data.request_ids is not None:
        data.request_ids = [data.request_ids[i] for i in idx]
