"""`inferneo-bench run` and `inferneo-bench demo`: replay a workload through strategies, save, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from inferneo_bench.console import make_console
from inferneo_bench.errors import UserError


def _parse_sets(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set max_num_seqs=32")
        out[name.strip()] = value
    return out


def run(
    strategy: str = typer.Option(
        None,
        "--strategy",
        "-s",
        help="fixed, adaptive, coalescing, latency, throughput, continuous, or all "
        "(comma-separated; the seed's long names work too) (default: adaptive; with --target: the server's).",
        show_default=False,
    ),
    workload: str = typer.Option("default", "--workload", "-w", help="Shipped workload name or a spec/trace path."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Preset (tiny, gpt2, llama-1b, ...) or a local HF folder [default: tiny; "
        "with --engine sim: the profile's model].",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on CUDA)."),
    engine: str = typer.Option("torch", "--engine", help="torch (real model) or sim (profiled simulator)."),
    profile: str | None = typer.Option(None, "--profile", help="Engine profile for --engine sim (name or file)."),
    trace_format: str | None = typer.Option(
        None,
        "--format",
        help="Trace format of a --workload file (default: "
        "detected): azure, burstgpt, mooncake, lengths, splitwise, jsonl.",
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip (and count) malformed trace rows."),
    num_requests: int | None = typer.Option(None, "--num-requests", "-n", help="Replay at most N requests."),
    duration: float | None = typer.Option(None, "--duration", help="Replay the first S seconds of the workload."),
    rate: float | None = typer.Option(None, "--rate", help="Rescale arrivals to this mean rate (req/s)."),
    time_scale: float | None = typer.Option(None, "--time-scale", help="Speed-up factor for arrival times."),
    context_policy: str = typer.Option(
        "reject", "--context-policy", help="Requests longer than the context: reject, truncate or scale."
    ),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="Model context length override."),
    warmup: int = typer.Option(0, "--warmup", help="First N requests run but are excluded from metrics."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for synthetic workloads (default: the spec's) and weights."
    ),
    slo: str | None = typer.Option(None, "--slo", help="Goodput SLOs, e.g. ttft_ms=500,tpot_ms=50,e2el_ms=5000."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Trials per strategy (each its own result file)."),
    sets: list[str] = typer.Option([], "--set", help="SchedulerConfig FIELD=VALUE (repeatable)."),
    out: Path = typer.Option(Path("results"), "--out", help="Output folder; results go to OUT/<run-id>/."),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the run folder (default: time-stamped)."),
    label: str | None = typer.Option(None, "--label", help="Free-form label stored with the results."),
    csv: bool = typer.Option(False, "--csv", help="Also write per-request CSV files."),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", help="Client cancels requests not finished S seconds after arrival."
    ),
    telemetry_interval: float = typer.Option(0.1, "--telemetry-interval", help="NVML sampling period in seconds."),
    min_duration: float = typer.Option(10.0, "--min-duration", help="Validity: minimum run duration (s)."),
    min_requests: int = typer.Option(50, "--min-requests", help="Validity: minimum measured requests."),
    max_arrival_lag: float = typer.Option(50.0, "--max-arrival-lag-ms", help="Validity: max arrival lag p99 (ms)."),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="torch CPU threads. 1 by default: small decode steps lose more to thread "
        "synchronisation than they gain, badly so on a shared machine.",
    ),
    keep_steps: str = typer.Option(
        "250000",
        "--keep-steps",
        help="Keep every engine step's row for runs of up to N steps; longer runs keep step aggregates "
        "(histograms, per-second series, events). 'all': every step, whatever the length.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the result paths."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Benchmark this OpenAI-compatible server (vLLM, SGLang, inferneo-bench serve, ...) instead of the "
        "in-process engine, e.g. http://127.0.0.1:8000. See docs/serving.md.",
    ),
    api: str = typer.Option("completions", "--api", help="With --target: completions or chat."),
    served_model: str | None = typer.Option(
        None, "--served-model", help="With --target: the model name to request (default: the first it lists)."
    ),
    max_concurrency: int | None = typer.Option(
        None, "--max-concurrency", help="With --target: at most N requests in flight (as vLLM's bench)."
    ),
    headers: list[str] = typer.Option(
        [], "--header", help="With --target: extra HTTP header NAME:VALUE (repeatable; values are never stored)."
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="With --target: send 'Authorization: Bearer $VAR' (the key is never stored)."
    ),
    max_client_cpu: float = typer.Option(
        0.8, "--max-client-cpu", help="Validity with --target: max share of one core the client may use."
    ),
) -> None:
    """Replay a workload through batching strategies on a real model; save one result folder per strategy."""
    from inferneo_bench.runner.session import RunOptions, parse_slo, resolve_strategies
    from inferneo_bench.runner.validity import ValidityRules

    if target:
        for flag, value in (("--strategy", strategy), ("--model", model), ("--profile", profile)):
            if value is not None:
                raise UserError(
                    f"{flag} {value}: with --target the server decides (start it with "
                    f"`inferneo-bench serve {flag} ...`); use --served-model to pick one of its models"
                )
        if engine != "torch":
            raise UserError(f"--engine {engine}: with --target the server is the engine; drop --engine")
    elif any(v for v in (served_model, max_concurrency, headers, api_key_env)) or api != "completions":
        raise UserError("--api, --served-model, --max-concurrency, --header and --api-key-env need --target URL")
    options = RunOptions(
        strategies=resolve_strategies(strategy or "adaptive"),
        workload=workload,
        model=model,
        device=device,
        dtype=dtype,
        engine=engine,
        profile=profile,
        num_requests=num_requests,
        trace_format=trace_format,
        skip_bad_rows=skip_bad_rows,
        duration=duration,
        rate=rate,
        time_scale=time_scale,
        context_policy=context_policy,
        max_model_len=max_model_len,
        warmup=warmup,
        seed=seed,
        slo=parse_slo(slo),
        repeat=repeat,
        config=_parse_sets(sets),
        out=out,
        run_id=run_id,
        label=label,
        csv=csv,
        request_timeout_s=request_timeout,
        telemetry_interval_s=telemetry_interval,
        validity=ValidityRules(min_duration, min_requests, max_arrival_lag, max_client_cpu),
        threads=threads,
        keep_steps=_parse_keep_steps(keep_steps),
        target=target,
        api=api,
        served_model=served_model,
        max_concurrency=max_concurrency,
        headers=list(headers),
        api_key_env=api_key_env,
    )
    execute(options, quiet=quiet)


def _parse_keep_steps(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"--keep-steps {text!r}: expected a number of steps (>= 0) or 'all'")
    return value


def demo(
    model: str | None = typer.Option(None, "--model", "-m", help="Model preset or local HF folder [default: tiny]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    engine: str = typer.Option("torch", "--engine", help="torch or sim."),
    profile: str | None = typer.Option(None, "--profile", help="Engine profile for --engine sim (e.g. tiny-cpu)."),
    out: Path = typer.Option(Path("results"), "--out", help="Output folder."),
) -> None:
    """The Inferneo design document's demo: every strategy on the default workload, one table."""
    from inferneo_bench.runner.session import STRATEGIES, RunOptions

    options = RunOptions(
        strategies=list(STRATEGIES),
        workload="default",
        model=model,
        device=device,
        engine=engine,
        profile=profile,
        out=out,
    )
    execute(options, quiet=False, demo_table=True)


def execute(options: Any, quiet: bool, demo_table: bool = False) -> None:
    from inferneo_bench.runner.session import run_session
    from inferneo_bench.runner.summary_table import demo_summary_table, run_summary_table

    console = make_console(120)
    outcomes, interrupted = run_session(options, console=None if quiet else console)
    if quiet:
        for o in outcomes:
            typer.echo(str(o.path))
    else:
        console.print(demo_summary_table(outcomes) if demo_table else run_summary_table(outcomes))
        if options.target:
            from inferneo_bench.client.session import remote_lines

            for line in remote_lines(outcomes):
                console.print(line, highlight=False)
        for o in outcomes:
            console.print(f"saved {o.path}")
    if interrupted:
        typer.echo("interrupted: partial results saved with run.status = interrupted", err=True)
        raise typer.Exit(130)
    if any(o.result.run.status == "failed" for o in outcomes):
        typer.echo("error: the server became unreachable; partial results saved with run.status = failed", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(demo)
