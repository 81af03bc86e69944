"""External optimal planners (Fast Downward, pyperplan) behind plannerl's own reader and replay.

`plannerl plan --planner fast-downward|pyperplan` reaches them through unified-planning
(`plannerl.pddl.up_bridge`). The problem is read by plannerl first, so a bad file fails with
plannerl's error (it names the line) rather than UP's, and the plan that comes back is replayed
on plannerl's own compiled task: a plan another planner finds but plannerl's semantics reject
is an error, never a printed answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plannerl.errors import PlannerlError
from plannerl.pddl import up_bridge
from plannerl.pddl.planfile import replay
from plannerl.pddl.task import Task
from plannerl.planning.planner import load_task

_RUNNERS: dict[str, Callable[..., up_bridge.ExternalPlan]] = {
    "fast-downward": up_bridge.fast_downward_plan,
    "pyperplan": up_bridge.pyperplan_plan,
}
EXTERNAL_PLANNERS = tuple(_RUNNERS)


def external_plan(planner: str, domain: str | Path | None, problem: str | Path,
                  time_limit: float | None = None) -> tuple[Task, up_bridge.ExternalPlan]:
    """The plan `planner` finds for the problem, with plannerl's task it was checked on.

    Raises the planner's own limit and no-plan errors (`LimitError`, `NoPlanError`), and a
    `PlannerlError` when plannerl's replay rejects the plan."""
    run = _RUNNERS.get(planner)
    if run is None:
        raise PlannerlError(f"unknown external planner {planner!r}; known: {', '.join(EXTERNAL_PLANNERS)}")
    task = load_task(domain, problem)
    found = run(domain, problem, time_limit)
    checked = replay(task, found.plan)
    if not checked.valid:
        raise PlannerlError(f"{planner} returned a plan that plannerl's replay rejects: {checked.message()}")
    return task, found
