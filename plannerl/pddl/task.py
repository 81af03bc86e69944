"""The compiled task: ground once, then every planning step is integer arithmetic.

A state is a Python int whose bit k says whether fact k holds. A ground action holds four masks:
it applies in `s` iff `s & pre == pre and not s & neg`, and leads to `(s & ~delete) | add`.
Static facts (predicates no action changes) are checked while grounding and dropped, so masks
only carry facts that can change.

Grounding (`plannerl.pddl.grounding`) instantiates only actions whose positive preconditions are
relaxed-reachable from the initial state; facts and actions are sorted by name, and action index
order is the documented tie-break for the canonical plan (see `plannerl.planning.search`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from plannerl.errors import NoPlanError, PddlError
from plannerl.pddl.grounding import Action, ground_problem
from plannerl.pddl.reader import Atom, Domain, Problem

__all__ = ["Action", "Task", "TaskCaches", "compile_task", "set_bits"]


@dataclass
class TaskCaches:
    """What other layers derive from one task and reuse for its lifetime, named here so a reader
    sees everything a task carries: the search engines by symmetry setting
    (`plannerl.planning.search.engine_for`), the render data (`plannerl.tasks.render`) and the
    answer parser's sentence index (`plannerl.tasks.actions`). Never part of equality or repr."""

    engines: dict[bool, Any] = field(default_factory=dict)
    render: Any = None
    sentence_index: dict[str, list[int]] | None = None


@dataclass
class Task:
    """A grounded STRIPS task over bit-encoded states."""

    name: str
    domain_name: str
    facts: list[Atom]
    actions: list[Action]
    init: int
    goal_pos: int
    goal_neg: int
    objects: dict[str, str]
    static_facts: frozenset[Atom]
    domain: Domain
    problem: Problem
    caches: TaskCaches = field(default_factory=TaskCaches, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.fact_index = {fact: i for i, fact in enumerate(self.facts)}
        self._bucket_cache: dict[int, list[tuple[int, int, int]]] | None = None

    @cached_property
    def action_index(self) -> dict[str, int]:
        """Action index by IPC text, e.g. `(move robot1 table1 table2)`; made on first use (a
        generated kitchen has thousands of actions and most tasks never look one up by text)."""
        return {action.pddl: i for i, action in enumerate(self.actions)}

    @property
    def _buckets(self) -> dict[int, list[tuple[int, int, int]]]:
        """The successor index, built on first use (searches in `plannerl.planning.search` have their own)."""
        if self._bucket_cache is None:
            self._bucket_cache = _successor_buckets(self)
        return self._bucket_cache

    def applicable(self, state: int) -> list[int]:
        """Indices of the actions applicable in `state`, in ascending (canonical) order."""
        found = []
        buckets = self._buckets
        for bucket in buckets[-1], *(buckets[k] for k in set_bits(state) if k in buckets):
            for index, pre, neg in bucket:
                if state & pre == pre and not state & neg:
                    found.append(index)
        found.sort()
        return found

    def apply(self, state: int, action: int) -> int:
        act = self.actions[action]
        return (state & ~act.delete) | act.add

    def is_applicable(self, state: int, action: int) -> bool:
        act = self.actions[action]
        return state & act.pre == act.pre and not state & act.neg

    def is_goal(self, state: int) -> bool:
        return state & self.goal_pos == self.goal_pos and not state & self.goal_neg

    def successors(self, state: int) -> list[tuple[int, int]]:
        """(action index, next state) for every applicable action, in canonical order."""
        actions = self.actions
        return [(a, (state & ~actions[a].delete) | actions[a].add) for a in self.applicable(state)]

    def true_facts(self, state: int) -> list[Atom]:
        """The fluent facts that hold in `state` (static facts are in `static_facts`)."""
        return [self.facts[k] for k in set_bits(state)]

    def state_of(self, atoms) -> int:
        """The state in which exactly these (fluent) atoms hold; unknown atoms are refused."""
        state = 0
        for atom in atoms:
            if atom in self.static_facts:
                continue
            if atom not in self.fact_index:
                raise PddlError(f"fact ({' '.join(atom)}) is not part of this task")
            state |= 1 << self.fact_index[atom]
        return state

    def find_action(self, text: str) -> int | None:
        """The index of a ground action written as `(name arg ...)` (any case/spacing)."""
        key = "(" + " ".join(text.strip().strip("()").lower().split()) + ")"
        return self.action_index.get(key)

    def unmet_preconditions(self, state: int, action: int) -> list[str]:
        """Why `action` does not apply in `state`: its failing preconditions, as PDDL text."""
        act = self.actions[action]
        missing = [f"({' '.join(self.facts[k])})" for k in set_bits(act.pre & ~state)]
        present = [f"(not ({' '.join(self.facts[k])}))" for k in set_bits(act.neg & state)]
        return missing + present

    def unmet_goals(self, state: int) -> list[str]:
        missing = [f"({' '.join(self.facts[k])})" for k in set_bits(self.goal_pos & ~state)]
        present = [f"(not ({' '.join(self.facts[k])}))" for k in set_bits(self.goal_neg & state)]
        return missing + present


def set_bits(mask: int) -> list[int]:
    """The indices of the bits set in `mask`, ascending: the facts a state or mask names."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _successor_buckets(task: Task) -> dict[int, list[tuple[int, int, int]]]:
    """Index each action under its least-often-true precondition fact.

    `applicable` then only tests the actions filed under facts that hold in the state. How often
    a fact holds is estimated from the initial state: of the reachable facts of a predicate,
    the fraction true at the start (a robot is at 1 of 25 stations; a table is empty or not).
    Key -1 holds actions without fluent preconditions.
    """
    per_predicate_total: dict[str, int] = {}
    per_predicate_true: dict[str, int] = {}
    for k, fact in enumerate(task.facts):
        per_predicate_total[fact[0]] = per_predicate_total.get(fact[0], 0) + 1
        if task.init >> k & 1:
            per_predicate_true[fact[0]] = per_predicate_true.get(fact[0], 0) + 1
    share = {pred: (per_predicate_true.get(pred, 0) + 1) / (total + 1) for pred, total in per_predicate_total.items()}
    # the rarest precondition is the lowest fact of the lowest share level the precondition
    # meets: a few int ANDs per action instead of a walk over its bits
    levels: dict[float, int] = {}
    for k, fact in enumerate(task.facts):
        levels[share[fact[0]]] = levels.get(share[fact[0]], 0) | 1 << k
    masks = [levels[level] for level in sorted(levels)]
    buckets: dict[int, list[tuple[int, int, int]]] = {-1: []}
    for index, action in enumerate(task.actions):
        pre, key = action.pre, -1
        for mask in masks:
            rare = pre & mask
            if rare:
                key = (rare & -rare).bit_length() - 1
                break
        buckets.setdefault(key, []).append((index, pre, action.neg))
    return buckets


def compile_task(domain: Domain, problem: Problem) -> Task:
    """Ground `problem` and encode it as bitmasks."""
    fluent_predicates = {atom[0] for schema in domain.actions for atom in schema.add + schema.delete}
    static_facts = frozenset(atom for atom in problem.init if atom[0] not in fluent_predicates)
    reached, facts, bit_of, actions = ground_problem(domain, problem, static_facts, fluent_predicates)

    for atom in problem.goal_pos:
        if atom not in reached:
            raise NoPlanError(f"no plan exists: goal ({' '.join(atom)}) is unreachable even ignoring delete effects")
    for atom in problem.goal_neg:
        if atom[0] not in fluent_predicates and atom in static_facts:
            raise NoPlanError(f"no plan exists: goal (not ({' '.join(atom)})) contradicts a static fact")

    def mask(atoms) -> int:
        bits = 0
        for atom in atoms:
            bits |= bit_of.get(atom[0], {}).get(atom[1] if len(atom) == 2 else atom[1:], 0)
        return bits

    init = mask(problem.init)
    goal_pos = mask(problem.goal_pos)
    goal_neg = mask(a for a in problem.goal_neg if a[0] in fluent_predicates)
    return Task(problem.name, domain.name, list(facts), list(actions), init, goal_pos, goal_neg,
                dict(problem.objects), static_facts, domain, problem)


