"""A user's own PDDL domain as a task: problem files, and further start states reached by random walks.

The cooking recipes have a generator; another domain has only the problem files a user wrote,
rarely more than a handful. `training_starts` multiplies them without knowing the domain: from
a problem's initial state, `walks` random walks of 1..`walk_length` applicable actions each end
in further start states with the same goal. Each is reachable by construction, kept only if it
is not a goal state and still has a plan (a walk may consume something the goal needs), and
kept once. Every start becomes a task of its own (`with_start`) that shares the problem's oracle,
so the expert rows, off-expert states, recovery rollouts and evaluation all work on it as on a
generated instance.

More goals without a generator. Walks keep a problem's goal, so three problem files teach three
goals, and a model trained on them does not learn to read a goal (Blocksworld from 3 files: 1.00
on its own three, 0.00-0.15 on other problems). `relabelled_goals` draws further goals the same
way, in hindsight: the end of a random walk from the initial state is a state the domain can
reach, and its facts of the kinds the training problems' goals name (same predicate, same
argument types: `on(block, block)`, `at(package, location)` but not a truck's `at`) make a new
goal that is solvable by construction. Each becomes a problem of its own with its own oracle.

Seeds. Recovery rollouts and validation play instances named by seeds, as for a recipe:
`seeded_start(problems, seed, walk_length)` is problem `seed mod n` walked by `Random(seed)`.
"""

from __future__ import annotations

import glob
import random
from dataclasses import dataclass, replace
from pathlib import Path

from plannerl.errors import NoPlanError, PlannerlError
from plannerl.pddl.reader import is_domain_file
from plannerl.pddl.task import Task, set_bits
from plannerl.planning.oracle import Oracle, make_oracle
from plannerl.planning.planner import load_task


@dataclass
class Problem:
    """One problem file of a domain: its grounded task and the oracle that labels its states."""

    path: Path
    task: Task
    oracle: Oracle

    @property
    def name(self) -> str:
        return self.path.stem


def find_problems(spec: str | Path, *, key: str = "problems") -> list[Path]:
    """The problem files `spec` names: a folder (its *.pddl files but any domain file), a glob, or
    a file; sorted by path. Nothing found is an error naming `key` and the spec."""
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        found = sorted(path.glob("*.pddl"))
    elif any(ch in spec for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    elif path.is_file():
        found = [path]
    else:
        raise PlannerlError(f"{key}: {spec} is neither a folder, a file nor a glob that matches a file")
    found = [p for p in found if p.is_file() and not is_domain_file(p)]
    if not found:
        raise PlannerlError(f"{key}: no PDDL problem files in {spec}")
    return found


def load_problems(domain: str | Path, paths: list[Path]) -> list[Problem]:
    """Every problem parsed against `domain` and checked to have a plan, before any other work.

    A file that does not match the domain, uses a feature outside the supported subset or has
    no plan is one error naming it (the reader's and the planner's own errors)."""
    problems = []
    for path in paths:
        task = load_task(domain, path)
        oracle = make_oracle(task)
        if oracle.h_star(task.init) is None:
            raise NoPlanError(f"{path}: the goal cannot be reached from the initial state, so it cannot be trained on")
        problems.append(Problem(path, task, oracle))
    return problems


def with_start(task: Task, state: int, name: str) -> Task:
    """The task with `state` as its initial state (same facts, actions and goal)."""
    return replace(task, init=state, name=name)


def random_walk(task: Task, rng: random.Random, steps: int) -> int:
    """The state after up to `steps` random actions from the initial state, each drawn among
    those that lead to a state this walk has not visited (it stops early when none does).

    Why self-avoiding: in a reversible domain a plain random walk mostly undoes its last step
    (Blocksworld: unstack, stack back), so 30 walks from one tower found 7 distinct starts."""
    state, visited = task.init, {task.init}
    for _ in range(steps):
        fresh = [n for n in (task.apply(state, a) for a in task.applicable(state)) if n not in visited]
        if not fresh:
            break
        state = rng.choice(fresh)
        visited.add(state)
    return state


def walked_start(problem: Problem, rng: random.Random, walk_length: int) -> int | None:
    """The end of a walk of 1..walk_length steps drawn from `rng`, or None when it is a goal
    state or a dead end (no start to train or play from)."""
    state = random_walk(problem.task, rng, rng.randint(1, walk_length))
    if problem.task.is_goal(state) or problem.oracle.h_star(state) is None:
        return None
    return state


def training_starts(problem: Problem, *, walks: int, walk_length: int, seed: int) -> list[int]:
    """The problem's initial state, then the distinct solvable non-goal ends of `walks` walks."""
    starts, seen = [problem.task.init], {problem.task.init}
    for k in range(walks if walk_length else 0):
        state = walked_start(problem, random.Random(f"{seed}:{problem.name}:{k}"), walk_length)
        if state is not None and state not in seen:
            seen.add(state)
            starts.append(state)
    return starts


def fact_kind(task: Task, atom) -> tuple[str, ...]:
    """(predicate, argument types...): what kind of fact an atom is."""
    return (atom[0], *(task.objects.get(arg, "") for arg in atom[1:]))


def goal_kinds(task: Task, atoms) -> set[tuple[str, ...]]:
    """The kinds (`fact_kind`) of a goal's atoms: what kinds of fact it asks for."""
    return {fact_kind(task, atom) for atom in atoms}


def relabelled_goals(problem: Problem, kinds: set[tuple[str, ...]], *, goals: int, walk_length: int,
                     seed: int) -> list[Problem]:
    """Up to `goals` problems with the initial state of `problem` and a new goal each: the facts
    of `kinds` (`goal_kinds` of the training goals) true at a random walk's end (1..walk_length
    steps). A goal already true at the start, or already drawn (the original's included), is
    skipped."""
    task = problem.task
    wanted = sum(1 << k for k, fact in enumerate(task.facts) if fact_kind(task, fact) in kinds)
    found, seen = [], {task.goal_pos}
    for k in range(goals if walk_length else 0):
        rng = random.Random(f"{seed}:{problem.name}:goal{k}")
        goal = random_walk(task, rng, rng.randint(1, walk_length)) & wanted
        if not goal or goal in seen or task.init & goal == goal:
            continue
        seen.add(goal)
        name = f"{problem.name}_goal{k}"
        atoms = tuple(task.facts[i] for i in set_bits(goal))
        relabelled = replace(task, goal_pos=goal, goal_neg=0, name=name,
                             problem=replace(task.problem, name=name, goal_pos=atoms, goal_neg=(), text=""))
        found.append(Problem(problem.path.with_name(f"{name}.pddl"), relabelled, make_oracle(relabelled)))
    return found


def seeded_start(problems: list[Problem], seed: int, walk_length: int) -> tuple[Problem, int]:
    """(problem, start state) of an instance named by a seed: problem `seed mod n`, walked by
    `Random(seed)` for 1..walk_length steps (its own initial state when that ends at the goal,
    in a dead end, or when walk_length is 0)."""
    problem = problems[seed % len(problems)]
    state = walked_start(problem, random.Random(seed), walk_length) if walk_length else None
    return problem, problem.task.init if state is None else state


def state_facts(task: Task, state: int | None = None) -> frozenset:
    """The facts true in `state` (default: the initial state) with the goal: what makes two problems equal."""
    state = task.init if state is None else state
    goal = frozenset(task.facts[i] for i in set_bits(task.goal_pos))
    return frozenset(task.facts[i] for i in set_bits(state)) | task.static_facts | {("goal", goal)}


def check_disjoint(training: list[Problem], heldout: list[Problem], *, key: str = "eval.problems") -> None:
    """Refuse a held-out problem whose initial state and goal equal a training problem's."""
    seen = {state_facts(p.task): p.path for p in training}
    for problem in heldout:
        twin = seen.get(state_facts(problem.task))
        if twin is not None:
            raise PlannerlError(f"{key}: {problem.path} has the same initial state and goal as training problem {twin}")
