"""Comparability: a comparison is only fair between results of the same traffic, model, device and engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inferneo_bench.errors import UserError
from inferneo_bench.results import RunResult

# (what it is called in messages, how to read it from a result)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("workload content hash", "workload", "content_hash"),
    ("model", "model", "name"),
    ("device type", "model", "device_type"),
    ("engine", "run", "engine"),
)


def _get(result: RunResult, section: str, key: str) -> object:
    if section == "run":
        return getattr(result.run, key, None)
    return getattr(result, section).get(key)


# ---- remote results (`run --target`, docs/serving.md) ------------------------------------------------------
# A remote result is measured on the wall clock through a real serving stack, as an in-process torch run is,
# so the two compare (that is the point: our engine beside a vLLM or SGLang server, on the same traffic); a
# simulated (virtual-clock) result never compares with either. A server that does not report its device type
# leaves it unknown, not different: it is left out of the check, and a warning says so.
WALL_CLOCK_ENGINES = ("torch", "remote")
_UNKNOWN = object()


def _remote_view(result: RunResult, key: str, value: object) -> object:
    if key == "engine" and value in WALL_CLOCK_ENGINES:
        return "torch or remote (wall clock)"
    if key == "device_type" and value is None and result.run.engine == "remote":
        return _UNKNOWN
    return value


def unknown_notes(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None) -> list[str]:
    names = [str(p) for p in paths] if paths is not None else [r.strategy.get("name", "?") for r in results]
    return [
        f"warning: {name}: the server did not report its device type; check it matches the others"
        for result, name in zip(results, names, strict=False)
        if _remote_view(result, "device_type", _get(result, "model", "device_type")) is _UNKNOWN
    ]


def differences(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None) -> list[str]:
    """One phrase per field that is not the same in every result, naming the values and where they come from."""
    found = []
    names = [str(p) for p in paths] if paths is not None else [r.strategy.get("name", "?") for r in results]
    for label, section, key in FIELDS:
        seen: dict[str, tuple[list[str], list[str]]] = {}  # comparable value -> (files, values as recorded)
        for result, name in zip(results, names, strict=False):
            value = _get(result, section, key)
            group = _remote_view(result, key, value)
            if group is not _UNKNOWN:
                files, shown = seen.setdefault(repr(group), ([], []))
                files.append(name)
                if repr(value) not in shown:
                    shown.append(repr(value))
        if len(seen) > 1:
            parts = [f"{'/'.join(shown)} ({_short(files)})" for files, shown in seen.values()]
            found.append(f"{label} differs: " + " vs ".join(parts))
    return found


def _short(files: list[str]) -> str:
    return files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more"


def check(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None, force: bool = False) -> list[str]:
    """Refuse (UserError, exit 2) results that are not comparable; with `force`, return warning lines instead."""
    diffs = differences(results, paths)
    if diffs and not force:
        raise UserError(
            "results are not comparable: " + "; ".join(diffs) + ". Compare runs of one workload, model, device type "
            "and engine, or pass --force to compare anyway"
        )
    return [f"warning: comparing anyway (--force): {d}" for d in diffs] + unknown_notes(results, paths)
