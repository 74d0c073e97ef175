"""`inferneo-bench workloads list|show|convert`: inspect shipped workloads and traces, convert to JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from inferneo_bench.console import make_console

workloads_app = typer.Typer(
    name="workloads",
    help="List, inspect and convert workloads (shipped specs and trace files).",
    epilog="[bold]Example[/]: [cyan]inferneo-bench workloads list[/], then [cyan]inferneo-bench workloads show "
    "chat[/].",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_FORMAT_HELP = "Trace format (default: detected): azure, burstgpt, mooncake, lengths, splitwise, jsonl."


def _load(
    target: str,
    fmt: str | None,
    skip_bad_rows: bool,
    model: str | None,
    num_requests: int | None,
    duration: float | None,
    rate: float | None,
    time_scale: float | None,
    seed: int | None,
):
    from inferneo_bench.workload import load_workload

    return load_workload(
        target,
        format=fmt,
        skip_bad_rows=skip_bad_rows or None,
        model_filter=model,
        num_requests=num_requests,
        duration_s=duration,
        rate=rate,
        time_scale=time_scale,
        seed=seed,
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}/s"


@workloads_app.command("list", epilog="[bold]Example[/]: inferneo-bench workloads list --json")
def list_workloads(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The shipped workloads: name, source, requests, duration, mean arrival rate."""
    from inferneo_bench.errors import UserError
    from inferneo_bench.workload import available, load_workload, workloads_dir

    rows = []
    for name in available():
        try:
            w = load_workload(name)
            rows.append(
                {
                    "name": name,
                    "format": w.format,
                    "source": w.source,
                    "num_requests": w.num_requests,
                    "duration_s": round(w.duration_s, 3),
                    "mean_rate": None if w.mean_rate is None else round(w.mean_rate, 4),
                    "description": w.description,
                }
            )
        except UserError as exc:
            rows.append({"name": name, "error": str(exc)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise UserError(f"no workload specs found in {workloads_dir()} (set INFERNEO_BENCH_WORKLOADS)")
    from rich.table import Table

    table = Table(title=f"workloads ({workloads_dir()})")
    for col, justify in (("name", "left"), ("format", "left"), ("requests", "right"), ("duration", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("mean rate", justify="right")
    table.add_column("source", overflow="fold", ratio=1)
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], "-", "-", "-", "-", f"[red]error: {r['error']}[/red]")
        else:
            table.add_row(
                r["name"],
                r["format"],
                f"{r['num_requests']:,}",
                f"{r['duration_s']:,.1f} s",
                _rate(r["mean_rate"]),
                r["source"],
            )
    console = make_console(160)
    console.print(table)


def _bars(hist: dict[str, list[float]], width: int = 30) -> list[str]:
    counts, edges = hist["counts"], hist["edges"]
    top = max(counts) or 1
    return [
        f"  {edges[i]:>9,.0f} - {edges[i + 1]:>9,.0f} | {'#' * round(width * c / top):<{width}} {c:,}"
        for i, c in enumerate(counts)
    ]


_OPTS = {
    "fmt": typer.Option(None, "--format", metavar="FORMAT", help=_FORMAT_HELP),
    "skip": typer.Option(False, "--skip-bad-rows", help="Skip malformed rows (counted) instead of failing."),
    "model": typer.Option(None, "--model-filter", metavar="NAME", help="BurstGPT: keep rows of this Model only."),
    "num": typer.Option(None, "--num-requests", "-n", metavar="N", help="Synthetic: generate N; trace: the first N."),
    "dur": typer.Option(None, "--duration", metavar="SECONDS", help="Keep arrivals in the first SECONDS."),
    "rate": typer.Option(None, "--rate", metavar="REQ/S", help="Arrival rate (synthetic) or target mean (trace)."),
    "ts": typer.Option(None, "--time-scale", metavar="FACTOR", help="Arrival speed-up (2 = twice as fast)."),
    "seed": typer.Option(None, "--seed", metavar="N", help="Seed of generated arrivals and lengths."),
}


@workloads_app.command("show", epilog="[bold]Example[/]: inferneo-bench workloads show azure-conv --duration 600")
def show(
    target: str = typer.Argument(..., metavar="NAME|PATH", help="Shipped workload, spec YAML or trace file."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    fmt: str | None = _OPTS["fmt"],
    skip_bad_rows: bool = _OPTS["skip"],
    model: str | None = _OPTS["model"],
    num_requests: int | None = _OPTS["num"],
    duration: float | None = _OPTS["dur"],
    rate: float | None = _OPTS["rate"],
    time_scale: float | None = _OPTS["ts"],
    seed: int | None = _OPTS["seed"],
) -> None:
    """Count, duration, mean rate, inter-arrival CV, length percentiles and histograms of a workload."""
    from inferneo_bench.workload.describe import describe

    w = _load(target, fmt, skip_bad_rows, model, num_requests, duration, rate, time_scale, seed)
    d = describe(w)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    cv = d["interarrival_cv"]
    lines = [
        f"workload   {d['name']} ({d['format']})",
        f"source     {d['source'] or '-'}",
        f"requests   {d['num_requests']:,}",
        f"duration   {d['duration_s']:,.3f} s (first to last arrival)",
        f"mean rate  {_rate(d['mean_rate'])}   inter-arrival CV {'-' if cv is None else f'{cv:.3f}'}",
        f"hash       {d['content_hash']}",
    ]
    counted = {k: v for k, v in d["stats"].items() if v and k != "rows_read"}
    if d["stats"]:
        lines.append(f"rows read  {d['stats'].get('rows_read', 0):,}" + (f"   {counted}" if counted else ""))
    lines.append(f"replay     {d['replay']}")
    lines.append(f"priorities {d['priorities']}")
    lines.append("")
    lines.append(f"{'tokens':<8} {'min':>8} {'mean':>10} {'p50':>10} {'p90':>10} {'p99':>10} {'max':>8}")
    for key in ("prompt_tokens", "output_tokens"):
        s = d[key]
        lines.append(
            f"{key.split('_')[0]:<8} {s['min']:>8,} {s['mean']:>10,.1f} {s['p50']:>10,.1f} "
            f"{s['p90']:>10,.1f} {s['p99']:>10,.1f} {s['max']:>8,}"
        )
    for key in ("prompt_tokens", "output_tokens"):
        lines.append("")
        lines.append(f"{key} histogram")
        lines.extend(_bars(d["histograms"][key]))
    typer.echo("\n".join(lines))


@workloads_app.command(
    "convert", epilog="[bold]Example[/]: inferneo-bench workloads convert my-trace.csv --format burstgpt -o my.jsonl"
)
def convert(
    target: str = typer.Argument(..., metavar="NAME|PATH", help="Shipped workload, spec YAML or trace file."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Output JSONL file (the project's format)."),
    fmt: str | None = _OPTS["fmt"],
    skip_bad_rows: bool = _OPTS["skip"],
    model: str | None = _OPTS["model"],
    num_requests: int | None = _OPTS["num"],
    duration: float | None = _OPTS["dur"],
    rate: float | None = _OPTS["rate"],
    time_scale: float | None = _OPTS["ts"],
    seed: int | None = _OPTS["seed"],
) -> None:
    """Write a workload (after any replay options) as inferneo-bench JSONL, which loads back identically.

    The file is a header line, then one request per line; loading it gives the same requests and content hash."""
    from inferneo_bench.workload.jsonl import write_jsonl

    w = _load(target, fmt, skip_bad_rows, model, num_requests, duration, rate, time_scale, seed)
    write_jsonl(w, out)
    typer.echo(f"wrote {w.num_requests:,} requests to {out} ({w.content_hash})")


def register(app: typer.Typer) -> None:
    app.add_typer(workloads_app, name="workloads")
