"""The one call most users want: files in, canonical shortest plan out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plannerl.pddl import load
from plannerl.search import SearchResult, breadth_first_search
from plannerl.task import Task, compile_task


@dataclass
class Solution:
    task: Task
    result: SearchResult

    @property
    def plan_names(self) -> list[str]:
        return [self.task.actions[a].pddl for a in self.result.plan]


def load_task(domain: str | Path | None, problem: str | Path) -> Task:
    return compile_task(*load(domain, problem))


def solve(domain: str | Path | None, problem: str | Path, time_limit: float | None = None) -> Solution:
    task = load_task(domain, problem)
    return Solution(task, breadth_first_search(task, time_limit=time_limit))
