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

from inferneo_bench import results, validation
from inferneo_bench.console import Activity, human_size
from inferneo_bench.errors import UserError, did_you_mean
from inferneo_bench.fileio import atomic_writer, disk_size
from inferneo_bench.metrics import SLO_METRICS
from inferneo_bench.runner.clock import VirtualClock, WallClock
from inferneo_bench.runner.journal import Header, Journal, assemble
from inferneo_bench.runner.replay import Progress, ReplayOptions, replay
from inferneo_bench.runner.rundir import RunDir
from inferneo_bench.runner.signals import Interrupts
from inferneo_bench.runner.validity import ValidityRules
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
    overwrite: bool = False  # clear an existing run folder first (else a non-empty one is refused)
    allow_long: bool = False  # replay a trace whose span or largest gap is far beyond the rest
    command: str = field(default_factory=lambda: _invocation())
    # run --target URL: replay against an OpenAI-compatible server instead of the in-process engine
    target: str | None = None
    api: str = "completions"
    served_model: str | None = None
    max_concurrency: int | None = None
    headers: list[str] = field(default_factory=list)  # NAME:VALUE, sent but never stored
    api_key_env: str | None = None


def _int_range(minimum: int, maximum: int = validation.INT64_MAX) -> Callable[[Any, str], Any]:
    return lambda v, where: validation.count(v, where, minimum, maximum)


# Every numeric run option, with its rule: checked before anything is loaded (validation layer).
OPTION_RULES: tuple[tuple[str, str, Callable[[Any, str], Any]], ...] = (
    ("num_requests", "--num-requests", _int_range(1)),
    ("duration", "--duration", validation.positive),
    ("rate", "--rate", validation.positive),
    ("time_scale", "--time-scale", validation.positive),
    ("max_model_len", "--max-model-len", _int_range(1, validation.MAX_TOKENS)),
    ("warmup", "--warmup", _int_range(0)),
    ("seed", "--seed", validation.seed),
    ("repeat", "--repeat", _int_range(1, 10_000)),
    ("request_timeout_s", "--request-timeout", validation.positive),
    ("telemetry_interval_s", "--telemetry-interval", lambda v, w: validation.number(v, w, minimum=0.001, maximum=3600)),
    ("threads", "--threads", _int_range(1, 4096)),
)


def _fraction(value: Any, where: str) -> float:
    return validation.number(value, where, minimum=0, maximum=1)


VALIDITY_RULES: tuple[tuple[str, str, Callable[[Any, str], Any]], ...] = (
    ("min_duration_s", "--min-duration", validation.non_negative),
    ("min_requests", "--min-requests", _int_range(0)),
    ("max_arrival_lag_p99_ms", "--max-arrival-lag-ms", validation.non_negative),
    ("max_failed_pct", "--max-failed-pct", lambda v, w: validation.number(v, w, minimum=0, maximum=100)),
    ("max_rejected_pct", "--max-rejected-pct", lambda v, w: validation.number(v, w, minimum=0, maximum=100)),
    ("max_cancelled_pct", "--max-cancelled-pct", lambda v, w: validation.number(v, w, minimum=0, maximum=100)),
    ("max_throughput_shortfall", "--max-throughput-shortfall", _fraction),
)


def check_options(options: RunOptions) -> None:
    """Every number of the run's options: of the right type, finite, in range (exit 2 naming the option)."""
    for name, option, rule in OPTION_RULES:
        value = getattr(options, name)
        if value is not None:
            rule(value, option)
    for name, option, rule in VALIDITY_RULES:
        rule(getattr(options.validity, name), option)
    for key, value in (options.slo or {}).items():
        validation.positive(value, f"--slo {key}", "an SLO is a number of milliseconds > 0")
    if options.run_id is not None:
        validation.run_id(options.run_id)


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
            number = float(value)
        except ValueError:
            raise UserError(f"--slo {part!r}: {value!r} is not a number of milliseconds") from None
        slo[key] = validation.positive(number, f"--slo {key}", "an SLO is a number of milliseconds > 0")
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
            return validation.count(int(text), f"--set {name}", minimum=-validation.INT64_MAX)
        if isinstance(default, float) or "float" in str(annotation):
            return validation.number(float(text), f"--set {name}", fix=f"give {name} a finite number")
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
    """Per-request CSV, written atomically (a stop never leaves half a file)."""
    fields = [f.name for f in dataclasses.fields(results.RequestRecord) if f.name not in ("itl_s", "chunk_tokens")]
    with atomic_writer(path, newline="") as fh:
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
    interrupts: Interrupts | None = None,
    console: Any = None,
    on_replayed: Callable[[int], None] | None = None,
    name: str | None = None,
    sweep: dict[str, Any] | None = None,
) -> TrialOutcome:
    """One replay, journalled as it runs and saved atomically at the end. A stop request (Ctrl-C, SIGTERM)
    ends the replay between steps; the partial result is saved with status `interrupted`, and no further
    signal can cut that save short. `name`: the entry's folder under OUT/<run_id>/ (default: the strategy,
    with -trial<N> when repeated); `sweep`: a sweep point's description (run.sweep)."""
    config = fit_to_engine(scheduler_config(options.config, {}), engine)
    core = SchedulerCore(config, strategy)
    clock = VirtualClock() if options.engine == "sim" else WallClock()
    if name is None:
        name = strategy if trial is None else f"{strategy}-trial{trial}"
    path = options.out / run_id / name  # the result's entry folder (results.save)
    header = Header(
        run=dataclasses.asdict(
            results.RunInfo(
                id=run_id,
                started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                finished_at=None,
                command=options.command,
                seed=options.seed if options.seed is not None else int(workload.replay.get("seed") or 0),
                engine=options.engine,
                status="interrupted",
                trial=trial,
                label=options.label,
                sweep=sweep,
            )
        ),
        environment=environment,
        model=engine.model_info(),
        workload=workload.info(context),
        strategy={"name": strategy, "config": dataclasses.asdict(config)},
        slo=options.slo,
        validity_rules=dataclasses.asdict(options.validity),
    )
    if hasattr(engine, "reset"):
        engine.reset()
    _reset_torch_peak(engine)
    from inferneo_bench.telemetry.nvml import cuda_device_uuid
    from inferneo_bench.telemetry.sampler import NvmlSampler

    journal = Journal.create(path, header, workload.requests, options.warmup)
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
            on_request_end=journal.request,
            on_steps=journal.watch,
            should_stop=(lambda: interrupts.requested) if interrupts is not None else None,
        )
    finally:
        telemetry = sampler.stop()
        journal.close()
    if on_replayed is not None:  # e.g. complete and stop the progress bar, so that the save's status shows below it
        on_replayed(sum(r.status != "pending" for r in outcome.requests))
    telemetry["torch_peak_allocated_mb"] = _torch_peak_mb(engine)
    telemetry["harness"] = outcome.harness
    if journal.error:
        telemetry["journal"] = journal.error
    result = assemble(
        header,
        outcome.requests,
        outcome.steps,
        telemetry,
        "interrupted" if outcome.interrupted else "completed",
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        {**core.stats(), **core.batching_stats()},
    )
    del outcome  # the result holds the records now; nothing else may keep them alive past the save
    try:
        size = f"{len(result.requests):,} requests, {result.steps.num_steps:,} steps"
        with Activity(console, f"saving {path} ({size})") as act:
            path = results.save(result, path)
        files = [path]
        if options.csv:
            files.append(write_requests_csv(result, path / "requests.csv"))
    except OSError as exc:
        raise UserError(
            f"{path}: cannot write the result ({exc.strerror}); every finished request is in the journal "
            f"{journal.path.name}: free some space, then `inferneo-bench recover {journal.path}`"
        ) from None
    journal.remove()
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
    from inferneo_bench.workload.span import check_span

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
    n = len(workload.requests)
    if options.warmup >= n:
        raise UserError(
            f"--warmup {options.warmup}: the workload has {n} requests, so none would be measured; "
            f"use --warmup below {n}"
        )
    check_span(workload, wall_clock=options.engine != "sim", allow_long=options.allow_long)
    out_tokens = sum(min(r.output_tokens, r.max_tokens or r.output_tokens) for r in workload.requests)
    validation.check_memory(
        n * RUN_BYTES_PER_REQUEST + out_tokens * RUN_BYTES_PER_TOKEN,
        f"replaying {n:,} requests ({out_tokens:,} output tokens) and keeping every record",
        "use fewer requests (--num-requests or --duration)",
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


# Measured (sim, 100k requests of ~34 output tokens: 720 MB peak): a request costs ~2 KB through the replay,
# summary and save, each output token ~100 B more (its ITL float in the record, the JSON text).
RUN_BYTES_PER_REQUEST = 2048
RUN_BYTES_PER_TOKEN = 100
RESULT_BYTES_PER_REQUEST = 1024  # measured: ~350 B of record JSON + ~20 B per output token; with margin
RESULT_BYTES_PER_TOKEN = 24


def result_bytes(workload: Any, options: RunOptions) -> float:
    """Disk the session's result files will take (every strategy and trial), for the free-space check."""
    out = sum(min(r.output_tokens, r.max_tokens or r.output_tokens) for r in workload.requests)
    per_trial = len(workload.requests) * RESULT_BYTES_PER_REQUEST + out * RESULT_BYTES_PER_TOKEN
    return per_trial * len(options.strategies) * options.repeat * (2 if options.csv else 1)


def run_session(
    options: RunOptions,
    console: Any = None,
    on_loaded: Callable[[Any], None] | None = None,
    interrupts: Interrupts | None = None,
) -> tuple[list[TrialOutcome], int]:
    """Every strategy x trial of one session, in a run folder of its own. Returns the outcomes and 0, or the
    exit code of the stop signal (130 Ctrl-C, 143 SIGTERM) when the session was stopped: the trial in progress
    is saved (status interrupted) and the session ends. `on_loaded(workload)` is called before the first
    request (the command prints the workload's span there). `interrupts`: the caller's, to keep handling
    signals while it prints the outcome. With options.target, the trials run against that server
    (client.session)."""
    from inferneo_bench.environment import capture
    from inferneo_bench.runner.progress import ReplayProgress

    check_options(options)
    run_id = options.run_id or new_run_id()
    interrupts = interrupts or Interrupts()
    outcomes: list[TrialOutcome] = []
    if options.target:  # against a server (client.session): same option checks, run folder and signals
        from inferneo_bench.client.session import run_remote_session

        options = dataclasses.replace(options, run_id=run_id)
        with interrupts.installed(), RunDir(options.out, run_id, options.overwrite) as rundir:
            rundir.open()
            try:
                remote, stopped = run_remote_session(options, console)
            except KeyboardInterrupt:
                return outcomes, interrupts.exit_code
            return remote, (interrupts.exit_code if stopped or interrupts.requested else 0)
    with interrupts.installed(), RunDir(options.out, run_id, options.overwrite) as rundir:
        try:  # until the first request, a stop signal raises KeyboardInterrupt: nothing measured, nothing lost
            rundir.open()
            engine = build_engine(options, scheduler_config(options.config, {}).max_num_seqs)
        except KeyboardInterrupt:
            return outcomes, interrupts.exit_code
        try:
            workload, context = load_session_workload(options, engine.max_model_len)
            rundir.check_space(result_bytes(workload, options))
            if console is not None:
                from inferneo_bench.runner.summary_table import intro_lines

                for line in intro_lines(engine.model_info(), workload, options, context):
                    console.print(line)
            if on_loaded is not None:
                on_loaded(workload)
            warm_up(engine)
            environment = capture(torch_runtime=options.engine == "torch")
        except KeyboardInterrupt:
            engine.close()
            return outcomes, interrupts.exit_code
        except BaseException:
            engine.close()
            raise
        trials: list[int | None] = [None] if options.repeat == 1 else list(range(1, options.repeat + 1))
        try:
            with interrupts.deferred():  # from here on a signal only asks the replay loop to stop
                for strategy in options.strategies:
                    for trial in trials:
                        if interrupts.requested:
                            return outcomes, interrupts.exit_code
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
                                interrupts=interrupts,
                                console=console,
                                on_replayed=progress.close,
                            )
                        outcomes.append(outcome)
                        if outcome.result.run.status == "interrupted":
                            return outcomes, interrupts.exit_code
            return outcomes, interrupts.exit_code if interrupts.requested else 0
        finally:
            engine.close()
