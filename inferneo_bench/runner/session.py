"""A benchmark session: one workload, one engine, every requested strategy and trial, one result file each.

The engine is built once and reused across strategies and trials (weights load once; `reset()` frees every
sequence between replays), so strategies are compared on the same warmed-up model.
"""

from __future__ import annotations

import csv
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inferneo_bench import results
from inferneo_bench.console import Activity, human_size
from inferneo_bench.errors import UserError, did_you_mean
from inferneo_bench.fileio import disk_size
from inferneo_bench.metrics import SLO_METRICS, summarize
from inferneo_bench.runner.clock import VirtualClock, WallClock
from inferneo_bench.runner.replay import Progress, ReplayOptions, replay
from inferneo_bench.runner.validity import ValidityRules, judge
from inferneo_bench.scheduler import RUNNER_DEFAULTS, BatchingStrategy, ConfigError, SchedulerConfig, SchedulerCore
from inferneo_bench.steplog import DEFAULT_KEEP_STEPS

STRATEGIES = tuple(s.value for s in BatchingStrategy)
SHORT_STRATEGY_NAMES = ("fixed", "adaptive", "coalescing", "latency", "throughput", "continuous")


def resolve_strategies(names: str) -> list[str]:
    """'all', short names and the Inferneo design document's long names, comma-separated (names parsed by
    BatchingStrategy); an unknown name is an error that suggests the nearest known one."""
    out: list[str] = []
    for raw in names.split(","):
        if raw.strip().lower() == "all":
            out.extend(STRATEGIES)
            continue
        try:
            out.append(BatchingStrategy.parse(raw).value)
        except ConfigError:
            choices = [*SHORT_STRATEGY_NAMES, "all"]
            hint = did_you_mean(raw.strip().lower().replace("-", "_"), [*choices, *STRATEGIES])
            raise UserError(
                f"unknown strategy {raw.strip()!r}{hint}; choose one of: {', '.join(choices)} (or the long names)"
            ) from None
    return list(dict.fromkeys(out))


@dataclass
class RunOptions:
    strategies: list[str] = field(default_factory=lambda: ["adaptive"])
    workload: str = "default"
    model: str | None = None  # None: tiny (torch engine) or the profile's model (sim engine)
    device: str = "auto"
    dtype: str | None = None
    engine: str = "torch"  # or "sim"
    profile: str | None = None  # sim: shipped profile name or path
    num_requests: int | None = None
    trace_format: str | None = None  # --format of a trace file (default: detected)
    skip_bad_rows: bool = False
    duration: float | None = None
    rate: float | None = None
    time_scale: float | None = None
    context_policy: str = "reject"
    max_model_len: int | None = None
    warmup: int = 0
    seed: int | None = None  # None: the workload spec's own seed; the model's weights use 0
    slo: dict[str, float] | None = None
    repeat: int = 1
    config: dict[str, str] = field(default_factory=dict)  # --set FIELD=VALUE
    out: Path = Path("results")
    run_id: str | None = None
    label: str | None = None
    csv: bool = False
    request_timeout_s: float | None = None
    telemetry_interval_s: float = 0.1
    threads: int | None = 1  # torch intra-op threads on the CPU (None: torch's default)
    keep_steps: int | None = DEFAULT_KEEP_STEPS  # per-step rows kept for runs up to this many steps (None: all)
    validity: ValidityRules = field(default_factory=ValidityRules)
    command: str = field(default_factory=lambda: _invocation())
    # run --target URL: replay against an OpenAI-compatible server instead of the in-process engine
    target: str | None = None
    api: str = "completions"
    served_model: str | None = None
    max_concurrency: int | None = None
    headers: list[str] = field(default_factory=list)  # NAME:VALUE, sent but never stored
    api_key_env: str | None = None


@dataclass
class TrialOutcome:
    """A saved trial: its entry folder, and the result without its records (metadata, summary, step
    aggregates; `results.records_of(outcome.result)` reads the records back)."""

    path: Path
    result: results.RunResult
    files: list[Path] = field(default_factory=list)  # every file written for this trial (result first)


def _invocation() -> str:
    from inferneo_bench.cli import invocation

    return invocation()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def parse_slo(text: str | None) -> dict[str, float] | None:
    """'ttft_ms=200,tpot_ms=50' -> dict; names are checked."""
    if not text:
        return None
    slo: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SLO_METRICS:
            raise UserError(f"--slo {part!r}: expected NAME=MILLISECONDS with NAME one of {', '.join(SLO_METRICS)}")
        try:
            slo[key] = float(value)
        except ValueError:
            raise UserError(f"--slo {part!r}: {value!r} is not a number of milliseconds") from None
    return slo


def scheduler_config(overrides: dict[str, str], defaults: dict[str, Any]) -> Any:
    """SchedulerConfig from the runner's defaults (RUNNER_DEFAULTS, then engine-derived ones) plus --set
    FIELD=VALUE (typed by the field's default)."""

    known = {f.name: f for f in dataclasses.fields(SchedulerConfig)}
    values: dict[str, Any] = {k: v for k, v in {**RUNNER_DEFAULTS, **defaults}.items() if k in known}
    base = SchedulerConfig()
    for name, raw in overrides.items():
        if name not in known:
            raise UserError(f"--set {name}={raw}: unknown SchedulerConfig field; known: {', '.join(sorted(known))}")
        values[name] = _coerce(name, raw, getattr(base, name), known[name].type)
    try:
        return SchedulerConfig(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--set: {exc}") from None


def _coerce(name: str, raw: str, default: Any, annotation: Any) -> Any:
    text = raw.strip()
    if text.lower() in ("none", "null") and "None" in str(annotation):
        return None
    try:
        if isinstance(default, bool) or "bool" in str(annotation):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int) or str(annotation).startswith("int"):
            return int(text)
        if isinstance(default, float) or "float" in str(annotation):
            return float(text)
    except ValueError:
        raise UserError(f"--set {name}={raw}: {raw!r} is not a valid value for {name} ({annotation})") from None
    return text


def _cuda_index(engine: Any) -> int | None:
    """The CUDA device index the engine runs on, or None (CPU, simulated engine). A plain "cuda" device means
    the current CUDA device, which is not always 0."""
    device = str(getattr(engine, "device", "cpu"))
    if not device.startswith("cuda"):
        return None
    if ":" in device:
        return int(device.split(":")[1])
    import torch

    return torch.cuda.current_device()


def _torch_peak_mb(engine: Any) -> float | None:
    index = _cuda_index(engine)
    if index is None:
        return None
    import torch

    return torch.cuda.max_memory_allocated(index) / 2**20


def _reset_torch_peak(engine: Any) -> None:
    index = _cuda_index(engine)
    if index is not None:
        import torch

        torch.cuda.reset_peak_memory_stats(index)


def write_requests_csv(result: results.RunResult, path: Path) -> Path:
    from inferneo_bench.fileio import atomic_writer

    fields = [f.name for f in dataclasses.fields(results.RequestRecord) if f.name not in ("itl_s", "chunk_tokens")]
    with atomic_writer(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for r in result.requests:
            writer.writerow([getattr(r, name) for name in fields])
    return path


def run_trial(
    *,
    options: RunOptions,
    strategy: str,
    trial: int | None,
    run_id: str,
    workload: Any,
    context: Any,
    engine: Any,
    environment: dict[str, Any],
    on_progress: Callable[[Progress], None] | None = None,
    console: Any = None,
    on_replayed: Callable[[int], None] | None = None,
) -> TrialOutcome:

    config = fit_to_engine(scheduler_config(options.config, {}), engine)
    core = SchedulerCore(config, strategy)
    clock = VirtualClock() if options.engine == "sim" else WallClock()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if hasattr(engine, "reset"):
        engine.reset()
    _reset_torch_peak(engine)
    from inferneo_bench.telemetry.nvml import cuda_device_uuid
    from inferneo_bench.telemetry.sampler import NvmlSampler

    index = _cuda_index(engine)
    uuid = None if index is None else cuda_device_uuid(index)
    sampler = NvmlSampler(index, options.telemetry_interval_s, device_uuid=uuid)
    sampler.start(time.perf_counter())
    try:
        outcome = replay(
            workload.requests,
            core,
            engine,
            clock,
            ReplayOptions(
                max_model_len=engine.max_model_len,
                warmup=options.warmup,
                request_timeout_s=options.request_timeout_s,
                keep_steps=options.keep_steps,
            ),
            gpu_utilization=sampler.latest_util if sampler.available else None,
            memory_usage=sampler.latest_mem_mb if sampler.available else None,
            on_progress=on_progress,
        )
    finally:
        telemetry = sampler.stop()
    if on_replayed is not None:  # e.g. complete and stop the progress bar, so that the save's status shows below it
        on_replayed(sum(r.status != "pending" for r in outcome.requests))
    telemetry["torch_peak_allocated_mb"] = _torch_peak_mb(engine)
    telemetry["harness"] = outcome.harness
    summary = summarize(outcome.requests, outcome.steps, telemetry, options.slo)
    status = "interrupted" if outcome.interrupted else "completed"
    run = results.RunInfo(
        id=run_id,
        started_at=started_at,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=options.command,
        seed=options.seed if options.seed is not None else int(workload.replay.get("seed") or 0),
        engine=options.engine,
        status=status,
        validity=judge(summary, status, options.validity),
        trial=trial,
        label=options.label,
    )
    strategy_info = {
        "name": strategy,
        "config": dataclasses.asdict(config),
        "stats": {**core.stats(), **core.batching_stats()},
    }
    result = results.RunResult(
        run=run,
        environment=environment,
        model=engine.model_info(),
        workload=workload.info(context),
        strategy=strategy_info,
        summary=summary,
        requests=outcome.requests,
        steps=outcome.steps,
        telemetry=telemetry,
    )
    del outcome  # the result holds the records now; nothing else may keep them alive past the save
    name = strategy if trial is None else f"{strategy}-trial{trial}"
    path = options.out / run_id / name
    size = f"{len(result.requests):,} requests, {result.steps.num_steps:,} steps"
    with Activity(console, f"saving {path} ({size})") as act:
        path = results.save(result, path)
    files = [path]
    if options.csv:
        files.append(write_requests_csv(result, path / "requests.csv"))
    if console is not None:
        also = "".join(f" + {f.name}" for f in files[1:])
        console.print(f"saved {path} ({human_size(disk_size(path))}, {act.elapsed:.1f} s){also}", highlight=False)
    return TrialOutcome(path, results.release_records(result), files)


def fit_to_engine(config: Any, engine: Any) -> Any:
    """The scheduler may never run more sequences than the engine has KV slots (each slot holds one sequence
    of up to max_model_len tokens). When the engine got fewer slots than asked (memory), the caps shrink."""
    slots = getattr(engine, "num_slots", None)
    if not slots or config.max_num_seqs <= slots:
        return config
    return dataclasses.replace(
        config,
        max_num_seqs=slots,
        max_num_partial_prefills=min(config.max_num_partial_prefills, slots),
        max_waiting_tokens=max(config.max_waiting_tokens, slots),
    )


def build_engine(options: RunOptions, max_num_seqs: int) -> Any:
    """The torch engine (real model) or the simulated one (profile of a real engine), with a KV slot for each
    of the max_num_seqs sequences the scheduler may run (the torch engine takes fewer if memory is short)."""
    if options.engine == "torch":
        from inferneo_bench.engine import load_engine

        if options.threads:
            import torch

            torch.set_num_threads(options.threads)

        return load_engine(
            options.model or "tiny",
            device=options.device,
            dtype=options.dtype,
            max_num_seqs=max_num_seqs,
            max_model_len=options.max_model_len,
            seed=options.seed or 0,
        )
    if options.engine == "sim":
        from inferneo_bench.engine.profile import load_profile
        from inferneo_bench.engine.sim_engine import SimEngine

        if not options.profile:
            raise UserError("--engine sim needs --profile NAME|FILE (e.g. --profile tiny-cpu)")
        return SimEngine(
            load_profile(options.profile, model=options.model),
            max_num_seqs=max_num_seqs,
            max_model_len=options.max_model_len,
            seed=options.seed or 0,
        )
    raise UserError(f"--engine {options.engine!r}: choose torch or sim")


def warm_up(engine: Any) -> None:
    """Pay one-time costs before the first measured replay: CUDA graph capture, lazy kernel and allocator
    initialisation (a few prefill and decode steps of a throw-away sequence). Then forget it."""
    from inferneo_bench.steps import SeqStep, StepPlan

    if hasattr(engine, "warmup"):
        engine.warmup()
    engine.add_sequence("__warmup__", 16)
    engine.step(StepPlan([SeqStep("__warmup__", 0, 16, True)]))
    for pos in range(16, 20):
        engine.step(StepPlan([SeqStep("__warmup__", pos, 1, True)]))
    engine.step(StepPlan([], free=["__warmup__"]))
    engine.reset()


def load_session_workload(options: RunOptions, max_model_len: int) -> tuple[Any, Any]:
    """The workload with the replay controls applied, and the context policy's outcome. Under `reject` the
    replay loop itself rejects over-long requests at their arrival (they count in the result)."""
    from inferneo_bench.workload import apply_context_policy, load_workload

    workload = load_workload(
        options.workload,
        num_requests=options.num_requests,
        duration_s=options.duration,
        rate=options.rate,
        time_scale=options.time_scale,
        seed=options.seed,
        format=options.trace_format,
        skip_bad_rows=options.skip_bad_rows or None,
    )
    context = apply_context_policy(workload.requests, max_model_len, options.context_policy)
    if options.context_policy != "reject":
        fitted = {r.request_id: r for r in context.kept}
        workload.requests = [fitted.get(r.request_id, r) for r in workload.requests]
    if len(context.rejected) == len(workload.requests):
        raise UserError(
            f"workload {options.workload!r}: all {len(workload.requests)} requests exceed the model context of "
            f"{max_model_len} tokens (first: {context.rejected[0][1]}); use --context-policy truncate|scale, "
            "a model with a longer context, or --max-model-len"
        )
    return workload, context


def run_session(options: RunOptions, console: Any = None) -> tuple[list[TrialOutcome], bool]:
    """Every strategy x trial of one session. Ctrl-C saves the trial in progress (status interrupted) and
    stops the session. With options.target, the trials run against that server (client.session)."""
    if options.target:
        from inferneo_bench.client.session import run_remote_session

        return run_remote_session(options, console)
    from inferneo_bench.environment import capture
    from inferneo_bench.runner.progress import ReplayProgress

    base = scheduler_config(options.config, {})
    engine = build_engine(options, base.max_num_seqs)
    try:
        workload, context = load_session_workload(options, engine.max_model_len)
        if console is not None:
            from inferneo_bench.runner.summary_table import intro_lines

            for line in intro_lines(engine.model_info(), workload, options, context):
                console.print(line)
        warm_up(engine)
        environment = capture(torch_runtime=options.engine == "torch")
        run_id = options.run_id or new_run_id()
        outcomes: list[TrialOutcome] = []
        trials: list[int | None] = [None] if options.repeat == 1 else list(range(1, options.repeat + 1))
        for strategy in options.strategies:
            for trial in trials:
                title = strategy if trial is None else f"{strategy} trial {trial}/{options.repeat}"
                with ReplayProgress(console, title, len(workload.requests)) as progress:
                    outcome = run_trial(
                        options=options,
                        strategy=strategy,
                        trial=trial,
                        run_id=run_id,
                        workload=workload,
                        context=context,
                        engine=engine,
                        environment=environment,
                        on_progress=progress.update,
                        console=console,
                        on_replayed=progress.close,
                    )
                outcomes.append(outcome)
                if outcome.result.run.status == "interrupted":
                    return outcomes, True
        return outcomes, False
    finally:
        engine.close()
