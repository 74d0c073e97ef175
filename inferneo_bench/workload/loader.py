"""Named workloads: resolve a name or path, read the YAML spec (safe_load), build the `Workload`.

`load_workload(name_or_path, **overrides)` is what the runner calls. `name_or_path` is a shipped spec name
(`workloads/<name>.yaml`), a path to a spec YAML, or a path to a trace file in any supported format.

A spec YAML has `name`, `description`, `source`, `seed`, and exactly one of:
- `synthetic:` {num_requests, arrival, prompt_tokens, output_tokens, max_tokens, priority} (see synthetic.py);
- `trace:` {path (relative to the YAML), format, model, skip_bad_rows, on_unsorted, arrival (for length-only
  data), priority};
plus an optional `replay:` {start_s, duration_s, max_requests, time_scale, target_rate, length_scale,
context_policy}.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from inferneo_bench import validation
from inferneo_bench.errors import UserError, did_you_mean
from inferneo_bench.workload import synthetic
from inferneo_bench.workload.replay import CONTEXT_POLICIES, apply_replay
from inferneo_bench.workload.spec import Workload, build_requests
from inferneo_bench.workload.traces import Stop, TraceData, read_trace

WORKLOADS_ENV = "INFERNEO_BENCH_WORKLOADS"
SPEC_KEYS = {"name", "description", "source", "seed", "synthetic", "trace", "replay"}
TRACE_KEYS = {"path", "format", "model_filter", "skip_bad_rows", "on_unsorted", "arrival", "priority"}
REPLAY_KEYS = {"start_s", "duration_s", "max_requests", "time_scale", "target_rate", "length_scale", "context_policy"}
OVERRIDES = (
    "num_requests",  # synthetic: how many to generate; trace: the first N (max_requests)
    "duration_s",  # window length
    "start_s",  # window start
    "max_requests",
    "rate",  # synthetic/length-only: the arrival rate; timed trace: target mean rate (rescales gaps)
    "time_scale",
    "length_scale",
    "seed",
    "format",
    "skip_bad_rows",
    "model_filter",  # BurstGPT: keep rows of this Model only (not the LLM the run uses)
    "on_unsorted",
    "context_policy",
)
DEFAULT_LENGTHS_ARRIVAL = {"process": "poisson", "rate": 1.0}
MAX_SPEC_BYTES = 1 << 20  # a workload spec is a page of YAML; large data belongs in a trace file


class _SpecLoader(yaml.SafeLoader):
    """safe_load without aliases: `*name` references let a few lines of YAML expand to gigabytes (an "alias
    bomb"); a workload spec never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UserError(
                f"{self.name}:{mark.line + 1}: YAML aliases (*name) are not allowed in a workload spec (they can "
                "expand without bound); write the value out"
            )
        return super().compose_node(parent, index)


def workloads_dir() -> Path:
    """The shipped workloads: $INFERNEO_BENCH_WORKLOADS, else `workloads/` beside the package (a source
    checkout or an editable install)."""
    env = os.environ.get(WORKLOADS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "workloads"


def available() -> list[str]:
    """Names of the shipped workload specs."""
    folder = workloads_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve(name_or_path: str | Path) -> Path:
    """A shipped name -> its YAML; otherwise an existing file path."""
    text = str(name_or_path)
    is_plain_name = "/" not in text and "\\" not in text and not Path(text).suffix
    if is_plain_name:
        shipped = workloads_dir() / f"{text}.yaml"
        if shipped.is_file():
            return shipped
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a workload name, a spec YAML or a trace file")
    names = ", ".join(available()) or f"none found in {workloads_dir()}"
    hint = did_you_mean(text, available())
    raise UserError(f"unknown workload {text!r}{hint}: not a shipped name ({names}) nor an existing file")


def load_workload(name_or_path: str | Path, **overrides: Any) -> Workload:
    """Load a workload by shipped name, spec YAML path or trace path; `overrides` (None = not given) replace
    the spec's settings: see OVERRIDES."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise UserError(f"unknown workload option(s) {', '.join(unknown)}; supported: {', '.join(OVERRIDES)}")
    opts = {k: v for k, v in overrides.items() if v is not None}
    path = resolve(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _build(_read_spec(path), path, opts, path_is_trace=False)
    return _build({"trace": {"path": str(path.resolve())}}, path, opts, path_is_trace=True)


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise UserError(
                f"{path}: {validation.human_bytes(size)} is far too large for a workload spec (at most "
                f"{validation.human_bytes(MAX_SPEC_BYTES)}); put request data in a trace file"
            )
        text = path.read_text(encoding="utf-8")
        loader = _SpecLoader(text)
        loader.name = str(path)
        try:
            spec = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or "syntax error")[:80]
        raise UserError(f"{path}{line}: not valid YAML ({problem})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); is this a workload spec?") from None
    except RecursionError:
        raise UserError(f"{path}: YAML nested too deeply to be a workload spec") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a workload spec must be a YAML mapping (name, description, synthetic|trace, ...)")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
    if ("synthetic" in spec) == ("trace" in spec):
        raise UserError(f"{path}: a workload spec needs exactly one of 'synthetic' or 'trace'")
    for key, allowed in (("trace", TRACE_KEYS), ("replay", REPLAY_KEYS)):
        block = spec.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise UserError(f"{path}: '{key}' must be a mapping")
        bad = sorted(set(block) - allowed)
        if bad:
            raise UserError(
                f"{path}: unknown key(s) in '{key}': {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}"
            )
    return spec


def _build(spec: dict[str, Any], path: Path, opts: dict[str, Any], path_is_trace: bool) -> Workload:
    base = path.parent
    seed = validation.seed(opts.get("seed", spec.get("seed", 0)), f"{path}: seed")
    replay = dict(spec.get("replay") or {})
    for key in ("duration_s", "start_s", "max_requests", "time_scale", "length_scale", "context_policy"):
        if key in opts:
            replay[key] = opts[key]
    policy = replay.pop("context_policy", "reject")
    if policy not in CONTEXT_POLICIES:
        raise UserError(f"{path}: unknown context_policy {policy!r}; supported: {', '.join(CONTEXT_POLICIES)}")
    generated: dict[str, Any] = {}
    if "synthetic" in spec:
        data, fmt, meta, stats = _synthetic(spec["synthetic"], base, seed, opts, path, generated)
    else:
        data, fmt, meta, stats = _trace(spec["trace"], base, seed, opts, replay, generated)
    if "rate" in opts and data.arrival_s is not None and fmt not in ("synthetic", "lengths"):
        replay["target_rate"] = opts["rate"]
    data, applied = apply_replay(data, **replay)
    requests = build_requests(
        data.arrival_s,
        data.prompt_tokens,
        data.output_tokens,
        data.max_tokens,
        data.priority,
        data.prefix_block_ids,
        data.request_ids,
    )
    replay_info = {"seed": seed, **generated, **applied}
    return Workload(
        name=str(spec.get("name") or meta.get("name") or path.stem),
        requests=requests,
        description=str(spec.get("description") or meta.get("description") or ""),
        source=str(spec.get("source") or meta.get("source") or (f"trace file {path.name}" if path_is_trace else "")),
        format=fmt,
        path=_display_path(path),
        stats=stats,
        replay=replay_info,
        context_policy=policy,
        prefix_block_size=data.prefix_block_size,
    )


def _display_path(path: Path) -> str:
    """Shipped files as `workloads/<file>` (the same on every machine, for result files); others as given."""
    try:
        return "workloads/" + path.resolve().relative_to(workloads_dir().resolve()).as_posix()
    except ValueError:
        return str(path)


def _synthetic(
    block: Any, base: Path, seed: int, opts: dict[str, Any], path: Path, generated: dict[str, Any]
) -> tuple[TraceData, str, dict[str, Any], dict[str, int]]:
    if not isinstance(block, Mapping):
        raise UserError(f"{path}: 'synthetic' must be a mapping")
    block = dict(block)
    if "num_requests" in opts:
        block["num_requests"] = opts["num_requests"]
    if "rate" in opts:
        arrival = dict(block.get("arrival") or {"process": "poisson"})
        if arrival.get("process") == "offline":
            raise UserError(f"{path}: an offline workload has no arrival rate to set")
        arrival["rate"] = opts["rate"]
        block["arrival"] = arrival
    empirical = _empirical(block, base)
    if empirical is not None:
        generated["empirical_lengths"] = empirical[1]
    try:
        cols = synthetic.generate_columns(block, seed, empirical[0] if empirical else None)
    except UserError as exc:  # name the spec file: the generator only knows the field
        raise UserError(f"{path}: {exc}") from None
    generated["arrival"] = dict(block.get("arrival") or {"process": "poisson", "rate": 1.0})
    return cols, "synthetic", {}, {}


def _empirical(block: Mapping[str, Any], base: Path) -> tuple[dict[str, np.ndarray], str] | None:
    """The one length-only dataset that `dist: empirical` entries with a `path` sample from."""
    paths = {
        str(spec["path"])
        for key in ("prompt_tokens", "output_tokens", "max_tokens")
        if isinstance(spec := block.get(key), Mapping) and spec.get("dist") == "empirical" and "path" in spec
    }
    if not paths:
        return None
    if len(paths) > 1:
        raise UserError(f"synthetic: empirical lengths must come from one dataset, got {', '.join(sorted(paths))}")
    rel = paths.pop()
    data = read_trace(_relative(base, rel))
    return {"prompt": data.prompt_tokens, "output": data.output_tokens}, rel


def _relative(base: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else base / p


def _stop(replay: dict[str, Any]) -> Stop:
    """How much of a trace the replay controls keep, so the reader stops there (values checked here, once).
    For length-only data (arrivals generated later) only the count stops the reader."""
    start, duration, limit = replay.get("start_s"), replay.get("duration_s"), replay.get("max_requests")
    if start is not None:
        start = validation.non_negative(start, "replay: start_s")
    if duration is not None:
        duration = validation.positive(duration, "replay: duration_s")
    if limit is not None:
        limit = validation.count(limit, "replay: max_requests")
    return Stop(limit, start, duration)


def _trace(
    block: Mapping[str, Any],
    base: Path,
    seed: int,
    opts: dict[str, Any],
    replay: dict[str, Any],
    generated: dict[str, Any],
) -> tuple[TraceData, str, dict[str, Any], dict[str, int]]:
    if "path" not in block:
        raise UserError("trace: missing 'path'")
    if not isinstance(block["path"], str):
        raise UserError(f"trace: 'path' must be a file path, got {validation.excerpt(block['path'])}")
    file = _relative(base, block["path"])
    if "num_requests" in opts:
        replay["max_requests"] = opts["num_requests"]
    data = read_trace(
        file,
        opts.get("format", block.get("format")),
        skip_bad_rows=bool(opts.get("skip_bad_rows", block.get("skip_bad_rows", False))),
        model_filter=opts.get("model_filter", block.get("model_filter")),
        on_unsorted=opts.get("on_unsorted", block.get("on_unsorted", "sort")),
        stop=_stop(replay),
    )
    rng = np.random.default_rng(seed)
    if data.arrival_s is None:  # length-only: arrivals from a synthetic process, in file order
        arrival = dict(block.get("arrival") or DEFAULT_LENGTHS_ARRIVAL)
        if "rate" in opts:
            arrival["rate"] = opts["rate"]
        n = len(data.prompt_tokens)
        limit = replay.get("max_requests")
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < n:
            n = limit  # generate only what will be kept (same arrivals as a longer draw's prefix)
            data.prompt_tokens, data.output_tokens = data.prompt_tokens[:n], data.output_tokens[:n]
        data.arrival_s = synthetic.arrivals(arrival, n, rng)
        generated["arrival"] = arrival
    if block.get("priority") is not None:
        data.priority = synthetic.priorities(block["priority"], len(data.prompt_tokens), rng)
        generated["priority"] = block["priority"]
    return data, data.format, data.meta, data.stats
