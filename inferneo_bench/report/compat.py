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


def differences(results: Sequence[RunResult], paths: Sequence[Path | str] | None = None) -> list[str]:
    """One phrase per field that is not the same in every result, naming the values and where they come from."""
    found = []
    names = [str(p) for p in paths] if paths is not None else [r.strategy.get("name", "?") for r in results]
    for label, section, key in FIELDS:
        seen: dict[str, list[str]] = {}
        for result, name in zip(results, names, strict=False):
            seen.setdefault(repr(_get(result, section, key)), []).append(name)
        if len(seen) > 1:
            parts = [f"{value} ({_short(files)})" for value, files in seen.items()]
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
    return [f"warning: comparing anyway (--force): {d}" for d in diffs]
