"""Benchmark: plannerl's built-in planner and compiled simulator against the reference tools.

Same run, same problems (the cooking tasks and the classic fixtures at several sizes):

- builtin, whole process: `python -m plannerl.cli plan PROBLEM --format json`, wall time as a
  user sees it (interpreter start, imports, parse, ground, search, print);
- builtin, in-process: the `seconds` that command reports (parse + ground + search);
- Fast Downward, whole process: its `fast-downward.py` driver from the up-fast-downward wheel
  with `--search "astar(lmcut())"` (translator + A* with LM-cut), wall time;
- pyperplan, in-process: `plannerl.up_bridge.pyperplan_plan` (UP reader, compilation to STRIPS,
  pyperplan's A* with LM-cut), unified-planning's import excluded;
- simulator steps/s: a seeded random walk (list applicable actions, apply one, test the goal)
  on plannerl's compiled task vs unified-planning's SequentialSimulator;
- `--help` wall time: `python -m plannerl.cli --help` and the console script in the
  interpreter's bin directory (not the pyenv shim, which adds ~0.25 s of bash).

Ratios > 1 mean plannerl is faster. Run: `python bench/planner.py [--markdown] [--timeout S]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plannerl.errors import PlannerlError  # noqa: E402

CLASSIC = ROOT / "tests" / "fixtures" / "classic"
COOKING = [ROOT / "domains" / f"{name}.pddl" for name in (
    "burger", "cheese_sandwich", "cheese_burger", "double_cheese_burger", "cooked_burger", "lettuce_tomato_sandwich")]
CLASSIC_SIZES = [CLASSIC / name for name in (
    "blocksworld/p02.pddl", "blocksworld/p03.pddl", "blocksworld/p04.pddl",
    "gripper/p04.pddl", "gripper/p06.pddl", "gripper/p08.pddl",
    "logistics/p02.pddl", "logistics/p03.pddl", "logistics/p04.pddl")]
SIMULATED = [ROOT / "domains" / "burger.pddl", ROOT / "domains" / "double_cheese_burger.pddl", CLASSIC / "blocksworld/p03.pddl",
             CLASSIC / "gripper/p06.pddl", CLASSIC / "logistics/p03.pddl"]


def label(path: Path) -> str:
    return path.stem if path.parent.name == "domains" else f"{path.parent.name}/{path.stem}"


def best_of(run, repeats_if_fast: int = 3):
    """Run once; repeat short runs (< 1 s) and keep the fastest, to damp noise from the shared CPU."""
    result = run()
    if isinstance(result, dict) and result.get("wall", 99) < 1.0:
        for _ in range(repeats_if_fast - 1):
            again = run()
            if isinstance(again, dict) and again["wall"] < result["wall"]:
                result = again
    return result


def builtin_process(problem: Path, timeout: float):
    command = [sys.executable, "-m", "plannerl.cli", "plan", str(problem), "--format", "json", "--time-limit", str(timeout)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return f">{timeout:g} s"
    wall = time.perf_counter() - start
    if done.returncode == 4 and "time limit" in done.stderr:
        return f">{timeout:g} s"
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1][:60] if done.stderr.strip() else f"exit {done.returncode}"
    report = json.loads(done.stdout)
    return {"wall": wall, "inner": report["seconds"], "length": report["length"], "count": report["optimal_plans"],
            "capped": report["optimal_plans_capped"], "expanded": report["expanded"]}


def fd_process(problem: Path, timeout: float):
    from plannerl.up_bridge import run_fast_downward_process

    try:
        found = run_fast_downward_process(None, problem, time_limit=timeout)
    except PlannerlError as exc:
        return str(exc)[:60]
    return {"wall": found.seconds, "length": found.length, "expanded": found.expanded}


def pyperplan_in_process(problem: Path, timeout: float):
    from plannerl.up_bridge import pyperplan_plan

    try:
        found = pyperplan_plan(None, problem, time_limit=timeout)
    except PlannerlError as exc:
        return f">{timeout:g} s" if "time limit" in str(exc) else str(exc)[:60]
    return {"wall": found.seconds, "length": found.length}


def simulator_rates(problem: Path, seconds: float) -> tuple[float, float]:
    """Random-walk steps per second (set-up excluded): plannerl's compiled task, then UP's SequentialSimulator."""
    from unified_planning.shortcuts import SequentialSimulator

    from plannerl.planner import load_task
    from plannerl.up_bridge import read_problem

    task = load_task(None, problem)
    rng = random.Random(0)
    steps, state, start = 0, task.init, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            actions = task.applicable(state)
            if not actions or task.is_goal(state) or steps % 100 == 0:
                state = task.init
                actions = task.applicable(state)
            state = task.apply(state, rng.choice(actions))
            task.is_goal(state)
            steps += 1
    ours = steps / (time.perf_counter() - start)

    up_problem = read_problem(None, problem)
    rng = random.Random(0)
    with SequentialSimulator(problem=up_problem) as simulator:
        initial = simulator.get_initial_state()
        list(simulator.get_applicable_actions(initial))  # UP grounds on the first call: keep that out of the rate
        steps, state, start = 0, initial, time.perf_counter()
        while time.perf_counter() - start < seconds:
            actions = list(simulator.get_applicable_actions(state))
            if not actions or simulator.is_goal(state) or steps % 100 == 0:
                state = initial
                actions = list(simulator.get_applicable_actions(state))
            action, params = rng.choice(actions)
            state = simulator.apply(state, action, params)
            simulator.is_goal(state)
            steps += 1
        theirs = steps / (time.perf_counter() - start)
    return ours, theirs


def help_times(repeats: int = 5) -> dict[str, float]:
    """Median wall time of `--help` through `python -m plannerl.cli` and the installed console script."""
    commands = {"python -m plannerl.cli --help": [sys.executable, "-m", "plannerl.cli", "--help"]}
    script = Path(sys.executable).parent / "plannerl"
    if script.is_file():
        commands[f"{script} --help"] = [str(script), "--help"]
    out = {}
    for name, command in commands.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, cwd=ROOT, check=True)
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def seconds(cell) -> str:
    return f"{cell['wall']:.3f}" if isinstance(cell, dict) else str(cell)


def ratio(slow, fast, key_fast: str = "wall") -> str:
    """slow / fast; a run stopped at the timeout (">T s") gives a bound."""
    if isinstance(slow, dict) and isinstance(fast, dict):
        return f"{slow['wall'] / fast[key_fast]:.1f}x"
    if _timed_out(slow) and isinstance(fast, dict):
        return f">{_timed_out(slow) / fast[key_fast]:.0f}x"
    if isinstance(slow, dict) and _timed_out(fast):
        return f"<{slow['wall'] / _timed_out(fast):.2f}x"
    return "-"


def _timed_out(cell) -> float | None:
    return float(cell[1:].split()[0]) if isinstance(cell, str) and cell.startswith(">") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/planning.md)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per planner run (default 20)")
    parser.add_argument("--sim-seconds", type=float, default=1.5, help="seconds per simulator measurement (default 1.5)")
    parser.add_argument("--only", default="", help="run only problems whose label contains this text")
    args = parser.parse_args()
    problems = [p for p in COOKING + CLASSIC_SIZES if args.only in label(p)]

    import unified_planning.shortcuts  # noqa: F401  (imported once here, so no run below pays for it)

    from plannerl.up_bridge import quiet_environment

    quiet_environment()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows = []
    for problem in problems:
        ours = best_of(lambda p=problem: builtin_process(p, args.timeout))
        fd = best_of(lambda p=problem: fd_process(p, args.timeout))
        pyp = pyperplan_in_process(problem, args.timeout)
        lengths = {c["length"] for c in (ours, fd, pyp) if isinstance(c, dict)}
        count = "-"
        if isinstance(ours, dict):
            count = f"{'>=' if ours['capped'] else ''}{ours['count']}"
        rows.append([
            label(problem),
            str(lengths.pop()) if len(lengths) == 1 else f"MISMATCH {sorted(lengths)}",
            count,
            str(ours["expanded"]) if isinstance(ours, dict) else "-",
            seconds(ours),
            f"{ours['inner']:.3f}" if isinstance(ours, dict) else "-",
            seconds(fd),
            seconds(pyp),
            ratio(fd, ours),
            ratio(pyp, ours, "inner"),
        ])
        print(f"  {label(problem)} done", file=sys.stderr, flush=True)
    planner_headers = ["problem", "length", "optimal plans", "builtin expanded", "builtin process s", "builtin in-process s",
                       "FD process s", "pyperplan in-process s", "FD / builtin (process)", "pyperplan / builtin (in-process)"]

    sim_rows = []
    for problem in SIMULATED:
        ours_rate, up_rate = simulator_rates(problem, args.sim_seconds)
        sim_rows.append([label(problem), f"{ours_rate:,.0f}", f"{up_rate:,.0f}", f"{ours_rate / up_rate:,.0f}x"])
    sim_headers = ["problem", "compiled task steps/s", "UP SequentialSimulator steps/s", "ratio"]

    help_rows = [[name, f"{value:.3f}"] for name, value in help_times().items()]
    total = time.perf_counter() - started

    machine = (f"{sys.platform}, Python {sys.version.split()[0]}, {_cpus()} CPUs, load average {load_before:.1f} at the start and "
               f"{os.getloadavg()[0]:.1f} at the end (other work on the machine inflates wall times), timeout {args.timeout:g} s per run")
    for title, headers, body in (("Planners (seconds; lower is better)", planner_headers, rows),
                                 ("Simulator (random walk: list applicable + apply + goal test)", sim_headers, sim_rows),
                                 ("--help wall time (median of 5, seconds)", ["command", "seconds"], help_rows)):
        if args.markdown:
            print(f"\n**{title}**\n")
            print("| " + " | ".join(headers) + " |")
            print("|" + "|".join("---" for _ in headers) + "|")
            for row in body:
                print("| " + " | ".join(row) + " |")
        else:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title)
            for header in headers:
                table.add_column(header)
            for row in body:
                table.add_row(*row)
            Console(width=220).print(table)
    print(f"\n{machine}; benchmark took {total:.0f} s")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
