"""The Rich console every command prints through, and tables that fit its width."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def output_width(pipe_width: int = 120) -> int:
    """The width to print for. A terminal keeps its own (Rich reads COLUMNS too). When stdout is piped or
    redirected: COLUMNS if set, else the width of the terminal stderr still shows (`compare ... | less`), else
    `pipe_width` (CI logs are wider than Rich's 80)."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            continue
    return pipe_width


def make_console(pipe_width: int = 120, stderr: bool = False) -> Any:
    """A Console of `output_width(pipe_width)` columns on stdout (or stderr)."""
    from rich.console import Console

    return Console(width=output_width(pipe_width), stderr=stderr)


def table_width(table: Any) -> int:
    """The columns a Rich renderable wants when nothing constrains it."""
    from rich.console import Console

    return Console(width=100_000, file=io.StringIO()).measure(table).maximum


def fit_columns(build: Callable[[Sequence[int]], Any], count: int, width: int) -> list[Any]:
    """Tables that fit `width`: `build(indices)` makes a table of the key column plus the value columns
    `indices` (of `count`). All of them when that fits; otherwise consecutive blocks, the key column repeated in
    each, as few blocks as fit and as even as possible (6 columns that need two blocks: 3 + 3, not 5 + 1);
    a block holds at least one column even when that one is too wide. The way a wide data frame is wrapped."""
    everything = list(range(count))
    table = build(everything)
    if count <= 1 or table_width(table) <= width:
        return [table]
    greedy: list[list[int]] = []
    start = 0
    while start < count:
        end = start + 1
        while end < count and table_width(build(everything[start : end + 1])) <= width:
            end += 1
        greedy.append(everything[start:end])
        start = end
    size = -(-count // len(greedy))
    even = [everything[i : i + size] for i in range(0, count, size)]
    if len(even) == len(greedy) and all(table_width(build(block)) <= width for block in even):
        return [build(block) for block in even]
    return [build(block) for block in greedy]


LARGE_BYTES = 10_000_000  # result files this big get a line saying how long they took to read


def human_size(num_bytes: int) -> str:
    """1.2 MB style (decimal units, as `ls -h --si` and download sizes are quoted)."""
    size = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class Activity:
    """A transient status line (spinner, text, elapsed time) while something slow happens, e.g. writing or
    reading a large result file; nothing when `console` is None. After the block, `elapsed` holds the seconds
    it took, for the caller's one-line report."""

    def __init__(self, console: Any, text: str) -> None:
        self.console, self.text = console, text
        self.elapsed = 0.0
        self._progress: Any = None

    def __enter__(self) -> Activity:
        import time

        self._start = time.perf_counter()
        if self.console is not None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console,
                transient=True,
            )  # fmt: skip
            self._progress.start()
            self._progress.add_task(self.text, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        if self._progress is not None:
            self._progress.stop()
        self.elapsed = time.perf_counter() - self._start
