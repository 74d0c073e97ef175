"""`inferneo-bench compare`: result files side by side, deltas against a baseline, plots, and the Inferneo design
document's performance claims checked."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

FORMATS = ("table", "markdown", "csv", "json")

EPILOG = """\
[bold]Example[/]: the run that [cyan]inferneo-bench run --strategy all[/] just made, with plots:

  inferneo-bench compare results/latest --plots plots/

A folder that holds several runs ([cyan]results/[/]) is listed, not loaded: name one run folder. \
[bold]Exit codes[/]: 0 compared; 2 bad input (missing or corrupt file, a folder of several runs, results that are \
not comparable without --force).
"""


def compare(
    paths: list[str] = typer.Argument(
        ..., metavar="PATH", help="Run folders (results/<run-id>, results/latest) and/or result files."
    ),
    baseline: str = typer.Option(
        None, "--baseline", "-b", metavar="NAME", help="Column to compare against (default: fixed_size if present)."
    ),
    metrics: str = typer.Option(
        None, "--metrics", metavar="KEY,KEY", help="Rows: summary keys (and 'validity'), comma-separated."
    ),
    fmt: str = typer.Option("table", "--format", metavar="table|markdown|csv|json", help="Output format."),
    plots: str = typer.Option(None, "--plots", "-p", metavar="DIR", help="Write PNG plots into this folder."),
    svg: bool = typer.Option(False, "--svg", help="With --plots, also write SVG."),
    force: bool = typer.Option(
        False, "--force", help="Compare results of different workloads, models, devices, engines, SLOs or warm-up."
    ),
    claims: bool = typer.Option(
        False, "--claims", help="Check the Inferneo design document's claimed improvements on these results."
    ),
    seed_table: bool = typer.Option(False, "--seed-table", hidden=True, help="Old name of --claims."),
    width: int = typer.Option(
        None, "--width", metavar="COLUMNS", help="Table width (default: the terminal's, or $COLUMNS)."
    ),
) -> None:
    """Compare runs side by side: one column per strategy, changes against a baseline, best starred, plots."""
    from rich.text import Text

    from inferneo_bench.errors import UserError
    from inferneo_bench.report import compat, tables

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
    if svg and not plots:
        raise UserError("--svg needs --plots DIR (the folder to write the plots into)")
    from inferneo_bench import run_folders
    from inferneo_bench.sweep import report as sweep_report

    resolved = [str(run_folders.resolve(p)) for p in paths]
    if sweep_report.is_sweep(resolved):  # a sweep: its capacity report (sweep --report renders the same)
        _compare_sweep(resolved, fmt, plots, width)
        return
    files, results = load_results(_pick_runs(paths))
    warnings = compat.check(results, files, force=force)
    for line in warnings:
        typer.echo(line, err=True)
    comp = tables.compare(results, files, tables.parse_metrics(metrics, results), baseline, warnings)

    if claims or seed_table:
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
        for note in comp.notes:  # wrapped at words, like the table
            _print(Text(f"note: {note}"), width)
        for line in warnings:  # --force: the table itself says it compared the incomparable
            _print(Text(line), width)

    if plots:
        from inferneo_bench.report import plots as plotting

        written = plotting.save_all(comp.columns, plots, svg=svg, baseline=comp.baseline)
        typer.echo(f"wrote {len(written)} plot files to {plots}: {', '.join(p.name for p in written)}", err=True)


def _pick_runs(paths: list[str]) -> list[Path]:
    """The paths with `latest` resolved. One folder holding several runs is listed rather than loaded (reading
    every run can take minutes); on a terminal the user picks one, elsewhere it is an error naming them."""
    from inferneo_bench import run_folders
    from inferneo_bench.errors import UserError

    resolved = [run_folders.resolve(p) for p in paths]
    if len(resolved) != 1 or not resolved[0].is_dir():
        return resolved
    runs = run_folders.runs_below(resolved[0])
    if not runs:
        return resolved
    folder = f"{str(resolved[0]).rstrip('/')}/"
    if sys.stdin.isatty() and sys.stdout.isatty():
        shown = runs[:20]
        typer.echo(f"{folder} holds {len(runs)} runs (newest first):")
        for i, line in enumerate(run_folders.describe_runs(shown), 1):
            typer.echo(f"{i:>3}{line}")
        choice = typer.prompt("Compare which run (number)", default=1, type=int)
        if not 1 <= choice <= len(shown):
            raise UserError(f"run number {choice}: choose 1..{len(shown)}")
        return [shown[choice - 1].path]
    lines = run_folders.describe_runs(runs)
    typer.echo(f"{folder} holds {len(runs)} runs (newest first):", err=True)
    for line in lines:
        typer.echo(line, err=True)
    raise UserError(
        f"{folder} holds {len(runs)} runs, not one; compare one run folder, e.g. "
        f"inferneo-bench compare {runs[0].path} (or name several folders or files explicitly)"
    )


def load_results(paths: list[Path]) -> tuple[list[Path], list]:
    """Every result below `paths`, its summary loaded (result.json only: the tables need no records; plots
    read the columns they draw when they draw them), with a status line on stderr while it takes."""
    from inferneo_bench.console import LARGE_BYTES, Activity, human_size, make_console
    from inferneo_bench.fileio import disk_size
    from inferneo_bench.results import find_result_files, load_summary

    files = find_result_files(paths)
    total = sum(disk_size(f) for f in files)
    console = make_console(120, stderr=True)
    text = f"{len(files)} result files ({human_size(total)})"
    with Activity(console if console.is_terminal else None, f"loading {text}") as act:
        results = [load_summary(p) for p in files]
    if total >= LARGE_BYTES:  # by size, not time: the same input prints the same lines
        typer.echo(f"loaded {text} in {act.elapsed:.1f} s", err=True)
    return files, results


def _compare_sweep(paths: list[str], fmt: str, plots: str | None, width: int | None) -> None:
    import json
    from pathlib import Path

    from inferneo_bench.errors import UserError
    from inferneo_bench.sweep import report as sweep_report

    if fmt == "csv":
        raise UserError("--format csv: a sweep renders as table, markdown or json")
    points, notes = sweep_report.load_points(paths)
    rendered = sweep_report.build(points, notes)
    if fmt == "markdown":
        sys.stdout.write(sweep_report.to_markdown(rendered))
    elif fmt == "json":
        sys.stdout.write(json.dumps(sweep_report.to_dict(rendered), indent=1, allow_nan=False) + "\n")
    else:
        _print(sweep_report.to_rich(rendered), width)
    if plots:
        from inferneo_bench.sweep.plots import save_all

        written = save_all(rendered, Path(plots))
        typer.echo(f"wrote {len(written)} plot files to {plots}", err=True)


def _width(width: int | None) -> int:
    """--width, else the terminal's (or $COLUMNS), else 160 columns for pipes and CI logs."""
    from inferneo_bench.console import output_width

    return width or output_width(160)


def _print(renderable: object, width: int | None) -> None:
    from rich.console import Console

    Console(file=sys.stdout, width=_width(width)).print(renderable)


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(compare)
