"""`inferneo-bench sweep`: each strategy's capacity under an SLO, and its latency-against-load curve."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from inferneo_bench.console import make_console

FORMATS = ("table", "markdown", "json")


def sweep(
    strategy: str = typer.Option(
        "all",
        "--strategy",
        "-s",
        metavar="NAME",
        help="fixed, adaptive, coalescing, latency, throughput, continuous, or all (comma-separated).",
    ),
    workload: str = typer.Option(
        "chat", "--workload", "-w", metavar="NAME|PATH", help="Shipped workload name or a spec/trace file."
    ),
    slo: str | None = typer.Option(
        None,
        "--slo",
        metavar="NAME=MS,...",
        help="The SLO every request must meet, e.g. ttft_ms=2000,tpot_ms=100 (also e2el_ms); required.",
    ),
    attainment: float = typer.Option(
        0.9, "--attainment", metavar="SHARE", help="Target share of requests meeting every SLO."
    ),
    rates: str = typer.Option(
        "auto",
        "--rates",
        metavar="R1,R2,..|auto",
        help="Offered rates in req/s, or auto: saturation point, coarse spread, bisection.",
    ),
    precision: float = typer.Option(
        0.02, "--precision", metavar="SHARE", help="auto: stop when the capacity's bracket is within this share."
    ),
    max_points: int = typer.Option(
        12, "--max-points", metavar="N", help="auto: most points per strategy, the saturation point included."
    ),
    engine: str = typer.Option("torch", "--engine", metavar="torch|sim", help="torch (real model) or sim (simulator)."),
    profile: str | None = typer.Option(
        None, "--profile", metavar="NAME|FILE", help="Engine profile for --engine sim (shipped: tiny-cpu)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="PRESET|DIR",
        help="Model preset or local HF folder (default: tiny; with --engine sim: the profile's).",
    ),
    device: str = typer.Option("auto", "--device", "-d", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(
        None, "--dtype", metavar="DTYPE", help="float32, bfloat16 or float16 (default: bfloat16 on CUDA)."
    ),
    num_requests: int | None = typer.Option(
        None, "--num-requests", "-n", metavar="N", help="Replay at most N requests at every point."
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Replay the first SECONDS of the workload (before rescaling)."
    ),
    context_policy: str = typer.Option(
        "reject",
        "--context-policy",
        metavar="POLICY",
        help="Requests longer than the model context: reject (they count as SLO misses), truncate or scale.",
    ),
    max_model_len: int | None = typer.Option(
        None, "--max-model-len", metavar="TOKENS", help="Model context length override."
    ),
    seed: int | None = typer.Option(None, "--seed", metavar="N", help="Seed of synthetic workloads and weights."),
    repeat: int = typer.Option(
        1, "--repeat", min=1, metavar="N", help="Run each strategy's search N times: the capacity's 95% interval."
    ),
    sets: list[str] = typer.Option(
        [], "--set", metavar="FIELD=VALUE", help="SchedulerConfig field, e.g. max_num_seqs=64 (repeatable)."
    ),
    out: Path = typer.Option(
        Path("results"), "--out", metavar="DIR", help="Output folder; points go to OUT/<run-id>/<strategy>/rate-<R>/."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", metavar="NAME", help="Name of the sweep folder (default: time-stamped)."
    ),
    label: str | None = typer.Option(None, "--label", metavar="TEXT", help="Free-form label stored with every point."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Clear an existing sweep folder first."),
    request_timeout: float | None = typer.Option(
        None,
        "--request-timeout",
        metavar="SECONDS",
        help="Client cancels requests not finished this long after arrival.",
    ),
    threads: int = typer.Option(
        1, "--threads", min=1, metavar="N", help="torch CPU threads (1: steadiest for small models)."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, metavar="N", help="--engine sim: sweep N strategies in parallel processes."
    ),
    report: Path | None = typer.Option(
        None, "--report", metavar="DIR", help="Re-render a saved sweep folder's report (no new measurement)."
    ),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table, markdown or json (what is printed)."),
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
            overwrite=overwrite,
            request_timeout_s=request_timeout,
            threads=threads,
        ),
        rates=parse_rates(rates),
        settings=SearchSettings(attainment=attainment, precision=precision, max_points=max_points),
        jobs=jobs,
    )
    console = make_console(120)
    outcome = run_sweep(options, console=None if quiet else console)
    if outcome.points:
        from inferneo_bench.run_folders import mark_latest

        mark_latest(out, outcome.folder.name)  # `compare results/latest` re-renders this sweep
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
    arrivals rescaled to the offered rate, saved as a normal result file (OUT/<run-id>/<strategy>/rate-<R>/).
    The report (sweep.json, sweep.md, plots/) is built from the saved points: `sweep --report DIR` and
    `compare DIR` re-render it. See docs/sweep.md.""".split()
)


SWEEP_EPILOG = """\
[bold]Example[/]: every strategy's capacity on the chat workload, simulated (about 2 minutes on a 2-core CPU), then
the report again from the saved points:

  inferneo-bench sweep --strategy all --workload chat --engine sim --profile tiny-cpu --slo ttft_ms=2000,tpot_ms=100
  inferneo-bench compare results/latest

Exit codes: 0 done; 2 bad input (nothing ran); 130 interrupted (Ctrl-C; 143 for SIGTERM; the points measured so far
are saved and reported).
"""


def register(app: typer.Typer) -> None:
    short = "Each strategy's capacity under an SLO, and its latency-against-load curve."
    app.command(help=HELP, short_help=short, epilog=SWEEP_EPILOG)(sweep)
