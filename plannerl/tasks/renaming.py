"""Consistent renaming of a task's objects: the same problem under other names.

Why: the goal binding of a generated instance ties on names (of two interchangeable breads the
lower-numbered one becomes the base), so in almost every training row of double_cheese_burger
the stack starts on `bottombun1` and in cheese_sandwich on `bread1`. A model trained on those
rows learns "the base is number 1" instead of reading the goal, and fails on exactly the
instances whose goal says `bread2` (measured: cheese_sandwich 0.60 on the paper's seeds). A
renamed copy of each training instance shows the same states, plans and labels with the
numbers shuffled, so only the goal in the prompt tells which bread is the base. Measured
(docs/training.md, session 9): with half the instances renamed the built-in model did worse
(cheese_sandwich 0.86 -> 0.62 on fresh seeds), so `data.rename` is off by default.

Which objects: those named `<word><number>` (`bread2`, `table14`, `ball3`); each group of one
type and one word has its numbers permuted among themselves. Names without a number (a user's
domain: Blocksworld's blocks `a`..`h`, Gripper's `left` and `right`) are permuted within their
type as well, except the domain's constants and the names in a static fact: a fixed relation
such as the cooking domain's `(next zero one)` gives its names an order a prompt reads as
words (`lettuce1 cut three`).
A single object of its group is never renamed.

The renamed task shares every bitmask with the original (fact k and action k are the same
fact and action, renamed), so the original's oracle labels it without a new search. Action
indices keep the original's order, so the canonical (expert) action among several optimal
ones follows the original names; every optimal action is labelled either way.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from plannerl.pddl.task import Task

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def object_renaming(task: Task, rng: random.Random) -> dict[str, str]:
    """A permutation of the task's object names within each group (numbered: one type and one
    word; unnumbered: one type, neither a constant nor in a static fact), drawn from `rng` in a fixed order
    (numbered groups first, each kind sorted), so the same rng state gives the same renaming."""
    fixed = {arg for fact in task.static_facts for arg in fact[1:]} | set(task.domain.constants)
    groups: dict[tuple[str, str], list[str]] = {}
    for name, type_name in task.objects.items():
        match = _NUMBERED.match(name)
        if match and match.group(1):
            groups.setdefault((type_name, match.group(1)), []).append(name)
        elif not match and name not in fixed:
            groups.setdefault((type_name, ""), []).append(name)
    renaming: dict[str, str] = {}
    for key in sorted(groups, key=lambda key: (key[1] == "", key)):  # numbered groups first: they draw as they always did
        names = sorted(groups[key])
        if len(names) > 1:
            shuffled = rng.sample(names, len(names))
            renaming.update((old, new) for old, new in zip(names, shuffled) if old != new)
    return renaming


def renamed_task(task: Task, renaming: dict[str, str]) -> Task:
    """`task` with every object name mapped by `renaming` (names it lacks stay): same masks,
    same fact and action indices, so states and oracles carry over unchanged."""
    if not renaming:
        return task

    def atom(fact: tuple[str, ...]) -> tuple[str, ...]:
        return (fact[0], *(renaming.get(arg, arg) for arg in fact[1:]))

    problem = task.problem
    renamed_problem = replace(problem, objects={renaming.get(o, o): t for o, t in problem.objects.items()},
                              init={atom(a) for a in problem.init}, goal_pos=tuple(atom(a) for a in problem.goal_pos),
                              goal_neg=tuple(atom(a) for a in problem.goal_neg), text="")
    actions = [replace(action, args=tuple(renaming.get(arg, arg) for arg in action.args)) for action in task.actions]
    return Task(task.name, task.domain_name, [atom(f) for f in task.facts], actions, task.init, task.goal_pos, task.goal_neg,
                {renaming.get(o, o): t for o, t in task.objects.items()}, frozenset(atom(a) for a in task.static_facts),
                task.domain, renamed_problem)
