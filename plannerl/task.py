"""The compiled task: ground once, then every planning step is integer arithmetic.

A state is a Python int whose bit k says whether fact k holds. A ground action holds four masks:
it applies in `s` iff `s & pre == pre and not s & neg`, and leads to `(s & ~delete) | add`.
Static facts (predicates no action changes) are checked while grounding and dropped, so masks
only carry facts that can change.

Grounding instantiates only actions whose positive preconditions are relaxed-reachable from the
initial state, so a problem with many objects does not pay for actions that can never apply.
Facts and actions are sorted by name: action index order is the documented tie-break for the
canonical plan (see `plannerl.search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from plannerl.errors import NoPlanError, PddlError
from plannerl.pddl import ActionSchema, Atom, Domain, Problem


@dataclass(frozen=True, slots=True)
class Action:
    """A ground action with its precondition and effect masks."""

    schema: str
    args: tuple[str, ...]
    pre: int
    neg: int
    add: int
    delete: int

    @property
    def pddl(self) -> str:
        """The IPC plan-file form, e.g. `(move robot1 table1 table2)`."""
        return "(" + " ".join((self.schema, *self.args)) + ")"

    def __str__(self) -> str:
        return self.pddl


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

    def __post_init__(self) -> None:
        self.fact_index = {fact: i for i, fact in enumerate(self.facts)}
        self.action_index = {action.pddl: i for i, action in enumerate(self.actions)}
        self._buckets = _successor_buckets(self)

    def applicable(self, state: int) -> list[int]:
        """Indices of the actions applicable in `state`, in ascending (canonical) order."""
        found = []
        buckets = self._buckets
        for bucket in buckets[-1], *(buckets[k] for k in _set_bits(state) if k in buckets):
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
        return [self.facts[k] for k in _set_bits(state)]

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
        missing = [f"({' '.join(self.facts[k])})" for k in _set_bits(act.pre & ~state)]
        present = [f"(not ({' '.join(self.facts[k])}))" for k in _set_bits(act.neg & state)]
        return missing + present

    def unmet_goals(self, state: int) -> list[str]:
        missing = [f"({' '.join(self.facts[k])})" for k in _set_bits(self.goal_pos & ~state)]
        present = [f"(not ({' '.join(self.facts[k])}))" for k in _set_bits(self.goal_neg & state)]
        return missing + present


def _set_bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


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
    buckets: dict[int, list[tuple[int, int, int]]] = {-1: []}
    for index, action in enumerate(task.actions):
        pre_bits = list(_set_bits(action.pre))
        key = min(pre_bits, key=lambda k: (share[task.facts[k][0]], k)) if pre_bits else -1
        buckets.setdefault(key, []).append((index, action.pre, action.neg))
    return buckets


def compile_task(domain: Domain, problem: Problem) -> Task:
    """Ground `problem` and encode it as bitmasks."""
    fluent_predicates = {atom[0] for schema in domain.actions for atom in schema.add + schema.delete}
    static_facts = frozenset(atom for atom in problem.init if atom[0] not in fluent_predicates)
    objects_of_type = _objects_by_type(domain, problem)

    reached: set[Atom] = set(problem.init)
    ground: dict[tuple[str, tuple[str, ...]], tuple[ActionSchema, dict[str, str]]] = {}
    while True:
        by_predicate = _index_by_predicate(reached)
        new_facts: set[Atom] = set()
        for schema in domain.actions:
            for binding in _bindings(schema, by_predicate, objects_of_type, static_facts, fluent_predicates):
                key = (schema.name, tuple(binding[var] for var, _ in schema.params))
                if key in ground:
                    continue
                ground[key] = (schema, binding)
                for atom in schema.add:
                    fact = _substitute(atom, binding)
                    if fact not in reached:
                        new_facts.add(fact)
        if not new_facts:
            break
        reached |= new_facts

    fluent_reached = {atom for atom in reached if atom[0] in fluent_predicates}
    for atom in problem.goal_pos:
        if atom not in reached:
            raise NoPlanError(f"no plan exists: goal ({' '.join(atom)}) is unreachable even ignoring delete effects")
    for atom in problem.goal_neg:
        if atom[0] not in fluent_predicates and atom in static_facts:
            raise NoPlanError(f"no plan exists: goal (not ({' '.join(atom)})) contradicts a static fact")
    facts = sorted(fluent_reached)
    index = {fact: i for i, fact in enumerate(facts)}

    def mask(atoms) -> int:
        bits = 0
        for atom in atoms:
            if atom in index:
                bits |= 1 << index[atom]
        return bits

    actions = []
    for (name, args), (schema, binding) in sorted(ground.items()):
        pos = [_substitute(a, binding) for a in schema.pre_pos if a[0] in fluent_predicates]
        neg = [_substitute(a, binding) for a in schema.pre_neg if a[0] in fluent_predicates]
        add = mask(_substitute(a, binding) for a in schema.add)
        delete = mask(_substitute(a, binding) for a in schema.delete) & ~add
        actions.append(Action(name, args, mask(pos), mask(neg), add, delete))

    init = mask(problem.init)
    goal_pos = mask(problem.goal_pos)
    goal_neg = mask(a for a in problem.goal_neg if a[0] in fluent_predicates)
    return Task(problem.name, domain.name, facts, actions, init, goal_pos, goal_neg,
                dict(problem.objects), static_facts, domain, problem)


def _objects_by_type(domain: Domain, problem: Problem) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {t: [] for t in domain.supertype}
    for obj, type_name in sorted(problem.objects.items()):
        node = type_name
        while True:
            result.setdefault(node, []).append(obj)
            if node == "object":
                break
            node = domain.supertype.get(node, "object")
    return result


def _index_by_predicate(facts: set[Atom]) -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for fact in facts:
        index.setdefault(fact[0], []).append(fact[1:])
    return index


def _substitute(atom: Atom, binding: dict[str, str]) -> Atom:
    return (atom[0], *(binding.get(term, term) for term in atom[1:]))


def _bindings(schema, by_predicate, objects_of_type, static_facts, fluent_predicates):
    """Every parameter binding whose positive preconditions are all in the reached facts.

    A backtracking join over the precondition atoms (most-bound first), then the remaining
    parameters range over their type's objects. Static negative preconditions and
    (in)equalities are checked on complete bindings.
    """
    param_type = dict(schema.params)
    remaining = list(schema.pre_pos)

    def join(binding: dict[str, str], atoms: list[Atom]):
        if not atoms:
            yield from _complete(binding)
            return
        # the atom with most bound terms first keeps the join narrow
        atoms = sorted(atoms, key=lambda a: -sum(t in binding or not t.startswith("?") for t in a[1:]))
        atom, rest = atoms[0], atoms[1:]
        for args in by_predicate.get(atom[0], ()):
            extended = dict(binding)
            for term, value in zip(atom[1:], args):
                if term.startswith("?"):
                    bound = extended.get(term)
                    if bound is None:
                        if value not in objects_set[param_type[term]]:
                            break
                        extended[term] = value
                    elif bound != value:
                        break
                elif term != value:
                    break
            else:
                yield from join(extended, rest)

    objects_set = {t: set(objs) for t, objs in objects_of_type.items()}

    def _complete(binding: dict[str, str]):
        free = [var for var, _ in schema.params if var not in binding]
        choices = [objects_of_type.get(param_type[var], []) for var in free]
        for values in product(*choices):
            full = dict(binding)
            full.update(zip(free, values))
            if any(full.get(a, a) != full.get(b, b) for a, b in schema.equal):
                continue
            if any(full.get(a, a) == full.get(b, b) for a, b in schema.not_equal):
                continue
            if any(_substitute(atom, full) in static_facts
                   for atom in schema.pre_neg if atom[0] not in fluent_predicates):
                continue
            yield full

    yield from join({}, remaining)
