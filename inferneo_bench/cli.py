"""The `inferneo-bench` command line. Thin: parse, call the library, print.

Expected errors (`UserError`) become one line on stderr and exit code 2; unexpected ones a one-line
internal error, or the full traceback with `--debug`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from inferneo_bench import __version__, commands
from inferneo_bench.errors import UserError

app = typer.Typer(
    name="inferneo-bench",
    help="Which batching strategy serves my LLM workload best on my GPU, and by how much?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state: dict = {"debug": False, "argv": None}


def invocation() -> str:
    """The command line being run, for the result file's run.command (works in-process too)."""
    import shlex

    argv = _state["argv"] if _state["argv"] is not None else sys.argv[1:]
    return shlex.join(["inferneo-bench", *argv])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inferneo-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for unexpected errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


# Commands register themselves: every module of inferneo_bench.commands exposes register(app). They are listed
# in this order in --help (the main job first); a new module needs no edit here.
COMMAND_ORDER = ("run", "sweep", "demo", "compare", "check", "workloads", "profile", "env")


def _register_commands() -> None:
    names = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
    for name in sorted(names, key=lambda n: (rank.get(n, len(rank)), n)):
        importlib.import_module(f"inferneo_bench.commands.{name}").register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the central error policy."""
    _state["argv"] = list(argv) if argv is not None else sys.argv[1:]
    _state["debug"] = "--debug" in _state["argv"]
    try:
        # standalone: click itself shows usage errors (exit 2) and turns Exit into SystemExit with its code
        app(args=argv, standalone_mode=True)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the one place that decides how bugs are shown
        if _state["debug"]:
            raise
        typer.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", err=True
        )
        sys.exit(1)
