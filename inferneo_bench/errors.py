"""Expected errors: bad input that the user can fix.

Anything raised as a `UserError` reaches the user as one line on stderr and exit code 2 (see cli.main);
everything else is a bug and keeps its traceback under `--debug`.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input (unknown name, malformed file, missing file). The message is shown as is: make it name
    the file, line or value and say how to fix it."""

    exit_code = 2


class ResultFileError(UserError):
    """A result file that cannot be read: corrupt JSON, wrong schema version, missing key."""


def where(path: object, line: int | None = None) -> str:
    """`file` or `file:line`, the prefix every file-related message starts with."""
    return f"{path}:{line}" if line is not None else f"{path}"


def did_you_mean(value: str, choices: list[str] | tuple[str, ...]) -> str:
    """'; did you mean 'x'?' for the nearest of `choices` (difflib), or '' when none is near."""
    import difflib

    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
