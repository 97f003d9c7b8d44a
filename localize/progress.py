"""Live run progress for a person (a Rich bar) or a CI log (a plain line every few seconds)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from .sending.pipeline import Progress as RunProgress

LOG_EVERY_S = 5.0


class ProgressView:
    """Renders pipeline Progress events on stderr."""

    def __init__(self, console: Console, *, live: bool) -> None:
        self._console = console
        self._live = live
        self._bar: Progress | None = None
        self._task: Any = None
        self._judge_task: Any = None
        self._last_log = 0.0

    def __enter__(self) -> ProgressView:
        if self._live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed · ${task.fields[spent]}"),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._bar.__enter__()
        return self

    def update(self, progress: RunProgress) -> None:
        if progress.judged is not None:
            self._judging(progress)
            return
        done = progress.succeeded + progress.failed + progress.up_to_date
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("localize", total=progress.total, failed=0, spent="0.00")
            self._bar.update(self._task, completed=done, failed=progress.failed, spent=f"{progress.spent_usd:.4f}")
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S or done == progress.total:
            self._last_log = now
            self._console.print(
                f"progress: {done:,}/{progress.total:,} jobs, {progress.failed:,} failed, "
                f"{progress.up_to_date:,} up to date, ${progress.spent_usd:.4f} spent",
                markup=False,
            )

    def _judging(self, progress: RunProgress) -> None:
        """The judge's phase (--judge): how many listings it has answered for so far."""
        judged = progress.judged or 0
        if self._bar is not None:
            if self._judge_task is None:
                self._judge_task = self._bar.add_task("judge", total=None, failed=0, spent="0.00")
            self._bar.update(self._judge_task, completed=judged, spent=f"{progress.spent_usd:.4f}")
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S or not judged:
            self._last_log = now
            said = "judging the listings" if not judged else f"judge: {judged:,} listings judged"
            self._console.print(f"{said}, ${progress.spent_usd:.4f} spent", markup=False)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
