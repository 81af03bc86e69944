"""The one call most users want: files in, canonical shortest plan out, and how it was found.

`solve` runs `plannerl.planning.search.optimal_search` and says which machinery answered: the compiled
core (`plannerl.planning._core`: A* over canonical states under object symmetry, guided by pattern
databases) or the pure-Python fallback (uniform-cost search over the task's own states, used
when the extension is not built or when asked for). Both return the same canonical plan and
plan count; the report exists so a user can tell a slow run's cause from the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from plannerl.pddl.reader import load
from plannerl.pddl.task import Task, compile_task
from plannerl.planning import compiled
from plannerl.planning.search import SearchResult, engine_for, optimal_search

COMPILED_HEURISTIC = "goal-fact pattern databases"
PYTHON_HEURISTIC = "none (uniform-cost search)"
MISSING_CORE = ("the compiled search core plannerl.planning._core is not built (python setup.py build_ext --inplace, "
                "or reinstall with pip); using the pure-Python search: same plans, blind and slower")


@dataclass
class Solution:
    """A solved problem: the task, the search result, and which search produced it.

    `core` is "compiled" or "python"; `symmetry` whether states were merged under renamings of
    interchangeable objects (`symmetry_classes` lists those objects); `heuristic_seconds` the
    time spent building the pattern databases (part of `result.seconds`)."""

    task: Task
    result: SearchResult
    core: str = "python"
    symmetry: bool = False
    heuristic: str = PYTHON_HEURISTIC
    heuristic_seconds: float = 0.0
    symmetry_classes: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def plan_names(self) -> list[str]:
        return [self.task.actions[a].pddl for a in self.result.plan]


def load_task(domain: str | Path | None, problem: str | Path) -> Task:
    """Parse and ground a problem; its domain is found beside it when `domain` is None."""
    return compile_task(*load(domain, problem))


def solve(domain: str | Path | None, problem: str | Path, *, time_limit: float | None = None, max_states: int | None = None,
          count_limit: int = 1_000_000, symmetry: bool = True, compiled_core: bool = True) -> Solution:
    """The canonical shortest plan with the number of shortest plans (capped at count_limit).

    `symmetry=False` searches the task's own states (for debugging the canonicalisation);
    `compiled_core=False` forces the pure-Python search. Without the built extension the
    Python search runs whatever is asked (`MISSING_CORE` says why)."""
    task = load_task(domain, problem)
    use_core = compiled_core and compiled.available()
    result = optimal_search(task, time_limit=time_limit, max_states=max_states, count_limit=count_limit,
                            symmetry=symmetry, compiled=use_core)
    if not use_core:
        return Solution(task, result)
    engine = engine_for(task, symmetry=symmetry)
    return Solution(task, result, "compiled", symmetry, COMPILED_HEURISTIC, engine.pattern_seconds, list(engine.symmetry.classes))
