"""The plan report: what `plannerl plan` found and how, as one dict (the `--format json` schema).

Every planner, builtin or external, answers in the same keys so scripts can compare them:
plan, length, optimal_plans (None when the planner does not count them), optimal_plans_capped,
expanded, seconds, planner, problem, domain, and which machinery ran (core, symmetry,
symmetry_classes, heuristic, heuristic_seconds). `summary_line` and `how_solved` are the
one-line readings of a report that the text output and `--verbose` print.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from plannerl.errors import PlannerlError
from plannerl.pddl.up_bridge import EXTERNAL_HEURISTIC
from plannerl.planning.external import EXTERNAL_PLANNERS, external_plan
from plannerl.planning.planner import solve

BUILTIN = "builtin"
PLANNERS = (BUILTIN, *EXTERNAL_PLANNERS)


def plan_report(domain: str | Path | None, problem: str | Path, *, planner: str = BUILTIN, time_limit: float | None = None,
                max_states: int | None = None, symmetry: bool = True) -> dict:
    """Run one planner and describe its plan; `seconds` covers reading, grounding and search.

    `max_states` and `symmetry=False` steer the builtin search only: asking them of an external
    planner is refused rather than silently ignored."""
    if planner not in PLANNERS:
        raise PlannerlError(f"unknown planner {planner!r}; known: {', '.join(PLANNERS)}")
    for option, given in (("--max-states", max_states is not None), ("--no-symmetry", not symmetry)):
        if given and planner != BUILTIN:
            raise PlannerlError(f"{option} applies to the builtin planner only")
    start = time.perf_counter()
    report = {"planner": planner, "problem": str(problem), "optimal_plans": None, "optimal_plans_capped": False, "expanded": None}
    if planner == BUILTIN:
        solution = solve(domain, problem, time_limit=time_limit, max_states=max_states, symmetry=symmetry)
        task, result = solution.task, solution.result
        report.update(plan=solution.plan_names, optimal_plans=result.optimal_plans, optimal_plans_capped=result.plans_capped,
                      expanded=result.expanded, core=solution.core, symmetry=solution.symmetry, heuristic=solution.heuristic,
                      heuristic_seconds=round(solution.heuristic_seconds, 6),
                      symmetry_classes=[list(members) for members in solution.symmetry_classes])
    else:
        task, found = external_plan(planner, domain, problem, time_limit)
        report.update(plan=found.plan, expanded=found.expanded, core=None, symmetry=False, heuristic=EXTERNAL_HEURISTIC,
                      heuristic_seconds=None, symmetry_classes=[])
    report.update(domain=task.domain.path, length=len(report["plan"]), seconds=round(time.perf_counter() - start, 6))
    return report


def report_json(report: dict) -> str:
    """The report as `--format json` prints it: sorted keys, so equal reports are equal text."""
    return json.dumps(report, sort_keys=True)


def how_solved(report: dict) -> str:
    """`compiled core; symmetry on (table1 table2 interchangeable); heuristic: ... (0.012 s to build)`:
    which search answered, so a slow run's cause shows without a profiler."""
    if report["core"] == "compiled" and report["symmetry"]:
        classes = report["symmetry_classes"]
        merged = "; ".join(" ".join(members) + " interchangeable" for members in classes) if classes else "no interchangeable objects"
        symmetry = f"symmetry on ({merged})"
    else:
        symmetry = "symmetry off"
    built = f" ({report['heuristic_seconds']:.3f} s to build)" if report["core"] == "compiled" else ""
    return f"{report['core']} core; {symmetry}; heuristic: {report['heuristic']}{built}"


def summary_line(report: dict) -> str:
    """`length 8 · 1 optimal plan · 15 expanded · 0.012 s · builtin (compiled core, symmetry on)`."""
    parts = [f"length {report['length']}"]
    count = report["optimal_plans"]
    if count is not None:
        parts.append(f"{'at least ' if report['optimal_plans_capped'] else ''}{count} optimal plan{'s' if count != 1 else ''}")
    else:
        parts.append("optimal plans not counted")
    if report["expanded"] is not None:
        parts.append(f"{report['expanded']} expanded")
    parts.append(f"{report['seconds']:.3f} s")
    if report["core"] is not None:
        parts.append(f"{report['planner']} ({report['core']} core, symmetry {'on' if report['symmetry'] else 'off'})")
    else:
        parts.append(report["planner"])
    return " · ".join(parts)
