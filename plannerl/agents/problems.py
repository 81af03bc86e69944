"""The instances an evaluation plays: generated tasks x seeds, or problem files, each labelled
with its optimal length and step limit.

Step limit: the paper's limit for its four tasks (`plannerl.tasks.generate.paper_step_limit`),
otherwise ceil(1.5 x the instance's optimal length); a problem file may state its own in a
comment line `; step-limit: N` (`declared_step_limit`), and `max_steps` overrides all three. Labelling
needs one optimal search per instance (none when an earlier run solved the same task:
`plannerl.planning.lengths`), so the `iter_` forms check every name and file first and search
only when the evaluation reaches the instance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from plannerl.errors import NoPlanError, PlannerlError, StateLimitError
from plannerl.pddl.task import Task
from plannerl.planning.lengths import optimal_length
from plannerl.planning.oracle import Oracle, make_oracle
from plannerl.planning.planner import load_task
from plannerl.tasks.generate import base_instance, check_task, generate_instance, is_random, known_tasks, paper_step_limit


@dataclass
class EvalProblem:
    """One instance to evaluate: the compiled task, its optimal length and its step limit."""

    name: str
    task: Task
    oracle: Oracle
    optimal_length: int
    step_limit: int
    task_name: str | None = None
    seed: int | None = None
    source: str | None = None

    @property
    def group(self) -> str:
        """The column this instance counts under: its task name, or its domain for files."""
        return self.task_name or self.task.domain_name


def make_problem(task: Task, *, name: str, task_name: str | None = None, seed: int | None = None,
                 source: str | None = None, max_steps: int | None = None, oracle: Oracle | None = None,
                 declared_limit: int | None = None) -> EvalProblem:
    """Label an instance with its optimal length (one optimal search, or the length an earlier
    run found for the same task) and its step limit (`max_steps`, else the file's
    `declared_limit`, else the default rule)."""
    if oracle is None:
        oracle = make_oracle(task)
    optimal = optimal_length(task, oracle)  # remembered across runs: the same instances search once
    if optimal is None:
        raise NoPlanError(f"{source or name}: no plan exists, so it cannot be evaluated")
    if max_steps is not None:
        if max_steps < 1:
            raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
        limit = max_steps
    elif declared_limit is not None:
        limit = declared_limit
    else:
        limit = _default_step_limit(task_name, optimal)
    return EvalProblem(name, task, oracle, optimal, limit, task_name, seed, source)


_STEP_LIMIT_LINE = re.compile(r"^\s*;+\s*step[- _]limit\s*[:=]\s*(.*?)\s*$", re.IGNORECASE)


def declared_step_limit(path: str | Path) -> int | None:
    """The step limit a problem file states in a comment line (`; step-limit: 40`), or None.

    Why: ceil(1.5 x optimal) suits a problem solved by a short plan with few detours; a user
    whose problem allows longer recoveries (or must be solved tightly) says so in the file
    itself, where it travels with the problem. A value that is not a positive integer, or two
    lines that disagree, is an error naming the file and line."""
    found: tuple[int, int] | None = None
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        match = _STEP_LIMIT_LINE.match(line)
        if not match:
            continue
        value = match.group(1)
        if not (value.isascii() and value.isdigit() and int(value) >= 1):
            raise PlannerlError(f"{path}:{number}: step-limit must be a positive integer, got {value!r}")
        if found is not None and found[0] != int(value):
            raise PlannerlError(f"{path}:{number}: step-limit {value} disagrees with line {found[1]} ({found[0]})")
        found = found or (int(value), number)
    return found[0] if found else None


def _default_step_limit(task_name: str | None, optimal: int) -> int:
    if task_name is not None:
        paper = paper_step_limit(task_name)
        if paper is not None:
            return paper
    return math.ceil(1.5 * optimal)


def problems_from_tasks(task_names: Sequence[str], seeds: Sequence[int | None], *, max_steps: int | None = None,
                        exclude: Sequence[str] = (), skipped: list[str] | None = None) -> list[EvalProblem]:
    """Generated instances: every task x every seed, in that order; seed None is the task's
    unrandomised (Robotouille base) layout. `exclude` names the recipes whose goals the
    "random" task's recipes must avoid (held-out tasks stay held out). `skipped`: see
    `iter_problems_from_tasks`."""
    return list(iter_problems_from_tasks(task_names, seeds, max_steps=max_steps, exclude=exclude, skipped=skipped))


def iter_problems_from_tasks(task_names: Sequence[str], seeds: Sequence[int | None], *,
                             max_steps: int | None = None, exclude: Sequence[str] = (),
                             skipped: list[str] | None = None) -> Iterator[EvalProblem]:
    """Like `problems_from_tasks`, labelling each instance only when it is reached.

    Task names and the seed list are checked now, so a typo fails before any search; each
    instance's optimal search (seconds to a minute for the larger tasks) runs as the
    evaluation reaches it, so episodes start early and Ctrl-C keeps those already played.

    An instance whose optimal search passes the planner's state limit (a few
    lettuce_tomato_sandwich layouts at Robotouille's ranges) has no optimal length to score
    against: with a `skipped` list it is left out and the reason (naming it) appended there (the same
    instances for the same seeds: the limit counts states), without one it is an error.
    """
    if max_steps is not None and max_steps < 1:
        raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
    known = list(known_tasks())
    for task_name in task_names:
        if task_name not in known:
            raise PlannerlError(f"unknown task {task_name!r}; known tasks: {', '.join(known)}")
        if not seeds:
            raise PlannerlError(f"task {task_name!r} has no instances: the seed list is empty")
        if is_random(task_name) and None in seeds:
            raise PlannerlError(f"task {task_name!r} has no base layout: each seed draws its recipe, so give seeds")
        check_task(task_name, exclude=exclude if is_random(task_name) else ())
    return _label_generated(list(task_names), list(seeds), max_steps, tuple(exclude), skipped)


def _label_generated(task_names: list[str], seeds: list[int | None], max_steps: int | None,
                     exclude: tuple[str, ...], skipped: list[str] | None) -> Iterator[EvalProblem]:
    for task_name in task_names:
        for seed in seeds:
            if seed is None:
                instance = base_instance(task_name)
            elif is_random(task_name):
                instance = generate_instance(task_name, seed, exclude=exclude)
            else:
                instance = generate_instance(task_name, seed)
            where = f"{task_name} base layout" if seed is None else f"{task_name} seed {seed}"
            # the generator's own search when it ran one (choosing the goal binding), else a cached length
            task, oracle = instance.solved[:2] if instance.solved is not None else (instance.load_task(), None)
            try:
                problem = make_problem(task, name=instance.name, task_name=task_name, seed=seed, source=where,
                                       max_steps=max_steps, oracle=oracle)
            except StateLimitError as error:
                error = StateLimitError(f"instance {instance.name} of {instance.task_name}: {error}")
                if skipped is None:
                    raise error from None
                skipped.append(str(error))  # names the instance
                continue
            yield problem


def problems_from_files(paths: Sequence[str | Path], *, domain: str | Path | None = None,
                        max_steps: int | None = None) -> list[EvalProblem]:
    """Explicit problem files of any domain (each domain found beside its problem unless given)."""
    return list(iter_problems_from_files(paths, domain=domain, max_steps=max_steps))


def iter_problems_from_files(paths: Sequence[str | Path], *, domain: str | Path | None = None,
                             max_steps: int | None = None) -> Iterator[EvalProblem]:
    """Like `problems_from_files`: every file is read and grounded now (a bad file fails before
    any episode), each optimal search runs when the evaluation reaches its problem."""
    if max_steps is not None and max_steps < 1:
        raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
    loaded = [(load_task(domain, path), str(path), declared_step_limit(path)) for path in paths]
    return (make_problem(task, name=task.name, source=source, max_steps=max_steps, declared_limit=declared)
            for task, source, declared in loaded)



def problems_for_target(target: str | Path, *, seed: int | None = 42, domain: str | Path | None = None,
                        max_steps: int | None = None) -> list[EvalProblem]:
    """`plannerl play TARGET`: a PROBLEM file when it names one (or ends in .pddl), else a task
    name played on the instance of `seed` (None: the task's unrandomised layout)."""
    path = Path(target)
    if path.suffix == ".pddl" or path.exists():
        return problems_from_files([path], domain=domain, max_steps=max_steps)
    return problems_from_tasks([str(target)], [seed], max_steps=max_steps)
