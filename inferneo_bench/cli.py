"""The `inferneo-bench` command line. Thin: parse, call the library, print.

Expected errors (`UserError`) become one line on stderr and exit code 2; unexpected ones a one-line
internal error, or the full traceback with `--debug`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer.core import TyperGroup

from inferneo_bench import __version__, commands
from inferneo_bench.errors import UserError


def _value_name(param: object) -> str | None:
    """What an option's value column shows: its metavar, or a plain word for its type; nothing for a flag or
    an argument (whose name already says it). Never a Python type tag such as <str> or <list[str]>. Duck-typed:
    Typer builds these from its own vendored copy of click."""
    if getattr(param, "is_flag", False) or getattr(param, "param_type_name", "") == "argument":
        return None
    metavar = getattr(param, "metavar", None)
    if metavar:
        return metavar
    desc = getattr(param, "type_descriptor", None)  # Typer >= 0.20
    choices = getattr(desc, "choices", None) if getattr(desc, "is_choice", False) else None
    choices = choices or getattr(getattr(param, "type", None), "choices", None)  # older Typer: a click type
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    if hasattr(param, "bare_type"):
        kind = param.bare_type().removeprefix("list[").removesuffix("]")
    else:
        kind = str(getattr(getattr(param, "type", None), "name", ""))
    words = {"int": "N", "integer": "N", "integer range": "N", "float": "NUMBER", "float range": "NUMBER"}
    return words.get(kind, "PATH" if kind.lower() == "path" else "TEXT")


def plain_help(command: object) -> None:
    """Help that teaches: every parameter of `command` and its subcommands shows a value name (or nothing)
    instead of Typer's type tags and range tags ([x>=1]); ranges are still enforced by click."""
    for param in getattr(command, "params", []):
        _plain_param(param)
    get_help_option = getattr(command, "get_help_option", None)
    if get_help_option is not None:  # --help itself is made on demand

        def patched(ctx: object, _get: object = get_help_option) -> object:
            return _plain_param(_get(ctx))  # type: ignore[operator]

        command.get_help_option = patched  # type: ignore[attr-defined]
    for sub in (getattr(command, "commands", None) or {}).values():
        plain_help(sub)


def _plain_param(param: object) -> object:
    if param is not None:
        if hasattr(param, "display_type_rich"):
            param.display_type_rich = lambda ctx, _p=param: _value_name(_p)  # type: ignore[attr-defined]
        if hasattr(param, "_get_number_range_help_str"):
            param._get_number_range_help_str = lambda: None  # type: ignore[attr-defined]
    return param


class PlainHelpGroup(TyperGroup):
    """The root command group; applies plain_help to the whole command tree once it is built."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        plain_help(self)


app = typer.Typer(
    name="inferneo-bench",
    cls=PlainHelpGroup,
    help="Which batching strategy serves my LLM workload best on my GPU, and by how much?",
    epilog="Start here: [cyan]inferneo-bench run --strategy all[/], then [cyan]inferneo-bench compare "
    "results/latest[/]. Every command has --help with an example.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
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
