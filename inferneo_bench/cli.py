"""The `inferneo-bench` command line. Thin: parse, call the library, print.

Expected errors (`UserError`) become one line on stderr and exit code 2; unexpected ones a one-line
internal error, or the full traceback with `--debug`.
"""

from __future__ import annotations

import sys

import typer

from inferneo_bench import __version__
from inferneo_bench.commands import env as env_command
from inferneo_bench.commands import profile as profile_command
from inferneo_bench.errors import UserError

app = typer.Typer(
    name="inferneo-bench",
    help="Which batching strategy serves my LLM workload best on my GPU, and by how much?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}


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


for _module in (env_command, profile_command):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the central error policy."""
    _state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that decides how bugs are shown
        if _state["debug"]:
            raise
        typer.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)", err=True
        )
        sys.exit(1)
