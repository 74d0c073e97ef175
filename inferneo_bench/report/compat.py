"""Comparability: one rule table, used by both `compare` and `check`.

A comparison is only fair between results of the same traffic (workload content hash), the same model on the
same device, the same engine, the same SLOs (goodput depends on them) and the same warm-up (it decides which
requests are measured). Those fields must agree across every result of a comparison. The scheduler
configuration must agree within one series: the trials of one strategy (and label) in `compare`, and the
baseline and current of one strategy in `check` (different labels are how variants of a configuration are
compared side by side). A configuration field present on one side only (a field added by a newer version)
is not a difference.

Results that differ are refused (exit 2) with every difference named; with `--force` they are compared and
every output says so.

Remote results (`run --target`, docs/serving.md) are measured on the wall clock through a real serving stack,
as an in-process torch run is, so the two compare (our engine beside a vLLM or SGLang server, on the same
traffic); a simulated (virtual-clock) result never compares with either. A server that does not report its
device leaves it unknown, not different: it is left out of that rule, and a warning says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError
from inferneo_bench.results import RunResult

ALL, SERIES = "all", "series"
WALL_CLOCK_ENGINES = ("torch", "remote")
UNKNOWN = object()  # a value a remote server did not report: left out of its rule


def _same(result: RunResult, value: Any) -> Any:
    return value


def _engine_view(result: RunResult, value: Any) -> Any:
    return "torch or remote (wall clock)" if value in WALL_CLOCK_ENGINES else value


def _reported_view(result: RunResult, value: Any) -> Any:
    return UNKNOWN if value is None and result.run.engine == "remote" else value


@dataclass(frozen=True)
class Rule:
    label: str  # how messages name the field
    get: Callable[[RunResult], Any]  # the value as recorded
    scope: str  # ALL: every result of a comparison; SERIES: the results compared as one strategy (and label)
    view: Callable[[RunResult, Any], Any] = _same  # recorded value -> what must be equal (UNKNOWN: not checked)


RULES: tuple[Rule, ...] = (
    Rule("workload content hash", lambda r: r.workload.get("content_hash"), ALL),
    Rule("model", lambda r: r.model.get("name"), ALL),
    Rule("device type", lambda r: r.model.get("device_type"), ALL, _reported_view),
    Rule("device", lambda r: r.model.get("device_name"), ALL, _reported_view),
    Rule("engine", lambda r: r.run.engine, ALL, _engine_view),
    Rule("SLOs", lambda r: r.summary.get("slo"), ALL),
    Rule("warm-up requests", lambda r: r.summary.get("warmup_requests"), ALL),
    Rule("scheduler config", lambda r: (r.strategy or {}).get("config"), SERIES),
)
FIX = "compare runs of one workload, model, device, engine, SLOs, warm-up and scheduler config"


def series_key(result: RunResult) -> tuple[str, str | None]:
    return (str((result.strategy or {}).get("name", "?")), result.run.label)


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def context(result: RunResult) -> tuple[str, ...]:
    """A hashable key of the ALL-scope fields: results with equal keys may be compared."""
    return tuple(_freeze(_viewed(rule, result)) for rule in RULES if rule.scope == ALL)


def _viewed(rule: Rule, result: RunResult) -> Any:
    value = rule.view(result, rule.get(result))
    return "<not reported>" if value is UNKNOWN else value


def _dict_differences(values: Sequence[dict[str, Any]]) -> list[str]:
    """Keys present in every dict whose values are not all equal."""
    common = set.intersection(*(set(v) for v in values)) if values else set()
    return sorted(k for k in common if len({_freeze(v[k]) for v in values}) > 1)


def _rule_difference(rule: Rule, results: Sequence[RunResult], names: Sequence[str]) -> str | None:
    values = [rule.get(r) for r in results]
    if all(isinstance(v, dict) for v in values) and rule.scope == SERIES:
        keys = _dict_differences(values)
        if not keys:
            return None
        parts = []
        for key in keys[:4]:
            seen: dict[str, list[str]] = {}
            for value, name in zip(values, names, strict=True):
                seen.setdefault(repr(value[key]), []).append(name)
            parts.append(f"{key} " + " vs ".join(f"{v} ({_short(f)})" for v, f in seen.items()))
        return f"{rule.label} differs: " + "; ".join(parts)
    seen: dict[str, tuple[list[str], list[str]]] = {}  # comparable value -> (recorded values shown, files)
    for result, value, name in zip(results, values, names, strict=True):
        group = rule.view(result, value)
        if group is UNKNOWN:
            continue
        shown, files = seen.setdefault(_freeze(group), ([], []))
        if repr(value) not in shown:
            shown.append(repr(value))
        files.append(name)
    if len(seen) < 2:
        return None
    return f"{rule.label} differs: " + " vs ".join(f"{'/'.join(v)} ({_short(f)})" for v, f in seen.values())


def unknown_notes(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None) -> list[str]:
    """A warning per remote result that did not report its device type (left out of that rule)."""
    names = [str(p) for p in paths] if paths is not None else [series_key(r)[0] for r in results]
    rule = next(r for r in RULES if r.label == "device type")
    return [
        f"warning: {name}: the server did not report its device type; check it matches the others"
        for result, name in zip(results, names, strict=False)
        if rule.view(result, rule.get(result)) is UNKNOWN
    ]


def differences(
    results: Sequence[RunResult], paths: Sequence[Path | str] | None = None, scopes: Sequence[str] = (ALL,)
) -> list[str]:
    """One phrase per rule of `scopes` whose field is not the same in every result, naming values and files."""
    names = [str(p) for p in paths] if paths is not None else [series_key(r)[0] for r in results]
    found = []
    for rule in RULES:
        if rule.scope in scopes:
            diff = _rule_difference(rule, results, names)
            if diff:
                found.append(diff)
    return found


def comparison_differences(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None) -> list[str]:
    """Every difference that makes a comparison unfair: ALL-scope rules across all results, SERIES-scope rules
    within each (strategy, label) group."""
    names = [str(p) for p in paths] if paths is not None else [series_key(r)[0] for r in results]
    found = differences(results, names, (ALL,))
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault(series_key(r), []).append(i)
    for (strategy, label), idx in groups.items():
        if len(idx) > 1:
            where = strategy + (f" [{label}]" if label else "")
            for diff in differences([results[i] for i in idx], [names[i] for i in idx], (SERIES,)):
                found.append(f"{where}: {diff}")
    return found


def refuse_or_flag(diffs: Sequence[str], force: bool, what: str = "results") -> list[str]:
    """Refuse (UserError, exit 2) when there are differences; with `force`, the warning lines to show."""
    if diffs and not force:
        listed = "; ".join(diffs)
        raise UserError(f"{what} are not comparable: {listed}. {FIX}, or pass --force to compare anyway")
    return [f"warning: comparing anyway (--force): {d}" for d in diffs]


def check(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None, force: bool = False) -> list[str]:
    """`compare`'s rule: refuse incomparable results; with `force`, return the warning lines instead (plus a
    warning per remote result of unknown device type)."""
    return refuse_or_flag(comparison_differences(results, paths), force) + unknown_notes(results, paths)


def _short(files: list[str]) -> str:
    return files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more"
