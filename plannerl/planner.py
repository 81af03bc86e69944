"""The one call most users want: files in, canonical shortest plan out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plannerl.pddl import load
from plannerl.search import SearchResult, optimal_search
from plannerl.task import Task, compile_task


@dataclass
class Solution:
    task: Task
    result: SearchResult

    @property
    def plan_names(self) -> list[str]:
        return [self.task.actions[a].pddl for a in self.result.plan]


def load_task(domain: str | Path | None, problem: str | Path) -> Task:
    """Parse and ground a problem; its domain is found beside it when `domain` is None."""
    return compile_task(*load(domain, problem))


def solve(domain: str | Path | None, problem: str | Path, *, time_limit: float | None = None,
          count_limit: int = 1_000_000) -> Solution:
    """The canonical shortest plan with the number of shortest plans (capped at count_limit)."""
    task = load_task(domain, problem)
    return Solution(task, optimal_search(task, time_limit=time_limit, count_limit=count_limit))
