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
    {"steps": [[...], ...], "request": {...}}     one per ended request ("steps" only when there are new ones)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from inferneo_bench import results, validation
from inferneo_bench.errors import UserError
from inferneo_bench.results import RequestRecord, StepRecord

JOURNAL_MAGIC = "inferneo-bench-journal"
JOURNAL_VERSION = 1
SUFFIX = ".journal.jsonl"
WORKLOAD_FIELDS = ("request_id", "arrival_s", "prompt_tokens", "output_tokens", "max_tokens", "priority")
_REQUEST_NAMES = [f.name for f in dataclasses.fields(RequestRecord)]
_STEP_ROW = operator.attrgetter(*results.STEP_FIELDS)  # a step's values as a tuple, in STEP_FIELDS order


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
        self._steps: list[tuple[Any, ...]] = []
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

    def step(self, step: StepRecord) -> None:
        self._steps.append(_STEP_ROW(step))

    def request(self, record: RequestRecord) -> None:
        # times rounded as the replay rounds them at its end (quantize: the same values, ~half the digits to
        # encode); a plain dict, as dataclasses.asdict deep-copies every ITL float (10x slower)
        from inferneo_bench.runner.replay import quantize

        rounded = copy.copy(record)
        quantize([rounded], [])
        line: dict[str, Any] = {"request": {name: getattr(rounded, name) for name in _REQUEST_NAMES}}
        if self._steps:
            line["steps"], self._steps = self._steps, []
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
    steps: list[StepRecord],
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


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[list[Any]], int]:
    """(first line, workload line, request dicts, step rows, torn lines ignored) of a journal."""
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
    steps: list[list[Any]] = []
    torn = 0
    for i, line in enumerate(lines[2:], start=3):
        try:
            entry = json.loads(line)
        except ValueError:
            if i == len(lines):  # the last line, cut short by a kill: expected, ignored
                torn += 1
                continue
            raise UserError(f"{path}:{i}: corrupt journal line; the journal was edited") from None
        steps.extend(entry.get("steps") or [])
        if "request" in entry:
            requests.append(entry["request"])
    return first, workload, requests, steps, torn


def recover(path: Path) -> tuple[Path, results.RunResult | None, dict[str, int]]:
    """Rebuild the result file of an interrupted or killed trial from its journal; returns (result path, result,
    counts). A journal whose result was saved (killed between the save and the journal's removal) or that holds
    no measurement (killed while starting) is removed, and the result is None."""
    from inferneo_bench.runner.replay import quantize

    target = path.with_name(path.name.removesuffix(SUFFIX) + ".json")
    if target.exists():
        path.unlink(missing_ok=True)
        return target, None, {"already_saved": 1}
    try:
        first, workload, journaled, step_rows, torn = read(path)
    except NoMeasurement:
        path.unlink(missing_ok=True)
        return target, None, {"no_measurement": 1}
    header = Header(**first["header"])
    try:
        records = [RequestRecord(**{k: v for k, v in r.items() if k in _REQUEST_NAMES}) for r in journaled]
        steps = [StepRecord(**dict(zip(results.STEP_FIELDS, row, strict=True))) for row in step_rows]
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
    quantize(records, steps)
    telemetry = {
        "available": False,
        "reason": "recovered from a journal: telemetry samples are not journaled",
        "samples": [],
        "torch_peak_allocated_mb": None,
        "harness": {"wall_s": None, "harness_s": None, "reason": "recovered from a journal"},
    }
    result = assemble(header, records, steps, telemetry, "interrupted", None, {"recovered_from": path.name})
    results.save(result, target)
    path.unlink(missing_ok=True)
    return target, result, {"journaled": len(journaled), "lost": lost, "torn_lines": torn, "steps": len(steps)}
