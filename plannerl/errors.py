"""The one exception type that reaches users.

Every mistake a user can make (a bad file, a bad value, an unsolvable task) is raised as a
`PlannerlError` whose text is a single line naming what is at fault. The CLI prints that line
and exits non-zero; anything else escaping is a bug in plannerl, not in the user's input.
"""

from __future__ import annotations


class PlannerlError(Exception):
    """A user-facing error: one line of text, an exit code, never a traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class PddlError(PlannerlError):
    """A PDDL file that cannot be read, with the file and line at fault when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class NoPlanError(PlannerlError):
    """The search space was exhausted (or a limit hit) without reaching the goal."""

    exit_code = 3


class LimitError(PlannerlError):
    """A time or state-count limit stopped the work before it could finish."""

    exit_code = 4


class StateLimitError(LimitError):
    """The state-count limit stopped a search: unlike a time limit, the same input always hits it."""
