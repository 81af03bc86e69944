"""Progress bars for long work, as context managers yielding `advance()`.

Library code takes a progress factory (`rich_progress` on a terminal, `quiet_progress` in tests
or under --quiet) instead of printing, so the same function serves the CLI and the tests.
"""

from __future__ import annotations

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
    """A rich progress bar named `description` over `total` items."""

    def __init__(self, description: str, total: int) -> None:
        self.description, self.total = description, total

    def __enter__(self):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.progress.start()
        task = self.progress.add_task(self.description, total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc) -> bool:
        self.progress.stop()
        return False
