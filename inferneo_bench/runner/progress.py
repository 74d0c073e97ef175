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

    def __enter__(self) -> ReplayProgress:
        if self.console is None:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
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
        info = f"queue {p.queue_depth:>4}  batch {p.batch_size:>3}  {rate:8.1f} tok/s"
        self._progress.update(self._task, completed=p.ended, info=info)

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
