"""The per-request journal: nothing measured is lost, even to SIGKILL or a power cut of the process.

While a trial runs, `<result>.journal.jsonl` beside its result file receives, append-only and flushed to the
OS as each request ends, that request's record, plus the engine steps run since the previous line. Its first
lines hold everything else a result needs (run, environment, model, workload, strategy, SLOs, validity
rules) and the workload's requests, so that a journal alone rebuilds a result file: `inferneo-bench recover
PATH` (`recover()` below) reads it, marks the requests that had not ended as cancelled ("the run ended before
this request finished"), computes the summary with the same `metrics.summarize` and writes the result with
`results.save`, status `interrupted`. A torn last line (killed mid-write) is ignored. The journal is removed
once the result file is safely written.

Line format (JSON, one object per line):
    {"journal": "inferneo-bench-journal", "version": 1, "result": NAME, "header": {...}}
    {"workload": {"fields": [...], "rows": [[...], ...]}, "warmup": N}
    {"rows": BASE64, "events": [...], "request": {...}}   one per ended request: the engine steps run since the
                                                          previous line (steplog ROW structs), then the record
A run longer than its step keep limit folds old step rows into aggregates as it goes (steplog); the journal
holds the rows it saw before they were folded, and a recovered result says how many steps it lacks.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from inferneo_bench import results, validation
from inferneo_bench.errors import UserError
from inferneo_bench.results import RequestRecord
from inferneo_bench.steplog import ROUNDING, ROW, ROW_DTYPE, StepLog, quantized

JOURNAL_MAGIC = "inferneo-bench-journal"
JOURNAL_VERSION = 1
SUFFIX = ".journal.jsonl"
WORKLOAD_FIELDS = ("request_id", "arrival_s", "prompt_tokens", "output_tokens", "max_tokens", "priority")
_REQUEST_NAMES = [f.name for f in dataclasses.fields(RequestRecord)]


def journal_path(result_path: Path) -> Path:
    """`run/adaptive.json` -> `run/adaptive.journal.jsonl`."""
    return result_path.with_name(result_path.stem + SUFFIX)


@dataclass
class Header:
    """What a result holds besides its records, summary and telemetry: known before the first request."""

    run: dict[str, Any]
    environment: dict[str, Any]
    model: dict[str, Any]
    workload: dict[str, Any]
    strategy: dict[str, Any]
    slo: dict[str, float] | None
    validity_rules: dict[str, Any]


class Journal:
    """Append-only writer. A write error (disk full) stops journalling with a note; the run goes on."""

    def __init__(self, path: Path, fh: TextIO | None) -> None:
        self.path = path
        self._fh = fh
        self.log: StepLog | None = None  # the replay's step log (watch)
        self._steps_at = 0  # steps journalled so far
        self._events_at = 0
        self.error: str | None = None

    @classmethod
    def create(cls, result_path: Path, header: Header, requests: Sequence[Any], warmup: int) -> Journal:
        path = journal_path(result_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise UserError(
                f"{path}: cannot write the journal ({exc.strerror}); choose a writable --out with free space"
            ) from None
        journal = cls(path, fh)
        ordered = sorted(requests, key=lambda r: r.arrival_s)  # the replay loop's order (stable)
        journal._write({"journal": JOURNAL_MAGIC, "version": JOURNAL_VERSION, "result": result_path.name,
                        "header": dataclasses.asdict(header)})  # fmt: skip
        journal._write(
            {
                "workload": {
                    "fields": list(WORKLOAD_FIELDS),
                    "rows": [[getattr(r, f) for f in WORKLOAD_FIELDS] for r in ordered],
                },
                "warmup": warmup,
            }
        )
        return journal

    def watch(self, log: StepLog) -> None:
        """The replay's step log: each request line carries the steps appended since the previous line."""
        self.log = log

    def _new_steps(self, line: dict[str, Any]) -> None:
        log = self.log
        if log is None:
            return
        total, kept = log.num_steps, len(log.rows) // ROW.size
        first = max(self._steps_at, total - kept)  # steps before total - kept were folded into aggregates
        if first > self._steps_at:
            line["lost_steps"] = first - self._steps_at
        if total > first:
            start = (first - (total - kept)) * ROW.size
            line["rows"] = base64.b64encode(bytes(log.rows[start:])).decode("ascii")
        self._steps_at = total
        if len(log.events) > self._events_at:
            line["events"] = log.events[self._events_at :]
            self._events_at = len(log.events)

    def request(self, record: RequestRecord) -> None:
        # times rounded as the replay rounds them at its end (quantize: the same values, ~half the digits to
        # encode); a plain dict, as dataclasses.asdict deep-copies every ITL float (10x slower)
        from inferneo_bench.runner.replay import quantize

        rounded = copy.copy(record)
        quantize([rounded], None, itl=False)  # the loop rounds each gap as it records it
        line: dict[str, Any] = {}
        self._new_steps(line)
        line["request"] = {name: getattr(rounded, name) for name in _REQUEST_NAMES}
        self._write(line)

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")
            self._fh.flush()
        except (OSError, ValueError) as exc:
            self.error = f"journal stopped: {getattr(exc, 'strerror', None) or exc}"
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

    def remove(self) -> None:
        """After the result file is written: the journal has nothing more to give."""
        self.close()
        self.path.unlink(missing_ok=True)


def assemble(
    header: Header,
    requests: list[RequestRecord],
    steps: StepLog | list[Any],
    telemetry: dict[str, Any],
    status: str,
    finished_at: str | None,
    stats: dict[str, Any] | None = None,
) -> results.RunResult:
    """A result from a header and the measured records: the one place both a finished trial and a recovered
    journal become a `RunResult` (summary by metrics.summarize, validity by runner.validity.judge)."""
    from inferneo_bench.metrics import summarize
    from inferneo_bench.runner.validity import ValidityRules, judge

    summary = summarize(requests, steps, telemetry, header.slo)
    run = results.RunInfo(**{**header.run, "status": status, "finished_at": finished_at})
    run.validity = judge(summary, status, ValidityRules(**header.validity_rules))
    strategy = {**header.strategy, "stats": stats or {}}
    return results.RunResult(
        run=run,
        environment=header.environment,
        model=header.model,
        workload=header.workload,
        strategy=strategy,
        summary=summary,
        requests=requests,
        steps=steps,
        telemetry=telemetry,
    )


# ---------------------------------------------------------------------------------------------- recovery


class NoMeasurement(UserError):
    """A journal cut short before its workload line: the run was killed while starting; nothing to rebuild."""


def find_journals(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob(f"*{SUFFIX}") if not p.name.startswith("."))
    return [path]


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], StepLog, int, int]:
    """(first line, workload line, request dicts, step log, steps lost to folding, torn lines ignored)."""
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the journal ({exc.strerror})") from None
    with fh:
        lines = [line for line in fh if line.strip()]
    if lines and not lines[0].startswith('{"journal":"' + JOURNAL_MAGIC + '"'):
        raise UserError(f"{path}: not an inferneo-bench journal (no '{JOURNAL_MAGIC}' header)")
    if len(lines) < 2 or not lines[1].endswith("\n"):
        raise NoMeasurement(f"{path}: killed before its first request; nothing was measured")
    first = validation.load_json(lines[0], f"{path}:1", what="journal header")
    if first.get("version") != JOURNAL_VERSION:
        raise UserError(f"{path}: journal version {first.get('version')!r}; this tool reads {JOURNAL_VERSION}")
    workload = validation.load_json(lines[1], f"{path}:2", what="journal workload")
    requests: list[dict[str, Any]] = []
    rows: list[bytes] = []
    events: list[tuple[int, float, str]] = []
    lost = torn = 0
    for i, line in enumerate(lines[2:], start=3):
        try:
            entry = json.loads(line)
        except ValueError:
            if i == len(lines):  # the last line, cut short by a kill: expected, ignored
                torn += 1
                continue
            raise UserError(f"{path}:{i}: corrupt journal line; the journal was edited") from None
        if entry.get("rows"):
            rows.append(base64.b64decode(entry["rows"]))
        events.extend((int(i), float(t), str(text)) for i, t, text in entry.get("events") or [])
        lost += int(entry.get("lost_steps") or 0)
        if "request" in entry:
            requests.append(entry["request"])
    return first, workload, requests, _step_log(b"".join(rows), events), lost, torn


def _step_log(raw: bytes, events: list[tuple[int, float, str]]) -> StepLog:
    """The journalled steps as a finished StepLog, rounded as a replay's are (steplog.ROUNDING)."""
    packed = np.frombuffer(raw[: len(raw) - len(raw) % ROW.size], dtype=ROW_DTYPE)
    arrays = {name: packed[name].copy() for name in ROW_DTYPE.names} if packed.size else {}
    for name, scale in ROUNDING.items():
        if arrays:
            arrays[name] = quantized(arrays[name], scale)
    scale = ROUNDING["start_s"]
    return StepLog.from_columns(arrays, [(i, round(t * scale) / scale, text) for i, t, text in events])


def recover(path: Path) -> tuple[Path, results.RunResult | None, dict[str, int]]:
    """Rebuild the result file of an interrupted or killed trial from its journal; returns (result path, result,
    counts). A journal whose result was saved (killed between the save and the journal's removal) or that holds
    no measurement (killed while starting) is removed, and the result is None."""
    from inferneo_bench.runner.replay import quantize

    target = results.entry_path(path.with_name(path.name.removesuffix(SUFFIX)))
    if target.exists():
        path.unlink(missing_ok=True)
        return target, None, {"already_saved": 1}
    try:
        first, workload, journaled, steps, lost_steps, torn = read(path)
    except NoMeasurement:
        path.unlink(missing_ok=True)
        return target, None, {"no_measurement": 1}
    header = Header(**first["header"])
    try:
        records = [RequestRecord(**{k: v for k, v in r.items() if k in _REQUEST_NAMES}) for r in journaled]
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: malformed journal record ({exc}); the journal was edited") from None
    seen = {r.request_id for r in records}
    fields = workload["workload"]["fields"]
    warmup = int(workload.get("warmup") or 0)
    lost = 0
    for index, row in enumerate(workload["workload"]["rows"]):
        spec = dict(zip(fields, row, strict=True))
        if spec["request_id"] in seen:
            continue
        lost += 1
        records.append(
            RequestRecord(
                request_id=spec["request_id"],
                arrival_s=spec["arrival_s"],
                prompt_tokens=spec["prompt_tokens"],
                output_tokens=0,
                target_output_tokens=spec["output_tokens"],
                max_tokens=spec["max_tokens"],
                priority=spec["priority"],
                status="cancelled",
                reason="the run ended before this request finished (recovered from the journal)",
                warmup=index < warmup,
            )
        )
    order = {row[0]: i for i, row in enumerate(workload["workload"]["rows"])}
    records.sort(key=lambda r: order.get(r.request_id, len(order)))
    quantize(records, None)
    telemetry = {
        "available": False,
        "reason": "recovered from a journal: telemetry samples are not journaled",
        "samples": [],
        "torch_peak_allocated_mb": None,
        "harness": {"wall_s": None, "harness_s": None, "reason": "recovered from a journal"},
    }
    if lost_steps:
        telemetry["journal"] = (
            f"{lost_steps} early steps were folded into aggregates before they were journalled (a run past its "
            "step keep limit); the step figures cover the later steps only"
        )
    result = assemble(header, records, steps, telemetry, "interrupted", None, {"recovered_from": path.name})
    results.save(result, target)
    path.unlink(missing_ok=True)
    return target, result, {"journaled": len(journaled), "lost": lost, "torn_lines": torn, "steps": steps.num_steps}
