"""IPC plan files: write them, read them back, and replay a plan with reasons for failure.

The format is the one VAL, Fast Downward and unified-planning use: one ground action
`(name arg ...)` per line, `;` comments, and a last line `; cost = N (unit cost)`. Reading is
tolerant (any case, blank lines, comments, VAL's `0: (action) [1]` time stamps) but strict
about names: a step naming an unknown action, an unknown object or the wrong number of
arguments is a `PddlError` naming the file and line.

`replay` is what `plannerl validate` and the multi-turn simulator report to users: either the
plan applies step by step and reaches the goal, or it names the first failing step and its
unmet preconditions, or the goals left unmet at the end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plannerl import atomic
from plannerl.errors import PddlError, PlannerlError
from plannerl.pddl.reader import ActionSchema, Atom, read_text_file
from plannerl.pddl.task import Task

MAX_PLAN_BYTES = 16 * 1024 * 1024
_STEP = re.compile(r"^(?:\d+(?:\.\d*)?\s*:\s*)?\(([^()]*)\)\s*(?:\[[^\]]*\])?$")


class InvalidPlanError(PlannerlError):
    """A plan that reads fine but does not apply or does not reach the goal (`plannerl validate` exits 1)."""

    exit_code = 1


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan: its normalised text, where it came from, and the ground action.

    `action` is None when the step names a well-typed action that grounding left out of the
    task because its preconditions can never hold: such a step is invalid, not unreadable.
    """

    text: str
    line: int | None
    action: int | None


@dataclass
class ReplayResult:
    """What replaying a plan found: `valid` means every step applies and the goal is reached."""

    valid: bool
    length: int
    applied: int
    failed_step: int | None = None  # 1-based number of the first step that does not apply
    failed_action: str | None = None
    failed_line: int | None = None
    unmet: list[str] = field(default_factory=list)  # preconditions of the failed step, or goals
    final_state: int = 0

    def message(self) -> str:
        """One line for users: valid, the failing step and why, or the unmet goals."""
        if self.valid:
            return f"valid: {self.length} step{'s' if self.length != 1 else ''}, reaches the goal"
        if self.failed_step is not None:
            where = f" (line {self.failed_line})" if self.failed_line is not None else ""
            return (f"invalid: step {self.failed_step}{where} {self.failed_action} does not apply: "
                    f"unmet precondition{'s' if len(self.unmet) != 1 else ''} {' '.join(self.unmet)}")
        return (f"invalid: all {self.length} steps apply but the goal is not reached: "
                f"unmet goal{'s' if len(self.unmet) != 1 else ''} {' '.join(self.unmet)}")


def format_plan(actions: Sequence[str]) -> str:
    """The IPC plan-file text for `(name arg ...)` strings, ending with the unit-cost line."""
    lines = ["(" + " ".join(a.strip().strip("()").lower().split()) + ")" for a in actions]
    lines.append(f"; cost = {len(actions)} (unit cost)")
    return "\n".join(lines) + "\n"


def write_plan(path: str | Path, actions: Sequence[str]) -> Path:
    """Write an IPC plan file atomically (readers see the old file or the whole new one)."""
    return atomic.write_text(path, format_plan(actions))


def parse_plan_text(text: str, path: str = "<plan>") -> list[tuple[int, str]]:
    """(line number, `(name arg ...)` lower-cased) for each step; comments and blank lines skipped."""
    steps = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        match = _STEP.match(line)
        if match is None or not match.group(1).split():
            raise PddlError(f"expected one action like (name arg ...) per line, found {line[:60]!r}", path, line_no)
        steps.append((line_no, "(" + " ".join(match.group(1).lower().split()) + ")"))
    return steps


def read_plan_text(path: str | Path) -> str:
    """A plan file's text; missing, binary or huge files are refused with one line."""
    return read_text_file(path, "plan file", MAX_PLAN_BYTES)


def read_plan(path: str | Path, task: Task) -> list[PlanStep]:
    """The steps of a plan file, each resolved against `task` (errors name the file and line)."""
    path = str(path)
    return [resolve_step(task, text, path, line) for line, text in parse_plan_text(read_plan_text(path), path)]


def resolve_step(task: Task, text: str, path: str | None = None, line: int | None = None) -> PlanStep:
    """The ground action a step names, checking the action, arity, objects and their types."""
    name, *args = text.strip().strip("()").lower().split() or [""]
    key = "(" + " ".join([name, *args]) + ")"
    index = task.action_index.get(key)
    if index is not None:
        return PlanStep(key, line, index)
    schema = _schema(task, name)
    if schema is None:
        raise PddlError(f"unknown action {name!r} (the domain has {', '.join(sorted(a.name for a in task.domain.actions))})", path, line)
    if len(args) != len(schema.params):
        raise PddlError(f"{key}: {name} takes {len(schema.params)} argument{'s' if len(schema.params) != 1 else ''}, "
                        f"got {len(args)}", path, line)
    for arg, (var, want) in zip(args, schema.params):
        have = task.objects.get(arg)
        if have is None:
            raise PddlError(f"{key}: unknown object {arg}", path, line)
        if not task.domain.is_subtype(have, want):
            raise PddlError(f"{key}: {arg} is a {have}, but {name} expects a {want} for {var}", path, line)
    return PlanStep(key, line, None)


def _schema(task: Task, name: str) -> ActionSchema | None:
    return next((schema for schema in task.domain.actions if schema.name == name), None)


def replay(task: Task, actions: Sequence[int | str | PlanStep], start: int | None = None) -> ReplayResult:
    """Apply a plan from `start` (the initial state by default) and say whether it reaches the goal.

    Steps are action indices, `(name arg ...)` strings or `PlanStep`s from `read_plan`. The
    first step that does not apply stops the replay and is reported with its unmet
    preconditions (`Task.unmet_preconditions`); a plan that applies throughout but ends short
    of the goal is reported with `Task.unmet_goals`.
    """
    steps = [_as_step(task, a) for a in actions]
    state = task.init if start is None else start
    for number, step in enumerate(steps, 1):
        if step.action is None:
            unmet = _unmet_outside_task(task, step.text, state)
        elif task.is_applicable(state, step.action):
            state = task.apply(state, step.action)
            continue
        else:
            unmet = task.unmet_preconditions(state, step.action)
        return ReplayResult(False, len(steps), number - 1, number, step.text, step.line, unmet, state)
    if task.is_goal(state):
        return ReplayResult(True, len(steps), len(steps), final_state=state)
    return ReplayResult(False, len(steps), len(steps), unmet=task.unmet_goals(state), final_state=state)


def _as_step(task: Task, action: int | str | PlanStep) -> PlanStep:
    if isinstance(action, PlanStep):
        return action
    if isinstance(action, int):
        return PlanStep(task.actions[action].pddl, None, action)
    return resolve_step(task, action)


def _unmet_outside_task(task: Task, text: str, state: int) -> list[str]:
    """Unmet preconditions of a well-typed action that grounding pruned (it can never apply).

    Grounding keeps only actions whose static preconditions hold and whose fluent ones are
    reachable; this evaluates the lifted preconditions directly against `state`.
    """
    name, *args = text.strip("()").split()
    schema = _schema(task, name)
    binding = dict(zip((var for var, _ in schema.params), args))

    def ground(atom: Atom) -> Atom:
        return (atom[0], *(binding.get(term, term) for term in atom[1:]))

    def holds(atom: Atom) -> bool:
        if atom in task.static_facts:
            return True
        index = task.fact_index.get(atom)
        return index is not None and bool(state >> index & 1)

    unmet = [f"({' '.join(ground(a))})" for a in schema.pre_pos if not holds(ground(a))]
    unmet += [f"(not ({' '.join(ground(a))}))" for a in schema.pre_neg if holds(ground(a))]
    unmet += [f"(= {binding.get(a, a)} {binding.get(b, b)})" for a, b in schema.equal if binding.get(a, a) != binding.get(b, b)]
    unmet += [f"(not (= {binding.get(a, a)} {binding.get(b, b)}))" for a, b in schema.not_equal if binding.get(a, a) == binding.get(b, b)]
    return unmet
