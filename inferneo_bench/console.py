"""The Rich console every command prints through."""

from __future__ import annotations

from typing import Any


def make_console(pipe_width: int = 120) -> Any:
    """A terminal keeps its own width; a pipe or CI log gets `pipe_width` columns instead of Rich's 80, so
    wide tables are not squeezed into slivers."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=pipe_width)
