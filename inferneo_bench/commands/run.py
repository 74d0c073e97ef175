"""`inferneo-bench run` and `inferneo-bench demo`: replay a workload through strategies, save, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from inferneo_bench.console import make_console, output_width
from inferneo_bench.errors import UserError

EXIT_INVALID = 4  # every file was saved, but some result is INVALID (run.validity names why)
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    f"[bold]Exit codes[/]: 0 every result VALID; {EXIT_INVALID} saved, but some result INVALID (too short, too few "
    "requests, or the harness fell behind: the lines under the table say which); 2 bad input (nothing ran); "
    f"{EXIT_INTERRUPTED} interrupted (Ctrl-C; 143 for SIGTERM; the partial result is saved); 1 the --target server "
    "became unreachable (the partial result is saved) or an internal error. Killed outright (SIGKILL)? "
    "[cyan]inferneo-bench recover results/<run-id>[/] rebuilds the results from their journals."
)

RUN_EPILOG = f"""\
[bold]Example[/]: every strategy on the default workload (80 requests, tiny model; about 2 minutes on a 2-core \
CPU), then the comparison it prints as the next step:

  inferneo-bench run --strategy all
  inferneo-bench compare results/latest

{EXIT_CODES}
"""

DEMO_EPILOG = f"""\
[bold]Example[/]: the demo on the profiled simulator (seconds; no model runs):

  inferneo-bench demo --engine sim --profile tiny-cpu

{EXIT_CODES}
"""


def _parse_sets(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set max_num_seqs=32")
        out[name.strip()] = value
    return out


def run(
    strategy: list[str] = typer.Option(
        [],
        "--strategy",
        "-s",
        metavar="NAME",
        help="fixed, adaptive, coalescing, latency, throughput, continuous, or all; comma-separated or repeated "
        "(-s fixed -s continuous). The Inferneo design document's long names work too (fixed_size, ...). "
        "(default: adaptive; with --target: the server's)",
        show_default=False,
    ),
    workload: str = typer.Option(
        "default", "--workload", "-w", metavar="NAME|PATH", help="Shipped workload name or a spec/trace file."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="PRESET|DIR",
        help="Preset (tiny, gpt2, llama-1b, ...; random weights) or a local Hugging Face folder "
        "(default: tiny; with --engine sim: the profile's model).",
    ),
    device: str = typer.Option("auto", "--device", "-d", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype", metavar="DTYPE", help="float32, bfloat16 or float16 (default: bfloat16 on CUDA, else float32)."
    ),
    engine: str = typer.Option(
        "torch", "--engine", metavar="torch|sim", help="torch (real model) or sim (profiled simulator)."
    ),
    profile: str | None = typer.Option(
        None, "--profile", metavar="NAME|FILE", help="Engine profile for --engine sim (shipped: tiny-cpu)."
    ),
    trace_format: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="Trace format of a --workload file: azure, burstgpt, mooncake, lengths, splitwise, jsonl "
        "(default: detected).",
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip (and count) malformed trace rows."),
    num_requests: int | None = typer.Option(
        None, "--num-requests", "-n", metavar="N", help="Replay at most N requests."
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Replay the first SECONDS of the workload."
    ),
    rate: float | None = typer.Option(None, "--rate", metavar="REQ/S", help="Rescale arrivals to this mean rate."),
    time_scale: float | None = typer.Option(
        None, "--time-scale", metavar="FACTOR", help="Speed-up factor for arrival times (2 = twice as fast)."
    ),
    context_policy: str = typer.Option(
        "reject",
        "--context-policy",
        metavar="POLICY",
        help="Requests longer than the model context: reject, truncate or scale.",
    ),
    max_model_len: int | None = typer.Option(
        None, "--max-model-len", metavar="TOKENS", help="Model context length override."
    ),
    warmup: int = typer.Option(
        0, "--warmup", metavar="N", help="First N requests run but are excluded from the metrics."
    ),
    seed: int | None = typer.Option(
        None, "--seed", metavar="N", help="Seed of synthetic workloads (default: the spec's) and of random weights."
    ),
    slo: str | None = typer.Option(
        None,
        "--slo",
        metavar="NAME=MS,...",
        help="Goodput SLOs, e.g. ttft_ms=500,tpot_ms=50,e2el_ms=5000 (adds goodput to the table).",
    ),
    repeat: int = typer.Option(1, "--repeat", min=1, metavar="N", help="Trials per strategy, each its own file."),
    sets: list[str] = typer.Option(
        [], "--set", metavar="FIELD=VALUE", help="SchedulerConfig field, e.g. max_num_seqs=64 (repeatable)."
    ),
    out: Path = typer.Option(
        Path("results"), "--out", "-o", metavar="DIR", help="Output folder; results go to DIR/<run-id>/."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", metavar="NAME", help="Name of the run folder (default: time-stamped)."
    ),
    label: str | None = typer.Option(None, "--label", metavar="TEXT", help="Free-form label stored with the results."),
    csv: bool = typer.Option(False, "--csv", help="Also write a per-request CSV beside each result file."),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", metavar="SECONDS", help="Cancel requests not finished SECONDS after arrival."
    ),
    telemetry_interval: float = typer.Option(
        0.1, "--telemetry-interval", metavar="SECONDS", help="NVML sampling period."
    ),
    min_duration: float = typer.Option(10.0, "--min-duration", metavar="SECONDS", help="Validity: shortest valid run."),
    min_requests: int = typer.Option(50, "--min-requests", metavar="N", help="Validity: fewest measured requests."),
    max_arrival_lag: float = typer.Option(
        50.0, "--max-arrival-lag-ms", metavar="MS", help="Validity: largest arrival lag p99."
    ),
    max_failed_pct: float = typer.Option(
        1.0, "--max-failed-pct", metavar="PCT", help="Validity: most failed requests (every unsuccessful one, as vLLM)."
    ),
    max_rejected_pct: float = typer.Option(
        1.0, "--max-rejected-pct", metavar="PCT", help="Validity: most rejected requests (% of measured)."
    ),
    max_cancelled_pct: float = typer.Option(
        1.0, "--max-cancelled-pct", metavar="PCT", help="Validity: most cancelled requests (% of measured)."
    ),
    max_shortfall: float = typer.Option(
        0.10,
        "--max-throughput-shortfall",
        metavar="FRACTION",
        help="Validity: saturated when the served rate falls short of the offered rate by more (1 turns it off).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Clear an existing OUT/<run-id>/ first (a folder holding results is refused)."
    ),
    allow_long: bool = typer.Option(
        False, "--allow-long", help="Replay a workload spanning > 24 h on the wall clock, or with an outlier gap."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        metavar="N",
        help="torch CPU threads. 1 by default: small decode steps lose more to thread synchronisation than they "
        "gain, badly so on a shared machine.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress or table: the result paths on stdout, INVALID lines on stderr."
    ),
    keep_steps: str = typer.Option(
        "250000",
        "--keep-steps",
        metavar="N|all",
        help="Keep every engine step's row for runs of up to N steps; longer runs keep step aggregates "
        "(histograms, per-second series, events). 'all': every step, whatever the length.",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        metavar="URL",
        help="Benchmark this OpenAI-compatible server (vLLM, SGLang, inferneo-bench serve, ...) instead of the "
        "in-process engine, e.g. http://127.0.0.1:8000. See docs/serving.md.",
    ),
    api: str = typer.Option(
        "completions", "--api", metavar="completions|chat", help="With --target: completions or chat."
    ),
    served_model: str | None = typer.Option(
        None,
        "--served-model",
        metavar="NAME",
        help="With --target: the model name to request (default: the first it lists).",
    ),
    max_concurrency: int | None = typer.Option(
        None, "--max-concurrency", metavar="N", help="With --target: at most N requests in flight (as vLLM's bench)."
    ),
    headers: list[str] = typer.Option(
        [],
        "--header",
        metavar="NAME:VALUE",
        help="With --target: extra HTTP header NAME:VALUE (repeatable; values are never stored).",
    ),
    api_key_env: str | None = typer.Option(
        None,
        "--api-key-env",
        metavar="VAR",
        help="With --target: send 'Authorization: Bearer $VAR' (the key is never stored).",
    ),
    max_client_cpu: float = typer.Option(
        0.8,
        "--max-client-cpu",
        metavar="SHARE",
        help="Validity with --target: max share of one core the client may use.",
    ),
) -> None:
    """Replay a workload through batching strategies on a real model (or the simulator); save the results."""
    from inferneo_bench.runner.session import RunOptions, parse_slo, resolve_strategies
    from inferneo_bench.runner.validity import ValidityRules

    if target:
        for flag, value in (("--strategy", ",".join(strategy) or None), ("--model", model), ("--profile", profile)):
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
        strategies=resolve_strategies(",".join(strategy) or "adaptive"),
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
        validity=ValidityRules(
            min_duration_s=min_duration,
            min_requests=min_requests,
            max_arrival_lag_p99_ms=max_arrival_lag,
            max_client_cpu_frac=max_client_cpu,
            max_failed_pct=max_failed_pct,
            max_rejected_pct=max_rejected_pct,
            max_cancelled_pct=max_cancelled_pct,
            max_throughput_shortfall=max_shortfall,
        ),
        threads=threads,
        overwrite=overwrite,
        allow_long=allow_long,
        keep_steps=_parse_keep_steps(keep_steps),
        target=target,
        api=api,
        served_model=served_model,
        max_concurrency=max_concurrency,
        headers=list(headers),
        api_key_env=api_key_env,
    )
    warn_small_repeat(repeat, engine)
    execute(options, quiet=quiet)


def warn_small_repeat(repeat: int, engine: str) -> None:
    """Wall-clock trials are noisy: `check` decides with a one-sided Mann-Whitney test, whose smallest possible
    p-value with n trials per side is 1 / C(2n, n). Below the n where that drops under the gate's alpha, no
    change can ever be significant: say so before the run, not after."""
    if engine == "sim" or repeat <= 1:
        return
    from inferneo_bench.regress import Settings, min_trials_for_alpha

    alpha = Settings().alpha
    need = min_trials_for_alpha(alpha)
    if repeat < need:
        import math

        typer.echo(
            f"warning: --repeat {repeat}: with {repeat} trials per side the smallest p-value `check` can reach is "
            f"{1 / math.comb(2 * repeat, repeat):.3f}, not below its alpha {alpha:g}: no change can be significant; "
            f"use --repeat {need} or more",
            err=True,
        )


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
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="PRESET|DIR", help="Model preset or local HF folder (default: tiny)."
    ),
    device: str = typer.Option("auto", "--device", "-d", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    engine: str = typer.Option("torch", "--engine", metavar="torch|sim", help="torch or sim."),
    profile: str | None = typer.Option(
        None, "--profile", metavar="NAME|FILE", help="Engine profile for --engine sim (e.g. tiny-cpu)."
    ),
    out: Path = typer.Option(Path("results"), "--out", "-o", metavar="DIR", help="Output folder."),
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
    """Run the session, then print: the summary table (or, with quiet, the result paths), what did not complete,
    validity, the files written, `latest`, and the next command. Exit 4 when a result is INVALID, 130 (143 for
    SIGTERM) when interrupted. Signals stay handled while the outcome is printed (everything is saved by then)."""
    from inferneo_bench import run_folders
    from inferneo_bench.runner.session import run_session
    from inferneo_bench.runner.signals import Interrupts
    from inferneo_bench.runner.summary_table import demo_summary_table, run_summary_table, validity_lines

    console = make_console(120)
    err = make_console(120, stderr=True)

    def loaded(workload: Any) -> None:
        if not quiet:
            from inferneo_bench.workload.span import describe_seconds, span_of

            span, gap, _ = span_of(workload)
            clock = "virtual clock" if options.engine == "sim" else "wall clock: the replay lasts about as long"
            console.print(
                f"arrivals span {describe_seconds(span)} (largest gap {describe_seconds(gap)}; {clock})",
                highlight=False,
                markup=False,
            )

    interrupts = Interrupts()
    with interrupts.installed():
        outcomes, interrupted = run_session(
            options, console=None if quiet else console, on_loaded=loaded, interrupts=interrupts
        )
        with interrupts.deferred():  # a signal while the outcome is printed changes nothing: all is saved
            invalid = [o for o in outcomes if not o.result.run.validity.get("valid")]
            if quiet:
                for o in outcomes:
                    typer.echo(str(o.path))
                for line in validity_lines(invalid):
                    err.print(line)
            else:
                width = output_width(120)
                table = demo_summary_table if demo_table else run_summary_table
                console.print(table(outcomes, width=width))
                if options.target:
                    from inferneo_bench.client.session import remote_lines

                    for line in remote_lines(outcomes):
                        console.print(line, highlight=False)
            if outcomes:
                run_dir = outcomes[0].path.parent
                latest = run_folders.mark_latest(run_dir.parent, run_dir.name)
                if not quiet:
                    files = sum(len(o.files or [o.path]) for o in outcomes)
                    console.print(
                        f"wrote {files} file{'s' * (files != 1)} to {run_dir}/; {latest} -> {run_dir.name}",
                        highlight=False,
                    )
                    console.print(f"next: inferneo-bench compare {run_dir}", style="bold", highlight=False)
    interrupted = interrupted or (interrupts.exit_code if interrupts.requested else 0)
    if interrupted:
        saved = "partial results saved with run.status = interrupted" if outcomes else "nothing was measured"
        if outcomes and all(o.result.run.status == "completed" for o in outcomes):
            saved = f"stopped after {len(outcomes)} finished trial(s), all saved"
        typer.echo(f"interrupted: {saved}", err=True)
        raise typer.Exit(interrupted if interrupted is not True else EXIT_INTERRUPTED)
    if any(o.result.run.status == "failed" for o in outcomes):
        typer.echo("error: the server became unreachable; partial results saved with run.status = failed", err=True)
        raise typer.Exit(1)
    if invalid:
        if not quiet:
            fixes = invalid_fixes(invalid)
            console.print(
                f"{len(invalid)} of {len(outcomes)} results INVALID (exit {EXIT_INVALID})"
                + (f"; {fixes}" if fixes else ""),
                style="red",
                highlight=False,
            )
        raise typer.Exit(EXIT_INVALID)


# What usually fixes each failed validity check (runner/validity.py names them), in the order printed.
FIXES = {
    "not_saturated": "saturated: lower the rate (--rate, --time-scale) or find the capacity with "
    "`inferneo-bench sweep`",
    "max_rejected_share": "rejected: --context-policy truncate, or a model with a longer context",
    "min_duration": "too short: a longer run (--num-requests, --duration)",
    "min_requests": "too few requests: --num-requests",
    "harness_kept_up": "harness lag: a quieter machine (the replay fell behind its arrivals)",
    "max_cancelled_share": "cancelled: a longer --request-timeout",
    "client_kept_up": "client-bound: a lower rate or a faster client machine",
}


def invalid_fixes(outcomes: list[Any]) -> str:
    """The usual fix for each kind of failed check among the INVALID outcomes, one clause each."""
    failed = {name for o in outcomes for name, ok in o.result.run.validity.get("checks", {}).items() if not ok}
    return "; ".join(fix for name, fix in FIXES.items() if name in failed)


def register(app: typer.Typer) -> None:
    app.command(epilog=RUN_EPILOG)(run)
    app.command(epilog=DEMO_EPILOG)(demo)
