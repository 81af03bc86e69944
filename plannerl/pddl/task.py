"""The compiled task: ground once, then every planning step is integer arithmetic.

A state is a Python int whose bit k says whether fact k holds. A ground action holds four masks:
it applies in `s` iff `s & pre == pre and not s & neg`, and leads to `(s & ~delete) | add`.
Static facts (predicates no action changes) are checked while grounding and dropped, so masks
only carry facts that can change.

Grounding instantiates only actions whose positive preconditions are relaxed-reachable from the
initial state, so a problem with many objects does not pay for actions that can never apply.
Facts and actions are sorted by name: action index order is the documented tie-break for the
canonical plan (see `plannerl.planning.search`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from itertools import product, repeat
from operator import and_, invert, itemgetter, or_

from plannerl.errors import LimitError, NoPlanError, PddlError
from plannerl.pddl.reader import ActionSchema, Atom, Domain, Problem

# A 4 KB problem can ground to billions of actions (300 objects, one 4-parameter action): stop
# with a clear LimitError instead of filling memory. Real tasks here ground to under 20,000.
MAX_GROUND_ACTIONS = 1_000_000


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
    reached, facts, bit_of, actions = _grounding(domain, problem, static_facts, fluent_predicates)

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


# The last few groundings, by domain, objects and initial state: the goal is not read while
# grounding, and the instance generator compares several goal bindings of one initial state.
GROUNDING_CACHE = 4
_GROUNDINGS: OrderedDict[tuple, tuple] = OrderedDict()


def _grounding(domain: Domain, problem: Problem, static_facts, fluent_predicates) -> tuple:
    """(reached atoms, sorted fluent facts, fact bits by predicate, actions) of a problem."""
    key = (id(domain), tuple(sorted(problem.objects.items())), frozenset(problem.init))
    cached = _GROUNDINGS.get(key)
    if cached is not None and cached[0] is domain:  # the entry holds its domain, so the id is not reused
        _GROUNDINGS.move_to_end(key)
        return cached[1:]
    objects_of_type = _objects_by_type(domain, problem)
    ground, reached = _relaxed_grounding(domain, problem, objects_of_type, static_facts, fluent_predicates)
    facts = sorted(atom for atom in reached if atom[0] in fluent_predicates)
    bit_of: dict[str, dict] = {}
    for i, fact in enumerate(facts):
        bit_of.setdefault(fact[0], {})[fact[1] if len(fact) == 2 else fact[1:]] = 1 << i
    masks_of = {schema.name: _MaskBuilder(schema, bit_of, fluent_predicates) for schema in domain.actions}
    by_schema: dict[str, list[tuple[str, ...]]] = {}
    for name, args in ground:
        by_schema.setdefault(name, []).append(args)
    actions: list[Action] = []
    for name in sorted(by_schema):  # the order of sorted (name, args) pairs
        args_list = sorted(by_schema[name])
        actions += map(Action, repeat(name), args_list, *masks_of[name].masks(args_list))
    _GROUNDINGS[key] = (domain, reached, facts, bit_of, actions)
    while len(_GROUNDINGS) > GROUNDING_CACHE:
        _GROUNDINGS.popitem(last=False)
    return reached, facts, bit_of, actions


class _MaskBuilder:
    """Turns an action schema's argument tuple into its four masks with one dict lookup per atom.

    Each atom template becomes (bits, getter): `bits` maps a predicate's ground arguments (a
    string for unary predicates, a tuple otherwise) to the fact's bit, and `getter` picks those
    arguments out of the action's argument tuple. Templates with constants (rare) fill their
    arguments in on each call.
    """

    def __init__(self, schema: ActionSchema, bit_of: dict[str, dict], fluent_predicates) -> None:
        position = {var: i for i, (var, _) in enumerate(schema.params)}

        def compile_atoms(atoms) -> tuple[list, list]:
            by_getter, by_fill = [], []
            for atom in atoms:
                if atom[0] not in fluent_predicates:
                    continue
                terms = atom[1:]
                bits = bit_of.get(atom[0], {})
                if all(t in position for t in terms) and terms:
                    index = [position[t] for t in terms]
                    by_getter.append((bits, itemgetter(*index) if len(index) > 1 else itemgetter(index[0])))
                else:
                    by_fill.append((bits, terms if len(terms) != 1 else terms[0]))
            return by_getter, by_fill

        self.pre = compile_atoms(schema.pre_pos)
        self.neg = compile_atoms(schema.pre_neg)
        self.add = compile_atoms(schema.add)
        self.delete = compile_atoms(schema.delete)
        self.position = position

    def _column(self, atoms, args_list: list[tuple[str, ...]]) -> list[int]:
        """One mask per argument tuple, a whole schema at a time (map runs the lookups without a
        Python call per action)."""
        by_getter, by_fill = atoms
        bits = [0] * len(args_list)
        for table, getter in by_getter:
            bits = list(map(or_, bits, map(table.get, map(getter, args_list), repeat(0))))
        for table, fixed in by_fill:
            bits = [b | table.get(self._fill(fixed, args), 0) for b, args in zip(bits, args_list)]
        return bits

    def _fill(self, terms, args):
        if isinstance(terms, str):
            return args[self.position[terms]] if terms in self.position else terms
        return tuple(args[self.position[t]] if t in self.position else t for t in terms)

    def masks(self, args_list: list[tuple[str, ...]]) -> tuple[list[int], list[int], list[int], list[int]]:
        """The pre, neg, add and delete masks of the actions with these arguments (a delete that
        the action also adds is no delete)."""
        add = self._column(self.add, args_list)
        delete = list(map(and_, self._column(self.delete, args_list), map(invert, add)))
        return self._column(self.pre, args_list), self._column(self.neg, args_list), add, delete


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


def _relaxed_grounding(domain: Domain, problem: Problem, objects_of_type, static_facts, fluent_predicates):
    """Every ground action whose positive preconditions are relaxed-reachable, and the reached facts.

    Semi-naive fixpoint: in each round, a schema is only joined with at least one precondition
    bound to a fact that is new since the previous round, so no binding is enumerated twice per
    round and a round costs what its new facts cost. Joins look facts up in per-predicate
    indexes keyed by the argument positions already bound.
    """
    reached: set[Atom] = set(problem.init)
    facts_of: dict[str, list[tuple[str, ...]]] = {}
    for atom in reached:
        facts_of.setdefault(atom[0], []).append(atom[1:])
    indexes: dict[tuple[str, tuple[int, ...]], dict[tuple[str, ...], list[tuple[str, ...]]]] = {}

    def matching(pred: str, positions: tuple[int, ...], values: tuple[str, ...]):
        if not positions:
            return facts_of.get(pred, ())
        index = indexes.get((pred, positions))
        if index is None:
            index = {}
            for args in facts_of.get(pred, ()):
                index.setdefault(tuple(args[p] for p in positions), []).append(args)
            indexes[(pred, positions)] = index
        return index.get(values, ())

    def add_facts(new: set[Atom]) -> None:
        for atom in new:
            args = atom[1:]
            facts_of.setdefault(atom[0], []).append(args)
            for (pred, positions), index in indexes.items():
                if pred == atom[0]:
                    index.setdefault(tuple(args[p] for p in positions), []).append(args)
        reached.update(new)

    type_sets = {t: frozenset(objs) for t, objs in objects_of_type.items()}
    plans = [_JoinPlan(schema, objects_of_type, type_sets, static_facts, fluent_predicates) for schema in domain.actions]
    ground: dict[tuple[str, tuple[str, ...]], ActionSchema] = {}
    delta: dict[str, set[tuple[str, ...]]] = {}
    first = True
    while True:
        new_facts: set[Atom] = set()
        for plan in plans:
            name = plan.schema.name
            found = plan.bindings(matching, delta, first, MAX_GROUND_ACTIONS - len(ground))
            if found is None:
                raise LimitError(f"problem {problem.name}: more than {MAX_GROUND_ACTIONS} ground actions, too large to plan")
            fresh = [args for args in dict.fromkeys(found) if (name, args) not in ground]
            ground.update(dict.fromkeys(zip(repeat(name), fresh), plan.schema))
            for pred, terms in plan.add:  # each added fact of every new action, a whole column at a time
                if not terms:
                    new_facts.add((pred,))
                elif fresh:
                    new_facts.update(zip(repeat(pred), *(map(itemgetter(t), fresh) if type(t) is int else repeat(t) for t in terms)))
        new_facts -= reached
        if not new_facts:
            return ground, reached
        delta = {}
        for atom in new_facts:
            delta.setdefault(atom[0], set()).add(atom[1:])
        add_facts(new_facts)
        first = False


def _key_getter(terms: list) -> Callable[[list], tuple]:
    """The values of `terms` (parameter positions or constants) under a binding, as a tuple."""
    if all(type(t) is int for t in terms):
        if len(terms) > 1:
            return itemgetter(*terms)
        if terms:
            index = terms[0]
            return lambda binding: (binding[index],)
        return lambda binding: ()
    return lambda binding: tuple(binding[t] if type(t) is int else t for t in terms)


class _TooMany(Exception):
    """Raised inside a join that has produced more bindings than the grounding may still take."""


class _JoinPlan:
    """One action schema compiled for joining: terms are parameter positions (int) or constants (str)."""

    def __init__(self, schema: ActionSchema, objects_of_type, type_sets, static_facts, fluent_predicates) -> None:
        self.schema = schema
        names = [var for var, _ in schema.params]
        position = {var: i for i, var in enumerate(names)}
        self.arity = len(names)
        self.types = [type_sets.get(t, frozenset()) for _, t in schema.params]
        self.choices = [objects_of_type.get(t, []) for _, t in schema.params]

        def terms(atom: Atom) -> tuple:
            return tuple(position.get(t, t) for t in atom[1:])

        self.pre = [(a[0], terms(a)) for a in schema.pre_pos]
        self.add = [(a[0], terms(a)) for a in schema.add]
        self.equal = [(position.get(a, a), position.get(b, b)) for a, b in schema.equal]
        self.not_equal = [(position.get(a, a), position.get(b, b)) for a, b in schema.not_equal]
        self.static_neg = [(a[0], terms(a)) for a in schema.pre_neg if a[0] not in fluent_predicates]
        self.static_facts = static_facts
        self.orders = [self._order(k) for k in range(len(self.pre))]
        self.simple = not (self.equal or self.not_equal or self.static_neg)
        # every parameter bound by a precondition and nothing more to check: a joined binding is an action
        named = {t for _, atom_terms in self.pre for t in atom_terms if type(t) is int}
        self.direct = self.simple and len(named) == self.arity

    def _order(self, first: int) -> list[tuple[str, tuple, tuple[int, ...], list[tuple[int, object]]]]:
        """Join steps starting from precondition `first`: each step looks up the facts of one
        atom by its already-bound positions, then binds (or checks) the rest."""
        bound: set[int] = set()
        remaining = [i for i in range(len(self.pre)) if i != first]
        order = [first]
        steps = []
        while True:
            pred, atom_terms = self.pre[order[-1]]
            keys, rest, seen = [], [], set()
            for pos, term in enumerate(atom_terms):
                if type(term) is not int or term in bound:
                    keys.append(pos)
                elif term in seen:
                    rest.append((pos, ("same", term)))
                else:
                    seen.add(term)
                    rest.append((pos, ("bind", term)))
            steps.append((pred, atom_terms, tuple(keys), rest, order[-1], _key_getter([atom_terms[p] for p in keys])))
            bound |= seen
            if not remaining:
                return steps
            best = max(remaining, key=lambda i: (sum(type(t) is not int or t in bound for t in self.pre[i][1]),
                                                 -len(self.pre[i][1])))
            remaining.remove(best)
            order.append(best)

    def bindings(self, matching, delta, first_round: bool, room: int) -> list[tuple[str, ...]] | None:
        """Argument tuples of the ground actions with at least one precondition in `delta`, or
        None as soon as there are more than `room` (the problem is too large to ground).

        Starting from precondition k bound to a new fact, the preconditions before k may only
        use old facts, so a binding with several new facts is produced once. The joins append
        to one list (no chain of generators: that cost more than the joins themselves).
        """
        out: list[tuple[str, ...]] = []
        try:
            if first_round:
                self._join(self.orders[0] if self.orders else [], 0, [None] * self.arity, matching, out, room)
            elif self.pre:
                for k, (pred, _) in enumerate(self.pre):
                    if pred in delta:
                        self._join(self.orders[k], 0, [None] * self.arity, matching, out, room, delta[pred], delta, k)
        except _TooMany:
            return None
        return out

    def _join(self, steps, depth, binding, matching, out, room, candidates=None, delta=None, first=0) -> None:
        if depth == len(steps):
            self._complete(binding, out, room)
            return
        pred, atom_terms, keys, rest, original, key_of = steps[depth]
        values = key_of(binding)
        if candidates is None:
            candidates = matching(pred, keys, values)
            check_keys = False
        else:
            check_keys = bool(keys)
        old_only = delta is not None and original < first and pred in delta
        new_facts = delta[pred] if old_only else None
        types = self.types
        last = depth + 1 == len(steps)
        direct = last and self.direct
        for args in candidates:
            if check_keys and tuple(args[p] for p in keys) != values:
                continue
            if old_only and args in new_facts:
                continue
            new = binding[:]
            for pos, (kind, var) in rest:
                value = args[pos]
                if kind == "bind":
                    if value not in types[var]:
                        break
                    new[var] = value
                elif new[var] != value:
                    break
            else:
                if direct:
                    out.append(tuple(new))
                    if len(out) > room:
                        raise _TooMany
                elif last:
                    self._complete(new, out, room)
                else:
                    self._join(steps, depth + 1, new, matching, out, room, None, delta, first)

    def _complete(self, binding, out: list, room: int) -> None:
        free = [i for i, value in enumerate(binding) if value is None]
        if not free and self.simple:
            out.append(tuple(binding))
            if len(out) > room:
                raise _TooMany
            return
        for values in product(*(self.choices[i] for i in free)):
            full = binding[:]
            for i, value in zip(free, values):
                full[i] = value
            if self._allowed(full):
                out.append(tuple(full))
                if len(out) > room:
                    raise _TooMany

    def _allowed(self, full: list[str]) -> bool:
        """(In)equalities and static negative preconditions, checked on a complete binding."""

        def val(term):
            return full[term] if type(term) is int else term

        if any(val(a) != val(b) for a, b in self.equal):
            return False
        if any(val(a) == val(b) for a, b in self.not_equal):
            return False
        return not any((pred, *(val(t) for t in terms)) in self.static_facts for pred, terms in self.static_neg)
