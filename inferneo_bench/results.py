"""The result file: one JSON document per (run, strategy[, trial]).

Its top-level keys are a contract that later commands and users' scripts rely on; `summary` uses vLLM's
flat key names (`completed`, `request_throughput`, `mean_ttft_ms`, `p99_itl_ms`, ...) so that tools written
for `vllm bench serve` output can read it. Bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from inferneo_bench import __version__
from inferneo_bench.errors import ResultFileError
from inferneo_bench.fileio import atomic_writer

SCHEMA_VERSION = 1
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


@dataclass
class RunResult:
    run: RunInfo
    environment: dict[str, Any]
    model: dict[str, Any]
    workload: dict[str, Any]
    strategy: dict[str, Any]  # {"name": ..., "config": {...}}
    summary: dict[str, Any]
    requests: list[RequestRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    tool: dict[str, str] = field(default_factory=lambda: {"name": "inferneo-bench", "version": __version__})

    def to_dict(self) -> dict[str, Any]:
        """The file's content. `steps` is stored as a table, {"fields": [...], "rows": [[...], ...]}: an engine
        runs thousands of steps and repeating every key name would triple the file."""
        data = asdict(self)
        data["steps"] = {
            "fields": list(STEP_FIELDS),
            "rows": [[step[f] for f in STEP_FIELDS] for step in data["steps"]],
        }
        return {key: data[key] for key in TOP_LEVEL_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object = "<dict>") -> RunResult:
        validate(data, source)
        try:
            return cls(
                run=_build(RunInfo, data["run"]),
                environment=data["environment"],
                model=data["model"],
                workload=data["workload"],
                strategy=data["strategy"],
                summary=data["summary"],
                requests=[_build(RequestRecord, r) for r in data["requests"]],
                steps=_steps(data["steps"]),
                telemetry=data["telemetry"],
                schema_version=data["schema_version"],
                tool=data["tool"],
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ResultFileError(f"{source}: malformed record ({exc}); re-run to regenerate the file") from None


def _steps(data: Any) -> list[StepRecord]:
    """Steps from the table form (or a plain list of step objects, which is accepted too)."""
    if isinstance(data, dict):
        fields_ = data["fields"]
        return [_build(StepRecord, dict(zip(fields_, row, strict=True))) for row in data["rows"]]
    return [_build(StepRecord, s) for s in data]


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
    if version != SCHEMA_VERSION:
        raise ResultFileError(
            f"{source}: schema_version {version!r} is not supported (this tool reads {SCHEMA_VERSION}); "
            "re-run with this version of inferneo-bench"
        )
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise ResultFileError(f"{source}: missing key '{key}'; the file is truncated or was edited")
    for key in RUN_KEYS:
        if key not in data["run"]:
            raise ResultFileError(f"{source}: missing key 'run.{key}'; the file is truncated or was edited")
    if data["run"]["status"] not in RUN_STATUSES:
        raise ResultFileError(f"{source}: run.status {data['run']['status']!r} is not one of {RUN_STATUSES}")


def save(result: RunResult, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a crash never leaves half a file. Compact JSON: per-step and per-token records
    dominate the size (pretty-print with python -m json.tool)."""
    with atomic_writer(path) as fh:
        json.dump(result.to_dict(), fh, separators=(",", ":"), allow_nan=False, default=_json_default)
        fh.write("\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a result file")


def load(path: str | os.PathLike[str]) -> RunResult:
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: no such result file; check the path (results are under results/<run-id>/)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultFileError(
            f"{path}: corrupt JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); re-run to regenerate it"
        ) from None
    except UnicodeDecodeError:
        raise ResultFileError(f"{path}: not a text file; expected an inferneo-bench result JSON") from None
    return RunResult.from_dict(data, source=path)


def find_result_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand run folders into their result files (sorted); files pass through."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.json") if not f.name.startswith("."))
            if not files:
                raise ResultFileError(f"{p}: folder holds no result files (*.json)")
            found.extend(files)
        elif p.is_file():
            found.append(p)
        else:
            raise ResultFileError(f"{p}: no such file or folder")
    return found
