"""unified-planning interop: its reader, Fast Downward, pyperplan and its plan validator.

plannerl plans with its own reader and compiled task; unified-planning (UP) is the independent
reference the tests and the benchmark hold it against, and the way users reach the external
planners (`plannerl plan --planner fast-downward|pyperplan`). Everything here imports UP lazily:
importing `unified_planning.shortcuts` alone costs about a second.

UP's own errors are a mix of pyparsing exceptions, SyntaxErrors with positions inside the
message, KeyErrors and bare AssertionErrors; `read_problem` turns each into one `PddlError`
line naming the file (and the line, where UP knows it).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plannerl.errors import LimitError, NoPlanError, PddlError, PlannerlError
from plannerl.pddl.reader import check_requirements, find_domain_file, read_text

# UP problem-kind features inside the fragment plannerl supports (STRIPS, typing, negative
# preconditions, equality, plan length as the metric).
SUPPORTED_FEATURES = {
    "ACTION_BASED", "FLAT_TYPING", "HIERARCHICAL_TYPING", "NEGATIVE_CONDITIONS", "EQUALITIES", "PLAN_LENGTH",
}
FAST_DOWNWARD_OPTIMAL_SEARCH = "astar(lmcut())"
# Fast Downward's other strong optimal configuration: on kitchens with many stations it beats
# LM-cut by far (issue 9's table), so the benchmark runs both and keeps the faster.
FAST_DOWNWARD_IPDB_SEARCH = "astar(ipdb())"
# what both external backends search with (`fast-downward-opt` and `pyperplan-opt` in UP)
EXTERNAL_HEURISTIC = "LM-cut (A*)"

_UP_LINE = re.compile(r"line:?\s*(\d+)")
_FD_EXPANDED = re.compile(r"Expanded (\d+) state\(s\)\.")


@dataclass
class ExternalPlan:
    """A plan from an external planner, in plannerl's `(name arg ...)` form."""

    planner: str
    plan: list[str]
    seconds: float
    expanded: int | None = None

    @property
    def length(self) -> int:
        return len(self.plan)


def quiet_environment():
    """UP's global environment with the engines' credits banner switched off."""
    from unified_planning.shortcuts import get_environment

    env = get_environment()
    env.credits_stream = None
    return env


def read_problem(domain_path: str | Path | None, problem_path: str | Path):
    """A `unified_planning.model.Problem` read by UP's PDDLReader; every failure is one PddlError.

    The domain is found beside the problem (by its `(:domain NAME)`) when `domain_path` is None.
    Problems outside plannerl's PDDL fragment are refused by the feature they use.
    """
    from unified_planning.io import PDDLReader

    quiet_environment()
    problem_path = Path(problem_path)
    domain_path = find_domain_file(problem_path) if domain_path is None else Path(domain_path)
    domain_text, problem_text = read_text(domain_path), read_text(problem_path)
    try:
        problem = PDDLReader().parse_problem_string(domain_text, problem_text)
    except Exception as exc:  # UP raises many unrelated types for bad input; each becomes one line
        raise _translate_up_error(exc, domain_path, problem_path, domain_text) from None
    check_requirements(domain_path)
    check_requirements(problem_path)
    unsupported = sorted(set(problem.kind.features) - SUPPORTED_FEATURES)
    if unsupported:
        names = ", ".join(feature.lower().replace("_", " ") for feature in unsupported)
        raise PddlError(f"uses {names}, which plannerl does not support", str(problem_path))
    return problem


def _translate_up_error(exc: Exception, domain_path: Path, problem_path: Path, domain_text: str) -> PddlError:
    """One line naming the file UP failed on, the line where UP says, and what it says."""
    import pyparsing
    from unified_planning.io import PDDLReader

    if isinstance(exc, pyparsing.ParseBaseException):
        in_domain = exc.pstr == domain_text.replace("\t", " ").lower()
        return PddlError(f"unified-planning cannot parse this: {exc.msg}", str(domain_path if in_domain else problem_path), exc.lineno)
    if isinstance(exc, RecursionError):
        return PddlError("unified-planning cannot read it: expressions nested too deeply", str(problem_path))
    # UP checks both files together; reading the domain alone says which one is at fault.
    try:
        PDDLReader().parse_problem_string(domain_text)
        path = problem_path
    except Exception:
        path = domain_path
    text = str(exc)
    inner = re.search(r"\w+Error\('(.*)'\)", text)
    if inner:
        text = inner.group(1) + text[inner.end():]
    if isinstance(exc, KeyError):
        text = f"unknown name {text}"
    elif isinstance(exc, AssertionError):
        text = "an internal check failed (often a wrong number of arguments)" + (f": {text}" if text else "")
    match = _UP_LINE.search(text)
    text = re.sub(r"\s*(Error )?(found at|from) line.*$", "", text, flags=re.IGNORECASE | re.DOTALL)
    return PddlError(f"unified-planning cannot read it: {text or type(exc).__name__}", str(path), int(match.group(1)) if match else None)


def _action_strings(plan) -> list[str]:
    """UP action instances as `(name arg ...)` strings, lower-case like plannerl's task."""
    out = []
    for instance in plan.actions:
        args = [str(p.object().name) if p.is_object_exp() else str(p) for p in instance.actual_parameters]
        out.append("(" + " ".join([instance.action.name, *args]).lower() + ")")
    return out


def _with_length_metric(problem):
    from unified_planning.shortcuts import MinimizeSequentialPlanLength

    if not problem.quality_metrics:
        problem.add_quality_metric(MinimizeSequentialPlanLength())
    return problem


def _check_status(result, planner: str, time_limit: float | None) -> None:
    from unified_planning.engines import PlanGenerationResultStatus as Status

    if result.status in (Status.SOLVED_OPTIMALLY, Status.SOLVED_SATISFICING) and result.plan is not None:
        return
    if result.status == Status.TIMEOUT:
        raise LimitError(f"{planner} found no plan within the time limit of {time_limit:g} s")
    if result.status in (Status.UNSOLVABLE_PROVEN, Status.UNSOLVABLE_INCOMPLETELY):
        raise NoPlanError(f"no plan exists ({planner} proved the problem unsolvable)")
    raise PlannerlError(f"{planner} failed: {result.status.name.lower()}")


def fast_downward_plan(domain_path: str | Path | None, problem_path: str | Path, time_limit: float | None = None) -> ExternalPlan:
    """An optimal plan from Fast Downward's A* with LM-cut (`fast-downward-opt`) through UP."""
    from unified_planning.shortcuts import OneshotPlanner

    start = time.perf_counter()
    problem = _with_length_metric(read_problem(domain_path, problem_path))
    # Fast Downward's translator leaves output.sas in the working directory: give it a scratch one.
    with _scratch_directory(), OneshotPlanner(name="fast-downward-opt") as planner:
        result = planner.solve(problem, timeout=time_limit)
    _check_status(result, "Fast Downward", time_limit)
    found = [int(n) for log in result.log_messages or () for n in _FD_EXPANDED.findall(log.message)]
    return ExternalPlan("fast-downward", _action_strings(result.plan), time.perf_counter() - start, found[-1] if found else None)


def pyperplan_plan(domain_path: str | Path | None, problem_path: str | Path, time_limit: float | None = None) -> ExternalPlan:
    """An optimal plan from pyperplan's A* with LM-cut (`pyperplan-opt`) through UP.

    pyperplan reads STRIPS only: equalities are compiled away by grounding and negative
    preconditions by UP's negative-conditions remover first; plans are mapped back to the
    original actions. pyperplan has no time limit of its own, so one is imposed with a timer
    signal (only possible in the main thread).
    """
    from unified_planning.shortcuts import CompilationKind, Compiler, OneshotPlanner

    start = time.perf_counter()
    problem = _with_length_metric(read_problem(domain_path, problem_path))
    back = []
    for feature, kind in (("EQUALITIES", CompilationKind.GROUNDING), ("NEGATIVE_CONDITIONS", CompilationKind.NEGATIVE_CONDITIONS_REMOVING)):
        if feature in problem.kind.features:
            with Compiler(name="up_grounder" if kind == CompilationKind.GROUNDING else None,
                          problem_kind=problem.kind, compilation_kind=kind) as compiler:
                compiled = compiler.compile(problem, kind)
            problem = compiled.problem
            back.append(compiled.map_back_action_instance)
    with _deadline(time_limit, "pyperplan"), OneshotPlanner(name="pyperplan-opt") as planner:
        result = planner.solve(problem)
    _check_status(result, "pyperplan", time_limit)
    plan = result.plan
    for map_back in reversed(back):
        plan = plan.replace_action_instances(map_back)
    return ExternalPlan("pyperplan", _action_strings(plan), time.perf_counter() - start)


@contextmanager
def _scratch_directory():
    """Run the block inside a temporary working directory, removed afterwards."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="plannerl-up-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


@contextmanager
def _deadline(seconds: float | None, what: str):
    """Raise LimitError in the main thread once `seconds` have passed (no-op elsewhere).

    The timer repeats every 0.25 s until the block ends: a planner that catches broad
    exceptions may swallow one LimitError (a fresh-clone CI run hung 8+ minutes in pyperplan's
    LM-cut that way), but not every one."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise LimitError(f"{what} found no plan within the time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 0.25)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def validate_with_up(domain_path: str | Path | None, problem_path: str | Path, plan_strings: list[str]) -> bool:
    """Whether UP's sequential plan validator accepts the plan (applicable steps, goal reached).

    A step naming an action or object the problem lacks is a PddlError, not just `False`.
    """
    from unified_planning.engines import ValidationResultStatus
    from unified_planning.plans import ActionInstance, SequentialPlan
    from unified_planning.shortcuts import PlanValidator

    problem = read_problem(domain_path, problem_path)
    steps = []
    for number, text in enumerate(plan_strings, 1):
        name, *args = text.strip().strip("()").lower().split()
        if not problem.has_action(name):
            raise PddlError(f"plan step {number} {text}: unknown action {name}")
        objects = []
        for arg in args:
            if not problem.has_object(arg):
                raise PddlError(f"plan step {number} {text}: unknown object {arg}")
            objects.append(problem.object(arg))
        action = problem.action(name)
        if len(objects) != len(action.parameters):
            raise PddlError(f"plan step {number} {text}: {name} takes {len(action.parameters)} arguments, got {len(objects)}")
        steps.append(ActionInstance(action, tuple(objects)))
    plan = SequentialPlan(steps)
    with PlanValidator(name="sequential_plan_validator") as validator:
        return validator.validate(problem, plan).status == ValidationResultStatus.VALID


def fast_downward_driver() -> Path:
    """The `fast-downward.py` driver shipped inside the up-fast-downward wheel."""
    spec = importlib.util.find_spec("up_fast_downward")
    if spec is None or not spec.submodule_search_locations:
        raise PlannerlError("up-fast-downward is not installed (pip install up-fast-downward)")
    driver = Path(next(iter(spec.submodule_search_locations))) / "downward" / "fast-downward.py"
    if not driver.is_file():
        raise PlannerlError(f"Fast Downward's driver is missing: {driver}")
    return driver


def fast_downward_command(domain_path: str | Path, problem_path: str | Path, plan_path: str | Path,
                          search: str = FAST_DOWNWARD_OPTIMAL_SEARCH) -> list[str]:
    """The command line a user would type to run Fast Downward's optimal engine on two files."""
    return [sys.executable, str(fast_downward_driver()), "--plan-file", str(plan_path),
            str(domain_path), str(problem_path), "--search", search]


def run_fast_downward_process(domain_path: str | Path | None, problem_path: str | Path, time_limit: float | None = None,
                              search: str = FAST_DOWNWARD_OPTIMAL_SEARCH) -> ExternalPlan:
    """Fast Downward as a whole process (driver, translator, search), timed end to end.

    `seconds` is the wall time of the process, the way a user would experience it; UP is not
    involved. Exit codes follow Fast Downward's documentation (10/11/12: unsolvable,
    21-24: out of memory or time).
    """
    problem_path = Path(problem_path).resolve()
    domain_path = (find_domain_file(problem_path) if domain_path is None else Path(domain_path)).resolve()
    with tempfile.TemporaryDirectory(prefix="plannerl-fd-") as scratch:
        plan_path = Path(scratch) / "plan.txt"
        command = fast_downward_command(domain_path, problem_path, plan_path, search)
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=time_limit, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise LimitError(f"Fast Downward found no plan within the time limit of {time_limit:g} s") from None
        seconds = time.perf_counter() - start
        if done.returncode in (10, 11, 12):
            raise NoPlanError("no plan exists (Fast Downward proved the problem unsolvable)")
        if done.returncode in (21, 22, 23, 24):
            raise LimitError(f"Fast Downward ran out of memory or time (exit {done.returncode})")
        if done.returncode != 0 or not plan_path.is_file():
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise PlannerlError(f"Fast Downward failed (exit {done.returncode}): {last}")
        plan = [line.strip().lower() for line in plan_path.read_text().splitlines() if line.strip().startswith("(")]
    expanded = _FD_EXPANDED.findall(done.stdout)
    return ExternalPlan("fast-downward-process", plan, seconds, int(expanded[-1]) if expanded else None)
