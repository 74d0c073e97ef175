"""The Rich progress bar of a replay: requests ended, queue depth, running batch size, output tokens/s."""

from __future__ import annotations

import time
from typing import Any

from inferneo_bench.runner.replay import Progress


class ReplayProgress:
    """Context manager; `update` is the replay loop's on_progress callback (redrawn at most 10 times/s)."""

    def __init__(self, console: Any, title: str, total: int) -> None:
        self.console, self.title, self.total = console, title, total
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0
        self._start = 0.0
        self._compact = False

    def __enter__(self) -> ReplayProgress:
        if self.console is None:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # Everything but the bar has a known width: on a narrow terminal (80 columns) keep tokens/s only and give
        # the bar what is left, so that the count and the elapsed time are never cut to "30…".
        digits = len(str(self.total))
        fixed = len(self.title) + (2 * digits + 1) + 7 + 5  # title, "n/N", "0:00:16", separators
        self._compact = self.console.width < fixed + 40 + len(self._info(0, 0, 0.0))
        info = len(self._info(0, 0, 0.0))  # as shown: the compact form on a narrow terminal
        bar = max(5, min(40, self.console.width - fixed - info - 1))
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=bar),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.title, total=self.total, info="")
        self._start = time.perf_counter()
        return self

    def update(self, p: Progress) -> None:
        if self._progress is None:
            return
        wall = time.perf_counter()
        if wall - self._last < 0.1 and p.ended < p.total:
            return
        self._last = wall
        rate = p.output_tokens / p.now if p.now > 0 else 0.0
        self._progress.update(self._task, completed=p.ended, info=self._info(p.queue_depth, p.batch_size, rate))

    def _info(self, queue: int, batch: int, rate: float) -> str:
        if self._compact:
            return f"{rate:7.1f} tok/s"
        return f"queue {queue:>4}  batch {batch:>3}  {rate:8.1f} tok/s"

    def close(self, ended: int | None = None) -> None:
        """Stop redrawing (the bar stays on screen), first showing `ended` requests done when given (requests
        rejected after the last engine step end without a step to report them); idempotent."""
        if self._progress is not None:
            if ended is not None:
                self._progress.update(self._task, completed=ended)
            self._progress.stop()
            self._progress = None

    def __exit__(self, *exc: object) -> None:
        self.close()
