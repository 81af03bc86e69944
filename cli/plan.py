"""`plannerl plan` and `plannerl validate`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    files: list[Path] = typer.Argument(..., help="[DOMAIN] PROBLEM: the domain is found beside the problem when omitted."),
) -> None:
    """Print a provably shortest plan."""
    from rich.console import Console

    from plannerl.planner import solve

    domain, problem = (None, files[0]) if len(files) == 1 else (files[0], files[1])
    result = solve(domain, problem)
    console = Console()
    for step, action in enumerate(result.plan_names, 1):
        console.print(f"{step:3d}  {action}")
