"""Result entries: one folder per (run, strategy[, trial or sweep point]) that copies as a unit.

    results/<run-id>/adaptive/          (or adaptive-trial2/, ...)
        result.json       metadata, the vLLM-compatible summary, telemetry, step aggregates and events
        requests.parquet  one row per request (token gaps as integer nanoseconds), zstd
        steps.parquet     one row per engine step, when kept (see steplog: runs of up to 250,000 steps)

result.json's top-level keys are a contract that later commands and users' scripts rely on; `summary` uses
vLLM's flat key names (`completed`, `request_throughput`, `mean_ttft_ms`, `p99_itl_ms`, ...) so that `jq`
and tools written for `vllm bench serve` output read it. The Parquet tables are read by pandas, polars and
DuckDB directly (result_tables). Schema 1 (one JSON file holding everything) still loads. Bump
SCHEMA_VERSION on any incompatible change.

Writes are atomic: the entry is written into a hidden temporary folder beside it and renamed into place, so a
crash never leaves half a result. `load_summary` reads result.json only (what compare's tables and check
need); `load` reads the tables too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from inferneo_bench import __version__, validation
from inferneo_bench.errors import ResultFileError
from inferneo_bench.fileio import atomic_directory
from inferneo_bench.steplog import StepLog, StepStats, as_steplog

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RESULT_FILE = "result.json"
REQUESTS_FILE = "requests.parquet"
STEPS_FILE = "steps.parquet"
TOOL_NAME = "inferneo-bench"
TOP_LEVEL_KEYS = (
    "schema_version",
    "tool",
    "run",
    "environment",
    "model",
    "workload",
    "strategy",
    "summary",
    "requests",
    "steps",
    "telemetry",
)
RUN_KEYS = ("id", "started_at", "finished_at", "command", "seed", "engine", "status", "validity")
RUN_STATUSES = ("completed", "interrupted", "failed")
REQUEST_STATUSES = ("completed", "rejected", "cancelled", "failed")


@dataclass
class RequestRecord:
    """One request of the workload, whatever became of it. Times are seconds from the run's start."""

    request_id: str
    arrival_s: float  # scheduled arrival (from the workload)
    prompt_tokens: int
    output_tokens: int  # tokens actually generated
    target_output_tokens: int  # what the workload asked for (the engine stops there, as at EOS)
    max_tokens: int  # what the scheduler saw
    priority: int
    status: str  # one of REQUEST_STATUSES
    reason: str | None = None  # why rejected / cancelled / failed
    enqueued_s: float | None = None  # when the harness handed it to the scheduler
    arrival_lag_s: float | None = None  # enqueue lateness not explained by a step in progress (see runner)
    scheduled_s: float | None = None  # first time the scheduler put it in a step
    first_token_s: float | None = None
    finish_s: float | None = None
    itl_s: list[float] = field(default_factory=list)  # gaps between consecutive output tokens
    preemptions: int = 0
    warmup: bool = False  # excluded from metrics
    # Remote runs (`run --target`) only; these keep their defaults in-process. See docs/serving.md.
    sent_prompt_tokens: int | None = None  # the workload's prompt length as sent; prompt_tokens = the server's count
    chunk_tokens: list[int] = field(
        default_factory=list
    )  # tokens per streamed chunk: first chunk, then one per ITL gap
    server_ttft_s: float | None = None  # the server's own engine-side TTFT, when it reports one (`serve` does)
    client_queue_s: float | None = None  # --max-concurrency: wait for a slot (arrival_s is when it got one)
    usage_mismatch: str | None = None  # the server counted other token numbers than the workload asked for


@dataclass
class StepRecord:
    index: int
    start_s: float
    batch_id: int | None
    batch_size: int  # sequences in the step, idle slots included
    new_tokens: int  # useful tokens computed
    padded_tokens: int  # padding and idle-slot tokens computed
    step_ms: float
    scheduler_us: float  # time the scheduler core took to plan this step
    queue_depth: int  # requests waiting when the step was planned
    idle_slots: int = 0  # finished members of a static batch still occupying (and computing in) their slot
    events: list[str] = field(default_factory=list)
    closed_by: str | None = None  # a static batch's first step: the limit that closed the batch (StepPlan)


STEP_FIELDS = tuple(f.name for f in fields(StepRecord))


@dataclass
class RunInfo:
    id: str
    started_at: str  # ISO 8601, UTC
    finished_at: str | None
    command: str
    seed: int
    engine: str  # "torch" or "sim"
    status: str  # one of RUN_STATUSES
    validity: dict[str, Any] = field(default_factory=dict)  # {"valid": bool, "failed": [...], "checks": {...}}
    trial: int | None = None  # 1-based trial number with --repeat, else None
    label: str | None = None  # free-form label (e.g. a config variant) shown by compare
    # a sweep point (`inferneo-bench sweep`): {id, rate (offered req/s; None at the saturation point), phase,
    # attainment_target, precision, base_rate, base_workload_hash}; None for a plain run
    sweep: dict[str, Any] | None = None


@dataclass
class RunResult:
    run: RunInfo
    environment: dict[str, Any]
    model: dict[str, Any]
    workload: dict[str, Any]
    strategy: dict[str, Any]  # {"name": ..., "config": {...}}
    summary: dict[str, Any]
    requests: list[RequestRecord] = field(default_factory=list)
    steps: StepLog | list[StepRecord] = field(default_factory=list)  # a StepLog from replay and load
    telemetry: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    tool: dict[str, str] = field(default_factory=lambda: {"name": TOOL_NAME, "version": __version__})
    # where it was loaded from or saved to (an entry folder, or a schema-1 file), and whether `requests` and
    # the step rows are in memory (False after load_summary: read them with load(result.source))
    source: Path | None = field(default=None, compare=False, repr=False)
    records_loaded: bool = field(default=True, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """result.json's content: everything but the bulk tables, which it names. A shallow conversion:
        per-request and per-step data never pass through dataclasses.asdict's deep copy."""
        log = as_steplog(self.steps)
        requests = {
            "file": REQUESTS_FILE,
            "count": len(self.requests) if self.records_loaded else self.summary.get("total_requests"),
            "columns": [f.name if f.name != "itl_s" else "itl_ns" for f in fields(RequestRecord)],
        }
        steps = {
            "num_steps": log.num_steps,
            "rows": STEPS_FILE if log.rows_kept else None,
            "keep_limit": log.keep,
            "events": [[i, t, text] for i, t, text in log.events],
            "aggregates": log.stats().to_dict(),
        }
        data = {
            "schema_version": SCHEMA_VERSION,
            "tool": self.tool,
            "run": asdict(self.run),
            "environment": self.environment,
            "model": self.model,
            "workload": self.workload,
            "strategy": self.strategy,
            "summary": self.summary,
            "requests": requests,
            "steps": steps,
            "telemetry": self.telemetry,
        }
        return {key: data[key] for key in TOP_LEVEL_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object = "<dict>", records: bool = True) -> RunResult:
        """From a schema-1 document (everything inline) or a schema-2 result.json (then `records` is ignored:
        the tables are read by `load`)."""
        validate(data, source)
        check_content(data, source)
        upgrade_summary(data["summary"])
        try:
            v1 = data["schema_version"] == 1
            requests = [_build(RequestRecord, r) for r in data["requests"]] if v1 and records else []
            steps = _v1_steps(data["steps"]) if v1 else _aggregated_steps(data["steps"])
            return cls(
                run=_build(RunInfo, data["run"]),
                environment=data["environment"],
                model=data["model"],
                workload=data["workload"],
                strategy=data["strategy"],
                summary=data["summary"],
                requests=requests,
                steps=steps,
                telemetry=data["telemetry"],
                schema_version=data["schema_version"],
                tool=data["tool"],
                records_loaded=v1 and records,
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ResultFileError(f"{source}: malformed record ({exc}); re-run to regenerate the file") from None


def _v1_steps(data: Any) -> StepLog:
    """Schema-1 steps, from the table form {"fields": [...], "rows": [[...], ...]} straight into columns (no
    object per step: a schema-1 file of an hour-long trace holds millions), or a plain list of step objects."""
    if not isinstance(data, dict):
        return StepLog.from_records(_build(StepRecord, s) for s in data)
    names, rows = list(data["fields"]), data["rows"]
    if not rows:
        return StepLog.from_columns({}, [])
    cols = dict(zip(names, zip(*rows, strict=True), strict=True))
    arrays = {"batch_id": np.asarray([-1 if b is None else b for b in cols["batch_id"]], dtype=np.int64)}
    for name in ("start_s", "step_ms", "scheduler_us"):
        arrays[name] = np.asarray(cols[name], dtype=np.float64)
    for name in ("batch_size", "new_tokens", "padded_tokens", "queue_depth", "idle_slots"):
        arrays[name] = np.asarray(cols.get(name, (0,) * len(rows)), dtype=np.int64)
    if "closed_by" in cols:  # written by issue 12's schema-1 files
        from inferneo_bench.steplog import CLOSE_CODE

        arrays["closed_by"] = np.asarray([CLOSE_CODE.get(c, 0) for c in cols["closed_by"]], dtype=np.int8)
    start = cols["start_s"]
    events = [(i, start[i], str(text)) for i, texts in enumerate(cols.get("events", ())) if texts for text in texts]
    return StepLog.from_columns(arrays, events)


def _events(steps: dict[str, Any]) -> list[tuple[int, float, str]]:
    return [(int(i), float(t), str(text)) for i, t, text in steps.get("events") or []]


def _aggregated_steps(steps: dict[str, Any]) -> StepLog:
    """A schema-2 result's steps without their rows: the aggregates and the events."""
    return StepLog.from_columns({}, _events(steps), StepStats.from_dict(steps["aggregates"]))


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def validate(data: Any, source: object) -> None:
    """Fail with one line naming the file and the first thing wrong with it."""
    if not isinstance(data, dict):
        raise ResultFileError(f"{source}: not a result file (top level is not a JSON object)")
    version = data.get("schema_version")
    if version is None:
        raise ResultFileError(f"{source}: missing key 'schema_version'; not an inferneo-bench result file")
    if version not in READABLE_VERSIONS:
        raise ResultFileError(
            f"{source}: schema_version {version!r} is not supported (this tool reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}); re-run with this version of inferneo-bench"
        )
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise ResultFileError(f"{source}: missing key '{key}'; the file is truncated or was edited")
    for key in RUN_KEYS:
        if key not in data["run"]:
            raise ResultFileError(f"{source}: missing key 'run.{key}'; the file is truncated or was edited")
    if data["run"]["status"] not in RUN_STATUSES:
        raise ResultFileError(f"{source}: run.status {data['run']['status']!r} is not one of {RUN_STATUSES}")
    if version == 2 and not (isinstance(data["steps"], dict) and "aggregates" in data["steps"]):
        raise ResultFileError(f"{source}: missing key 'steps.aggregates'; the file is truncated or was edited")


# ---- writing ----------------------------------------------------------------------------------------------
def entry_path(path: str | os.PathLike[str]) -> Path:
    """The entry folder a result is saved as. `path` names the folder; a name ending in .json (the schema-1
    form, e.g. results/<run>/adaptive.json) means the folder without that suffix."""
    path = Path(path)
    if path.name == RESULT_FILE:
        return path.parent
    return path.with_suffix("") if path.suffix == ".json" else path


_RUN_CHECKS = validation.field_checks(RunInfo)
_REQUEST_CHECKS = validation.field_checks(RequestRecord)
_STEP_CHECKS = validation.field_checks(StepRecord)
_REQUEST_REQUIRED = tuple(
    f.name for f in fields(RequestRecord) if f.default is MISSING and f.default_factory is MISSING
)


def check_content(data: dict[str, Any], source: object) -> None:
    """Types of the run info, every summary figure and, in a schema-1 file, every record (the validation
    layer's rules for result files): a hand-edited or corrupt file fails here with one line naming the field,
    never later inside a metric or a test."""
    err = ResultFileError
    validation.check_record(data["run"], _RUN_CHECKS, f"{source}: run", err)
    for key in ("environment", "model", "workload", "strategy", "telemetry"):
        if not isinstance(data[key], dict):
            raise err(f"{source}: '{key}' is not an object; the file is corrupt or was edited")
    validation.check_mapping_numbers(data["summary"], f"{source}: summary", err)
    if data["schema_version"] != 1:  # schema 2: the records are typed Parquet tables (read by `load`)
        for key in ("requests", "steps"):
            if not isinstance(data[key], dict):
                raise err(f"{source}: '{key}' is not an object; the file is corrupt or was edited")
        return
    requests = data["requests"]
    if not isinstance(requests, list):
        raise err(f"{source}: 'requests' is not a list; the file is corrupt or was edited")
    for i, record in enumerate(requests):
        where = f"{source}: requests[{i}]"
        validation.check_record(record, _REQUEST_CHECKS, where, err, _REQUEST_REQUIRED)
        if record["status"] not in REQUEST_STATUSES:
            raise err(f"{where}.status: {validation.excerpt(record['status'])} is not one of {REQUEST_STATUSES}")
    steps = data["steps"]
    rows = steps.get("rows") if isinstance(steps, dict) else steps
    names = steps.get("fields") if isinstance(steps, dict) else None
    if not isinstance(rows, list) or (names is not None and not isinstance(names, list)):
        raise err(f"{source}: 'steps' is not a table of rows; the file is corrupt or was edited")
    for i, row in enumerate(rows):
        if names is not None:
            if not isinstance(row, list) or len(row) != len(names):
                raise err(f"{source}: steps row {i} does not have {len(names)} fields; the file was edited")
            row = dict(zip(names, row, strict=True))
        validation.check_record(row, _STEP_CHECKS, f"{source}: steps[{i}]", err)


def upgrade_summary(summary: dict[str, Any]) -> None:
    """Files written before `failed` took vLLM's meaning (every unsuccessful request) counted only engine
    failures there and had no `errored`: convert them in place so old and new files compare."""
    if "errored" not in summary and "failed" in summary:
        errored = summary["failed"] or 0
        summary["errored"] = errored
        summary["failed"] = errored + (summary.get("rejected") or 0) + (summary.get("cancelled") or 0)


def save(result: RunResult, path: str | os.PathLike[str]) -> Path:
    """Write `result` as an entry folder (see the module docstring), atomically; return the folder. The
    records are written as they are (no copy); after this the caller may drop them (`release_records`)."""
    entry = entry_path(path)
    from inferneo_bench import result_tables

    log = as_steplog(result.steps)
    if entry.exists() and not entry.is_dir():
        raise ResultFileError(f"{entry}: a file is in the way of the result folder; move it or choose another --out")
    with atomic_directory(entry) as tmp:
        if result.records_loaded:
            result_tables.write_requests(result.requests, tmp / REQUESTS_FILE)
            if log.rows_kept:
                result_tables.write_steps(log, tmp / STEPS_FILE)
        else:  # a summary-only result (load_summary) saved again: its tables are still on disk
            _copy_tables(result, tmp, log.rows_kept)
        meta = result.to_dict()
        text = json.dumps(meta, separators=(",", ":"), allow_nan=False, default=_json_default)  # C encoder
        (tmp / RESULT_FILE).write_text(text + "\n", encoding="utf-8")
    result.source = entry
    return entry


def _copy_tables(result: RunResult, tmp: Path, steps: bool) -> None:
    source = result.source
    if source is None or not source.is_dir():
        raise ResultFileError(
            "cannot save a summary-only result without its tables; load it with results.load() to save it"
        )
    for name in (REQUESTS_FILE, STEPS_FILE) if steps else (REQUESTS_FILE,):
        shutil.copy2(source / name, tmp / name)


def release_records(result: RunResult) -> RunResult:
    """Drop the per-request and per-step records of a saved result (they are in its folder), keeping the
    metadata, summary and step aggregates: a session or sweep holds one point's records at a time."""
    if result.source is None:
        raise ValueError("release_records: save the result first")
    log = as_steplog(result.steps)
    result.requests = []
    result.steps = StepLog.from_columns({}, list(log.events), log.stats())
    result.records_loaded = False
    return result


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a result file")


# ---- reading ----------------------------------------------------------------------------------------------
def _locate(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """(the JSON file to read, the entry folder or None for a schema-1 file)."""
    path = Path(path)
    if path.is_dir():
        meta = path / RESULT_FILE
        if not meta.is_file():
            raise ResultFileError(
                f"{path}: folder holds no {RESULT_FILE}; not a result entry (results/<run-id>/<name>/)"
            )
        return meta, path
    if not path.is_file():
        raise ResultFileError(f"{path}: no such result file; check the path (results are under results/<run-id>/)")
    return path, (path.parent if path.name == RESULT_FILE else None)


def _read_json(path: Path) -> Any:
    """Strict JSON (validation.load_json: no NaN/Infinity, no absurd nesting), after checking that its parsed
    form fits in memory (a schema-1 file holds every record: ~4.4x its size once parsed)."""
    validation.check_file_size(
        path, validation.MAX_JSON_BYTES_FACTOR, "result file", "compare fewer or smaller results on a larger machine"
    )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read ({exc.strerror})") from None
    return validation.load_json(raw, str(path), ResultFileError, "JSON", "re-run to regenerate it")


def load_summary(path: str | os.PathLike[str]) -> RunResult:
    """Metadata, summary, telemetry and step aggregates, without the per-request and per-step tables
    (`records_loaded` False): what compare's tables and check need, in milliseconds for any run length.
    A schema-1 file is read only up to its records when its keys are in the order `save` wrote them (a
    gigabyte-sized file costs its first megabyte), else parsed whole and its records dropped."""
    meta, entry = _locate(path)
    data = _v1_head(meta) if entry is None else None
    if data is None:
        data = _read_json(meta)
    result = RunResult.from_dict(data, source=meta, records=False)
    result.source = entry if entry is not None else meta
    return result


V1_HEAD_CHUNK = 1 << 20
V1_HEAD_LIMIT = 64 << 20


def _v1_head(path: Path) -> dict[str, Any] | None:
    """A schema-1 document without its records: the keys before `"requests"` (run, environment, model,
    workload, strategy, summary) and the `telemetry` that ends it, with empty records; None when either part is
    not found or does not parse (the caller then parses the whole file)."""
    head = b""
    try:
        with path.open("rb") as fh:
            while len(head) < V1_HEAD_LIMIT:
                chunk = fh.read(V1_HEAD_CHUNK)
                if not chunk:
                    return None
                head += chunk
                cut = head.find(b',"requests":')
                if cut >= 0:
                    data = validation.load_json(head[:cut] + b"}", str(path), ResultFileError, "JSON")
                    if not (isinstance(data, dict) and data.get("schema_version") == 1 and "summary" in data):
                        return None
                    telemetry = _v1_tail(fh, path)
                    if telemetry is None:
                        return None
                    data.update(requests=[], steps={"fields": [], "rows": []}, telemetry=telemetry)
                    return data
    except (OSError, ResultFileError):
        return None
    return None


def _v1_tail(fh: Any, path: Path) -> dict[str, Any] | None:
    """The `telemetry` object that ends a schema-1 document, read from the end of the file."""
    size = fh.seek(0, os.SEEK_END)
    span = V1_HEAD_CHUNK
    while True:
        start = max(0, size - span)
        fh.seek(start)
        tail = fh.read(size - start)
        cut = tail.rfind(b',"telemetry":')
        if cut >= 0:
            data = validation.load_json(b"{" + tail[cut + 1 :], str(path), ResultFileError, "JSON")
            return data.get("telemetry") if isinstance(data, dict) else None
        if start == 0 or span >= V1_HEAD_LIMIT:
            return None
        span *= 4


def load(path: str | os.PathLike[str]) -> RunResult:
    """A whole result: an entry folder (or its result.json), or a schema-1 JSON file."""
    meta, entry = _locate(path)
    data = _read_json(meta)
    result = RunResult.from_dict(data, source=meta)
    result.source = entry if entry is not None else meta
    if data["schema_version"] == 1:
        return result
    assert entry is not None
    from inferneo_bench import result_tables

    try:
        result.requests = result_tables.read_requests(entry / REQUESTS_FILE)
        rows = data["steps"].get("rows")
        if rows:
            result.steps = result_tables.read_steps(entry / rows, _events(data["steps"]))
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors derive from these
        raise ResultFileError(f"{entry}: unreadable table ({exc}); re-run to regenerate the result") from None
    result.records_loaded = True
    return result


def records_of(result: RunResult) -> RunResult:
    """`result` itself when its records are in memory, else the whole result loaded from its source."""
    if result.records_loaded:
        return result
    if result.source is None:
        raise ResultFileError("result has no records and no source to load them from")
    return load(result.source)


def request_fields(result: RunResult, names: list[str]) -> list[tuple[Any, ...]]:
    """The chosen fields of every request, one tuple per request in record order: from the records in memory,
    else from the result's requests table, reading only those columns (a summary-only result of an hour-long
    run need not load millions of token gaps to count its rejections)."""
    if not result.records_loaded and result.source is not None and result.source.is_dir():
        import pyarrow.parquet as pq

        table = pq.read_table(result.source / REQUESTS_FILE, columns=names)
        return list(zip(*(table.column(n).to_pylist() for n in names), strict=True))
    full = records_of(result)
    return [tuple(getattr(r, n) for n in names) for r in full.requests]


# ---- discovery --------------------------------------------------------------------------------------------
_V1_HEAD = re.compile(
    r'^\s*\{\s*"schema_version"\s*:\s*1\s*,\s*"tool"\s*:\s*\{[^{}]*"name"\s*:\s*"inferneo-bench"[^{}]*\}\s*,\s*"run"\s*:'
)


def is_result(path: str | os.PathLike[str]) -> bool:
    """True for a result entry (a folder whose result.json is an inferneo-bench result of schema 2) or a
    schema-1 result file. Other JSON files (a sweep's sweep.json, plot settings, ...) are not results."""
    path = Path(path)
    if path.is_dir():
        meta = path / RESULT_FILE
        if not meta.is_file():
            return False
        try:
            with meta.open(encoding="utf-8") as fh:
                head = fh.read(4096)
        except (OSError, UnicodeDecodeError):
            return False
        return bool(re.search(r'"tool"\s*:\s*\{[^{}]*"name"\s*:\s*"inferneo-bench"', head)) and bool(
            re.search(r'"schema_version"\s*:\s*2\b', head)
        )
    if path.is_file() and path.suffix == ".json" and path.name != RESULT_FILE:
        try:
            with path.open(encoding="utf-8") as fh:
                return bool(_V1_HEAD.match(fh.read(1024)))
        except (OSError, UnicodeDecodeError):
            return False
    return False


def find_result_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders into the results under them (entry folders and schema-1 files, sorted); a path that is
    itself an entry or a file passes through (an unrecognised file too: loading it then says what is wrong)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and is_result(p):
            found.append(p)
        elif p.is_dir():
            hits = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                here = Path(dirpath)
                for d in list(dirnames):
                    if is_result(here / d):
                        hits.append(here / d)
                        dirnames.remove(d)  # an entry's own files are not results
                hits.extend(here / f for f in filenames if not f.startswith(".") and is_result(here / f))
            if not hits:
                if any(p.rglob("*.journal.jsonl")):
                    raise ResultFileError(
                        f"{p}: folder holds no results, only the journal of a stopped run; rebuild the results "
                        f"with `inferneo-bench recover {p}`"
                    )
                raise ResultFileError(f"{p}: folder holds no inferneo-bench results")
            found.extend(sorted(hits))
        elif p.is_file():
            found.append(p.parent if p.name == RESULT_FILE else p)
        else:
            raise ResultFileError(f"{p}: no such file or folder")
    return found
