"""`inferneo-bench recover`: rebuild result files from the journals of a killed or failed run."""

from __future__ import annotations

from pathlib import Path

import typer

EPILOG = """\
[bold]Example[/]: a run killed by SIGKILL (or the OOM killer, or a power cut) left journals in its folder:

  inferneo-bench recover results/20261129-101500-ab12

Requests that had not ended count as cancelled; each rebuilt result has run.status interrupted. \
[bold]Exit codes[/]: 0 recovered (or nothing left to recover); 2 no journal or a corrupt one.
"""


def recover(
    path: Path = typer.Argument(..., help="A journal (<result>.journal.jsonl) or a run folder holding journals."),
) -> None:
    """Rebuild the result file of every trial whose run was killed (SIGKILL, power loss) or could not save,
    from its per-request journal: requests that had not ended count as cancelled; status interrupted."""
    from inferneo_bench.errors import UserError
    from inferneo_bench.fileio import clean_stale_temps
    from inferneo_bench.runner import journal

    if not path.exists():
        raise UserError(f"{path}: no such journal or run folder")
    journals = journal.find_journals(path)
    if not journals:
        raise UserError(f"{path}: no journals (*{journal.SUFFIX}) here; every trial of this run was saved")
    folder = path if path.is_dir() else path.parent
    for stale in clean_stale_temps(folder):
        typer.echo(f"removed stale temp file {stale}")
    lock = folder / ".lock"
    if lock.exists():
        from inferneo_bench.runner.rundir import RunDir

        with RunDir(folder.parent, folder.name) as owner:  # refuses while the run is still alive
            owner.lock()
    for j in journals:
        target, result, counts = journal.recover(j)
        if result is None:
            why = "already saved" if counts.get("already_saved") else "nothing measured (killed while starting)"
            typer.echo(f"{target}: {why}; removed the leftover journal {j.name}")
            continue
        s = result.summary
        typer.echo(
            f"recovered {target}: {counts['journaled']} requests from the journal, {counts['lost']} not ended "
            f"(cancelled); completed {s['completed']}, failed {s['failed']} (status interrupted)"
            + (f"; ignored {counts['torn_lines']} torn last line" if counts["torn_lines"] else "")
        )


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(recover)
