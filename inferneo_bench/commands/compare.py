"""`inferneo-bench compare`: result files side by side, deltas against a baseline, plots, the seed's claims."""

from __future__ import annotations

import sys

import typer

FORMATS = ("table", "markdown", "csv", "json")


def compare(
    paths: list[str] = typer.Argument(..., help="Result files and/or run folders (results/<run-id>/)."),
    baseline: str = typer.Option(None, "--baseline", help="Column to compare against (default fixed_size if present)."),
    metrics: str = typer.Option(None, "--metrics", help="Comma-separated summary keys for the rows (and 'validity')."),
    fmt: str = typer.Option("table", "--format", help="table | markdown | csv | json"),
    plots: str = typer.Option(None, "--plots", help="Write PNG plots into this folder."),
    svg: bool = typer.Option(False, "--svg", help="With --plots, also write SVG."),
    force: bool = typer.Option(False, "--force", help="Compare results of different workloads/models/devices/engines."),
    seed_table: bool = typer.Option(False, "--seed-table", help="Check the Inferneo design document's claims."),
    width: int = typer.Option(None, "--width", help="Table width in characters (default: the terminal's)."),
) -> None:
    """Compare result files: one column per strategy (trials as median and min-max), deltas vs the baseline."""
    from inferneo_bench.errors import UserError
    from inferneo_bench.report import compat, tables
    from inferneo_bench.results import find_result_files, load_summary

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
    if svg and not plots:
        raise UserError("--svg needs --plots DIR (the folder to write the plots into)")
    files = find_result_files(paths)
    results = [load_summary(p) for p in files]  # the tables need no records; plots read theirs when drawn
    warnings = compat.check(results, files, force=force)
    for line in warnings:
        typer.echo(line, err=True)
    comp = tables.compare(results, files, tables.parse_metrics(metrics, results), baseline, warnings)

    if seed_table:
        from inferneo_bench.report import seed

        checks = seed.check_claims(results)
        renderers = {"markdown": seed.to_markdown, "csv": seed.to_csv, "json": seed.to_json}
        if fmt in renderers:
            sys.stdout.write(renderers[fmt](checks))
        else:
            _print(seed.to_rich(checks), width)
    elif fmt == "markdown":
        sys.stdout.write(tables.to_markdown(comp))
    elif fmt == "csv":
        sys.stdout.write(tables.to_csv(comp))
    elif fmt == "json":
        sys.stdout.write(tables.to_json(comp))
    else:
        _print(tables.to_rich(comp, width=_width(width)), width)
        for note in comp.notes:
            typer.echo(f"note: {note}")

    if plots:
        from inferneo_bench.report import plots as plotting

        written = plotting.save_all(comp.columns, plots, svg=svg, baseline=comp.baseline)
        typer.echo(f"wrote {len(written)} plot files to {plots}", err=True)


def _width(width: int | None) -> int:
    """--width, else the terminal's, else 160 columns for pipes and CI logs (not Rich's 80)."""
    from inferneo_bench.console import make_console

    return width or make_console(160).width


def _print(renderable: object, width: int | None) -> None:
    from rich.console import Console

    Console(file=sys.stdout, width=_width(width)).print(renderable)


def register(app: typer.Typer) -> None:
    app.command()(compare)
