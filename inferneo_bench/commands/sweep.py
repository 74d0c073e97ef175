"""`inferneo-bench sweep`: each strategy's capacity under an SLO, and its latency-against-load curve."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from inferneo_bench.console import make_console

FORMATS = ("table", "markdown", "json")


def sweep(
    strategy: str = typer.Option(
        "all", "--strategy", "-s", help="fixed, adaptive, coalescing, latency, throughput, continuous, or all."
    ),
    workload: str = typer.Option("chat", "--workload", "-w", help="Shipped workload name or a spec/trace path."),
    slo: str | None = typer.Option(
        None, "--slo", help="The SLO every request must meet, e.g. ttft_ms=2000,tpot_ms=100[,e2el_ms=..] (required)."
    ),
    attainment: float = typer.Option(0.9, "--attainment", help="Target share of requests meeting every SLO."),
    rates: str = typer.Option(
        "auto", "--rates", help="Offered rates R1,R2,.. (req/s), or auto: saturation, coarse spread, bisection."
    ),
    precision: float = typer.Option(0.02, "--precision", help="auto: stop when the bracket is within this share."),
    max_points: int = typer.Option(12, "--max-points", help="auto: most points per strategy (saturation included)."),
    engine: str = typer.Option("torch", "--engine", help="torch (real model) or sim (profiled simulator)."),
    profile: str | None = typer.Option(None, "--profile", help="Engine profile for --engine sim (name or file)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Preset or local HF folder (default: tiny; with --engine sim: the profile's)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on CUDA)."),
    num_requests: int | None = typer.Option(None, "--num-requests", "-n", help="Replay at most N requests."),
    duration: float | None = typer.Option(None, "--duration", help="Replay the first S seconds of the workload."),
    context_policy: str = typer.Option(
        "reject", "--context-policy", help="Requests longer than the context: reject, truncate or scale."
    ),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="Model context length override."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for synthetic workloads and weights."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Run each strategy's search N times (95% interval)."),
    sets: list[str] = typer.Option([], "--set", help="SchedulerConfig FIELD=VALUE (repeatable)."),
    out: Path = typer.Option(Path("results"), "--out", help="Output folder; points go to OUT/<run-id>/<strategy>/."),
    run_id: str | None = typer.Option(None, "--run-id", help="Name of the sweep folder (default: time-stamped)."),
    label: str | None = typer.Option(None, "--label", help="Free-form label stored with every point."),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", help="Client cancels requests not finished S seconds after arrival."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads (1: steadiest for small models)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="--engine sim: sweep N strategies in parallel processes."),
    report: Path | None = typer.Option(
        None, "--report", help="Re-render the report of a saved sweep folder (no new measurement)."
    ),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json (what is printed)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the PNG plots into <sweep folder>/plots/."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Find each strategy's capacity: the highest offered rate it sustains with SLO attainment >= the target."""
    from inferneo_bench.errors import UserError
    from inferneo_bench.sweep import report as reporting

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
    if report is not None:
        points, notes = reporting.load_points([report])
        folder = report if report.is_dir() else report.parent
        rendered = reporting.build(points, notes, folder)
        _finish(rendered, folder, fmt, plots, interrupted=False)
        return

    from inferneo_bench.commands.run import _parse_sets
    from inferneo_bench.runner.session import RunOptions, parse_slo, resolve_strategies
    from inferneo_bench.sweep.runner import SweepOptions, parse_rates, run_sweep
    from inferneo_bench.sweep.search import SearchSettings

    parsed_slo = parse_slo(slo)
    if not parsed_slo:
        raise UserError("sweep needs --slo, e.g. --slo ttft_ms=2000,tpot_ms=100: capacity is the load that meets it")
    options = SweepOptions(
        run=RunOptions(
            strategies=resolve_strategies(strategy),
            workload=workload,
            model=model,
            device=device,
            dtype=dtype,
            engine=engine,
            profile=profile,
            num_requests=num_requests,
            duration=duration,
            context_policy=context_policy,
            max_model_len=max_model_len,
            seed=seed,
            slo=parsed_slo,
            repeat=repeat,
            config=_parse_sets(sets),
            out=out,
            run_id=run_id,
            label=label,
            request_timeout_s=request_timeout,
            threads=threads,
        ),
        rates=parse_rates(rates),
        settings=SearchSettings(attainment=attainment, precision=precision, max_points=max_points),
        jobs=jobs,
    )
    console = make_console(120)
    outcome = run_sweep(options, console=None if quiet else console)
    rendered = reporting.build(outcome.points, outcome.notes, outcome.folder)
    _finish(rendered, outcome.folder, fmt, plots, outcome.interrupted)


def _finish(rendered, folder: Path, fmt: str, plots: bool, interrupted: bool) -> None:
    from inferneo_bench.sweep import report as reporting

    written = reporting.write(rendered, folder, plots=plots)
    if fmt == "markdown":
        sys.stdout.write(reporting.to_markdown(rendered))
    elif fmt == "json":
        import json

        sys.stdout.write(json.dumps(reporting.to_dict(rendered), indent=1, allow_nan=False) + "\n")
    else:
        make_console(160).print(reporting.to_rich(rendered))
    typer.echo(f"wrote {', '.join(str(p) for p in written[:2])} and {len(written) - 2} plot(s)", err=True)
    if interrupted:
        typer.echo("interrupted: the points measured so far are saved (the last: run.status interrupted)", err=True)
        raise typer.Exit(130)


HELP = " ".join(
    """Find each strategy's capacity: the highest offered rate it sustains with SLO attainment >= the target
    (--attainment, 0.9), and its latency-against-load curve. Each point is one replay of the workload with its
    arrivals rescaled to the offered rate, saved as a normal result file (OUT/<run-id>/<strategy>/rate-<R>.json).
    The report (sweep.json, sweep.md, plots/) is built from the saved points: `sweep --report DIR` and
    `compare DIR` re-render it. See docs/sweep.md.""".split()
)


def register(app: typer.Typer) -> None:
    app.command(help=HELP, short_help="Each strategy's capacity under an SLO, and its latency-against-load curve.")(
        sweep
    )
