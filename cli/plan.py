"""`plannerl plan` and `plannerl validate`: option parsing and printing over plannerl.planning.report and planfile.

The library is imported inside the commands: plannerl.planning.planner alone costs ~60 ms to
import, and `plannerl --help` must stay under 0.3 s."""

from __future__ import annotations

import sys
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
    from plannerl.planning import compiled
    from plannerl.planning.planner import MISSING_CORE
    from plannerl.planning.report import how_solved, plan_report

    domain, problem = _split_files(files, "PROBLEM")
    builtin = planner == PlannerName.builtin
    if verbose and builtin and not compiled.available():
        print(f"plannerl: {MISSING_CORE}", file=sys.stderr)
    report = plan_report(domain, problem, planner=planner.value, time_limit=time_limit, max_states=max_states,
                         symmetry=not no_symmetry)
    if verbose and builtin:
        print(f"plannerl: {how_solved(report)}", file=sys.stderr)
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


def _print_report(report: dict, output_format: OutputFormat) -> None:
    from plannerl.planning.report import report_json, summary_line

    if output_format == OutputFormat.json:
        print(report_json(report))
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
    console.print(summary_line(report))


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
