"""`plannerl plan` and `plannerl validate`: thin commands over plannerl.planning.planner, up_bridge and planfile."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path

import typer

from plannerl.errors import PlannerlError


class PlannerName(StrEnum):
    builtin = "builtin"
    fast_downward = "fast-downward"
    pyperplan = "pyperplan"


class OutputFormat(StrEnum):
    text = "text"
    pddl = "pddl"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("validate")(validate)


def plan(
    files: list[Path] = typer.Argument(..., metavar="[DOMAIN] PROBLEM",
                                       help="The problem file, optionally after its domain file (found beside the problem when omitted)."),
    planner: PlannerName = typer.Option(PlannerName.builtin, "--planner", help="builtin (default), or fast-downward / pyperplan "
                                        "through unified-planning (both A* with LM-cut, optimal)."),
    time_limit: float | None = typer.Option(None, "--time-limit", min=0.0, help="Give up after S seconds (exit 4)."),
    max_states: int | None = typer.Option(None, "--max-states", min=1, help="Builtin planner: give up after N states (exit 4)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the plan as an IPC plan file."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text (a table), pddl (plan-file text) or json."),
    no_symmetry: bool = typer.Option(False, "--no-symmetry", help="Builtin planner: search every state, not one per renaming of "
                                     "interchangeable objects (slower; for debugging)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say on stderr which search ran: core, symmetry classes, heuristic."),
) -> None:
    """Print a provably shortest plan: the canonical one (alphabetically first) for the builtin planner.

    Exit codes: 0 plan found (the empty plan when the goal already holds), 2 bad input,
    3 no plan exists, 4 time or state limit reached.
    """
    domain, problem = _split_files(files, "PROBLEM")
    for name, given in (("--max-states", max_states is not None), ("--no-symmetry", no_symmetry)):
        if given and planner != PlannerName.builtin:
            raise PlannerlError(f"{name} applies to the builtin planner only")
    report = _solve(domain, problem, planner, time_limit, max_states, not no_symmetry, verbose)
    if output is not None:
        from plannerl.pddl.planfile import write_plan

        write_plan(output, report["plan"])
    _print_report(report, output_format)


def _split_files(files: list[Path], last: str, extra: int = 0) -> tuple[Path | None, ...]:
    """`[DOMAIN] LAST [extra files]` -> (domain or None, LAST, extra...)."""
    if not extra + 1 <= len(files) <= extra + 2:
        wanted = " ".join(["[DOMAIN]", last] + ["PLANFILE"] * extra)
        raise PlannerlError(f"expected {wanted}, got {len(files)} file{'s' if len(files) != 1 else ''}")
    return (None, *files) if len(files) == extra + 1 else tuple(files)


def _solve(domain: Path | None, problem: Path, planner: PlannerName, time_limit: float | None, max_states: int | None,
           symmetry: bool, verbose: bool) -> dict:
    """Run one planner and describe its plan in the keys `--format json` prints."""
    from plannerl.planning.planner import load_task

    start = time.perf_counter()
    report = {"planner": planner.value, "problem": str(problem), "optimal_plans": None, "optimal_plans_capped": False, "expanded": None}
    if planner == PlannerName.builtin:
        from plannerl.planning import compiled
        from plannerl.planning.planner import MISSING_CORE, solve

        if verbose and not compiled.available():
            print(f"plannerl: {MISSING_CORE}", file=sys.stderr)
        solution = solve(domain, problem, time_limit=time_limit, max_states=max_states, symmetry=symmetry)
        task, result = solution.task, solution.result
        report.update(plan=solution.plan_names, optimal_plans=result.optimal_plans, optimal_plans_capped=result.plans_capped,
                      expanded=result.expanded, core=solution.core, symmetry=solution.symmetry, heuristic=solution.heuristic,
                      heuristic_seconds=round(solution.heuristic_seconds, 6),
                      symmetry_classes=[list(members) for members in solution.symmetry_classes])
        if verbose:
            print(f"plannerl: {_how_solved(report)}", file=sys.stderr)
    else:
        from plannerl.pddl import up_bridge
        from plannerl.pddl.planfile import replay

        task = load_task(domain, problem)  # plannerl's reader first: its errors are the clearest
        run = up_bridge.fast_downward_plan if planner == PlannerName.fast_downward else up_bridge.pyperplan_plan
        found = run(domain, problem, time_limit)
        checked = replay(task, found.plan)
        if not checked.valid:
            raise PlannerlError(f"{planner.value} returned a plan that plannerl's replay rejects: {checked.message()}")
        report.update(plan=found.plan, expanded=found.expanded, core=None, symmetry=False, heuristic=up_bridge.EXTERNAL_HEURISTIC,
                      heuristic_seconds=None, symmetry_classes=[])
    report.update(domain=task.domain.path, length=len(report["plan"]), seconds=round(time.perf_counter() - start, 6))
    return report


def _how_solved(report: dict) -> str:
    """`compiled core; symmetry: table1 table2 table3 interchangeable; heuristic: ... (0.012 s to build)`."""
    if report["core"] == "compiled" and report["symmetry"]:
        classes = report["symmetry_classes"]
        merged = "; ".join(" ".join(members) + " interchangeable" for members in classes) if classes else "no interchangeable objects"
        symmetry = f"symmetry on ({merged})"
    else:
        symmetry = "symmetry off"
    built = f" ({report['heuristic_seconds']:.3f} s to build)" if report["core"] == "compiled" else ""
    return f"{report['core']} core; {symmetry}; heuristic: {report['heuristic']}{built}"


def _print_report(report: dict, output_format: OutputFormat) -> None:
    if output_format == OutputFormat.json:
        print(json.dumps(report, sort_keys=True))
        return
    if output_format == OutputFormat.pddl:
        from plannerl.pddl.planfile import format_plan

        print(format_plan(report["plan"]), end="")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)  # long paths and the summary stay on one line each
    if report["plan"]:
        console.print(f"Shortest plan for {report['problem']}")
        table = Table()
        table.add_column("step", justify="right")
        table.add_column("action")
        for step, action in enumerate(report["plan"], 1):
            table.add_row(str(step), action)
        console.print(table)
    else:
        console.print(f"The goal of {report['problem']} already holds: the shortest plan is empty.")
    console.print(_summary(report))


def _summary(report: dict) -> str:
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


def validate(
    files: list[Path] = typer.Argument(..., metavar="[DOMAIN] PROBLEM PLANFILE",
                                       help="The problem and an IPC plan file, optionally after the domain file."),
) -> None:
    """Replay a plan: say it is valid and reaches the goal, or name the first failing step and its
    unmet preconditions (or the unmet goals). Exit codes: 0 valid, 1 invalid plan, 2 bad input."""
    from plannerl.pddl.planfile import InvalidPlanError, read_plan, replay
    from plannerl.planning.planner import load_task

    domain, problem, plan_file = _split_files(files, "PROBLEM", extra=1)
    task = load_task(domain, problem)
    result = replay(task, read_plan(plan_file, task))
    if not result.valid:
        raise InvalidPlanError(f"{plan_file}: {result.message()}")
    print(f"{plan_file}: {result.message()}")
