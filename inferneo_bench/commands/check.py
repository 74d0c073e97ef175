"""`inferneo-bench check`: the CI regression gate (exit 0 ok/improvement, 1 regression or failure, 3 inconclusive,
2 bad input or incomparable results)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from inferneo_bench.console import Activity, make_console

_VERDICT_STYLE = {
    "FAIL": "bold red",
    "REGRESSION": "bold red",
    "INCONCLUSIVE": "yellow",
    "IMPROVEMENT": "green",
    "OK": "green",
}


EPILOG = """\
[bold]Example[/]: gate a scheduler change on five trials per side (the baseline made the same way, before):

  inferneo-bench run --strategy all --repeat 5 --run-id current
  inferneo-bench check --baseline results/baseline --current results/current

[bold]Exit codes[/]: 0 no regression (OK or IMPROVEMENT); 1 REGRESSION or FAIL (a baseline strategy missing, \
nothing completed, a gated figure lost); 3 INCONCLUSIVE (too noisy to decide: the lines under the table say how \
many trials would; one wall-clock trial per side always is); 2 bad input (missing or corrupt files, nothing to \
pair, results that are not comparable without --force).
"""


def check(
    baseline: list[Path] = typer.Option(
        ..., "--baseline", "-b", metavar="PATH", help="Baseline run folder or result file (repeatable)."
    ),
    current: list[Path] = typer.Option(
        ..., "--current", "-c", metavar="PATH", help="Current run folder or result file (repeatable)."
    ),
    metric: list[str] = typer.Option(
        [],
        "--metric",
        metavar="NAME[:DIR][:PCT%]",
        help="NAME[:higher|lower][:THRESHOLD%] (repeatable; replaces the defaults output_throughput, "
        "p99_ttft_ms, p99_tpot_ms and request_goodput when SLOs were set).",
    ),
    threshold: float = typer.Option(5.0, "--threshold", metavar="PCT", help="Smallest change (%) that fails the gate."),
    noise_floor: float = typer.Option(
        1.0, "--noise-floor", metavar="PCT", help="The interval must clear this change (%)."
    ),
    alpha: float = typer.Option(0.01, "--alpha", metavar="P", help="One-sided Mann-Whitney U test level."),
    markdown: Path | None = typer.Option(
        None, "--markdown", metavar="FILE", help="Write a markdown summary (for CI job summaries)."
    ),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Write the verdicts as JSON."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Check results that differ in workload, model, device, engine, SLOs, warm-up or "
        "scheduler config anyway (every output says so).",
    ),
) -> None:
    """Gate CI on performance: current trials against the baseline, per strategy and metric (exit 1: regression)."""
    from inferneo_bench import regress, run_folders
    from inferneo_bench.console import LARGE_BYTES, human_size
    from inferneo_bench.errors import UserError
    from inferneo_bench.fileio import disk_size
    from inferneo_bench.results import find_result_files

    baseline = [run_folders.resolve(p) for p in baseline]
    current = [run_folders.resolve(p) for p in current]

    specs = [regress.parse_metric(m) for m in metric]
    settings = regress.Settings(threshold=threshold / 100, noise_floor=noise_floor / 100, alpha=alpha)
    err = make_console(120, stderr=True)
    try:
        total = sum(disk_size(f) for f in find_result_files([*baseline, *current]))
    except UserError:
        total = 0  # regress.check names the bad path
    text = f"the baseline and current results ({human_size(total)})"
    with Activity(err if err.is_terminal else None, f"reading {text}") as act:
        report = regress.check(baseline, current, specs or None, settings, force=force)
    if total >= LARGE_BYTES:  # by size, not time: the same input prints the same lines
        err.print(f"read {text} in {act.elapsed:.1f} s", highlight=False)
    _print(report)
    if markdown is not None:
        _write(markdown, to_markdown(report))
    if json_out is not None:
        _write(json_out, json.dumps(report.to_dict(), indent=1, allow_nan=False, default=_no_default) + "\n")
    if report.exit_code:
        # SystemExit, not typer.Exit: click swallows Exit's code when the app runs with standalone_mode=False
        raise SystemExit(report.exit_code)


def _no_default(value: object) -> object:
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write(path: Path, text: str) -> None:
    from inferneo_bench.errors import UserError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror}); choose a writable path") from None


def _groups(report):  # (name, [comparisons]) in first-seen order
    groups: dict[str, list] = {}
    for c in report.comparisons:
        name = f"{c.strategy} [{c.label}]" if c.label else c.strategy
        groups.setdefault(name, []).append(c)
    return groups


def _print(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    from inferneo_bench.regress import format_row

    console = make_console(120)
    s = report.settings
    for name, rows in _groups(report).items():
        title = f"{name}: baseline vs current (threshold {s.threshold * 100:g}%; ↑/↓: higher/lower is better)"
        table = Table(title=escape(title), title_justify="left")  # a "[label]" is not Rich markup
        for col, justify in (("metric", "left"), ("trials", "right"), ("baseline median", "right"),
                             ("current median", "right"),
                             ("change", "right"), (f"{(1 - 2 * s.alpha) * 100:g}% interval", "right"),
                             ("p", "right"), ("verdict", "left")):  # fmt: skip
            table.add_column(col, justify=justify, no_wrap=col in ("metric", "verdict") or "interval" in col)
        for c in rows:
            f = format_row(c, s.threshold)
            style = _VERDICT_STYLE.get(c.verdict, "dim")
            table.add_row(f["metric"], f["n"], f["baseline"], f["current"], f["change"], f["interval"], f["p"],
                          f"[{style}]{f['verdict']}[/]")  # fmt: skip
        console.print(table)
        for c in rows:
            console.print(f"  {c.metric}: {c.reason}", highlight=False, markup=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    for line in report.forced:
        console.print(line, style="yellow", highlight=False, markup=False)
    console.print(
        f"check: [{_VERDICT_STYLE.get(report.verdict, 'bold')}]{report.verdict}[/] "
        f"(threshold {s.threshold * 100:g}%, noise floor {s.noise_floor * 100:g}%, alpha {s.alpha:g}; "
        f"exit {report.exit_code})",
        highlight=False,
    )


def to_markdown(report) -> str:
    """A compact summary for $GITHUB_STEP_SUMMARY: overall verdict, one table, reasons and notes."""
    from inferneo_bench.regress import format_row

    s = report.settings
    icon = {"FAIL": "❌", "REGRESSION": "❌", "INCONCLUSIVE": "⚠️", "IMPROVEMENT": "✅", "OK": "✅"}[report.verdict]
    lines = [
        f"## inferneo-bench check: {icon} {report.verdict}",
        "",
        f"Baseline `{', '.join(report.baseline)}` vs current `{', '.join(report.current)}`; "
        f"threshold {s.threshold * 100:g}%, noise floor {s.noise_floor * 100:g}%, alpha {s.alpha:g} "
        f"(one-sided Mann-Whitney U; Hodges-Lehmann change with its {(1 - 2 * s.alpha) * 100:g}% interval; "
        "↑/↓: higher/lower is better).",
        "",
        "| strategy | metric | trials | baseline median | current median | change | interval | p | verdict |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, rows in _groups(report).items():
        for c in rows:
            f = format_row(c, s.threshold)
            verdict = f"**{c.verdict}**" if c.verdict in ("FAIL", "REGRESSION", "INCONCLUSIVE") else c.verdict
            cells = [
                name,
                f["metric"],
                f["n"],
                f["baseline"],
                f["current"],
                f["change"],
                f["interval"],
                f["p"],
                verdict,
            ]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    flagged = [c for c in report.comparisons if c.verdict not in ("OK",)]
    if flagged:
        lines += ["", "Details:", ""]
        lines += [f"- {c.strategy}{f' [{c.label}]' if c.label else ''} {c.metric}: {c.reason}" for c in flagged]
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    if report.forced:
        lines += ["", "**Compared despite differences (--force):**", ""] + [f"- {w}" for w in report.forced]
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(check)
