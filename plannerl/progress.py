"""Progress bars for long work, as context managers yielding `advance()`.

Library code takes a progress factory (`rich_progress` on a terminal, `quiet_progress` in tests
or under --quiet) instead of printing, so the same function serves the CLI and the tests.
"""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class quiet_progress:  # noqa: N801 - used like the function rich_progress
    """A progress bar that shows nothing."""

    def __init__(self, description: str = "", total: int = 0) -> None:
        pass

    def __enter__(self):
        return lambda: None

    def __exit__(self, *exc) -> bool:
        return False


class rich_progress:  # noqa: N801 - a factory of context managers, called like a function
    """A rich progress bar named `description` over `total` items.

    When the output is not a terminal (a log file under nohup, a CI job) rich draws no bar, so
    long work would show nothing for many minutes: it then prints a plain line at every tenth
    of the total instead (`label training rows: 60/600 (10%) 1m23s`).
    """

    def __init__(self, description: str, total: int) -> None:
        self.description, self.total = description, total

    def __enter__(self):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        if not self.progress.console.is_terminal:
            self.progress = None
            return _plain_lines(self.description, self.total)
        self.progress.start()
        task = self.progress.add_task(self.description, total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc) -> bool:
        if self.progress is not None:
            self.progress.stop()
        return False


def _plain_lines(description: str, total: int):
    """`advance()` that prints `description: done/total (pct%) elapsed` each time another tenth is done."""
    start, done, shown = time.perf_counter(), 0, 0

    def advance() -> None:
        nonlocal done, shown
        done += 1
        tenth = done * 10 // total if total else 10
        if tenth > shown:
            shown = tenth
            minutes, seconds = divmod(int(time.perf_counter() - start), 60)
            print(f"{description}: {done}/{total} ({done * 100 // max(total, 1)}%) {minutes}m{seconds:02d}s", flush=True)

    return advance
