"""Grounding: a parsed domain and problem -> the task's reachable facts and ground actions.

Grounding instantiates only actions whose positive preconditions are relaxed-reachable from the
initial state, so a problem with many objects does not pay for actions that can never apply.
Facts and actions are sorted by name: action index order is the documented tie-break for the
canonical plan (see `plannerl.planning.search`). `plannerl.pddl.task.compile_task` turns the result
into a `Task`; this module is the part that joins preconditions with facts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product, repeat
from operator import and_, invert, itemgetter, or_

from plannerl.errors import LimitError
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


# The last few groundings, by domain, objects and initial state: the goal is not read while
# grounding, and the instance generator compares several goal bindings of one initial state.
GROUNDING_CACHE = 4
_GROUNDINGS: OrderedDict[tuple, tuple] = OrderedDict()


def ground_problem(domain: Domain, problem: Problem, static_facts, fluent_predicates) -> tuple:
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
    facts = _FactIndex(reached)
    type_sets = {t: frozenset(objs) for t, objs in objects_of_type.items()}
    plans = [_JoinPlan(schema, objects_of_type, type_sets, static_facts, fluent_predicates) for schema in domain.actions]
    ground: dict[tuple[str, tuple[str, ...]], ActionSchema] = {}
    delta: dict[str, set[tuple[str, ...]]] = {}
    first = True
    while True:
        new_facts: set[Atom] = set()
        for plan in plans:
            name = plan.schema.name
            found = plan.bindings(facts.matching, delta, first, MAX_GROUND_ACTIONS - len(ground))
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
        facts.add(new_facts)
        reached.update(new_facts)
        first = False


class _FactIndex:
    """The reached facts by predicate, with lookup indexes keyed by the argument positions a join
    has already bound (made on first use, then kept up to date as facts are added)."""

    def __init__(self, atoms) -> None:
        self.facts_of: dict[str, list[tuple[str, ...]]] = {}
        for atom in atoms:
            self.facts_of.setdefault(atom[0], []).append(atom[1:])
        self.indexes: dict[tuple[str, tuple[int, ...]], dict[tuple[str, ...], list[tuple[str, ...]]]] = {}

    def matching(self, pred: str, positions: tuple[int, ...], values: tuple[str, ...]):
        """The argument tuples of `pred`'s facts whose `positions` hold `values`."""
        if not positions:
            return self.facts_of.get(pred, ())
        index = self.indexes.get((pred, positions))
        if index is None:
            index = {}
            for args in self.facts_of.get(pred, ()):
                index.setdefault(tuple(args[p] for p in positions), []).append(args)
            self.indexes[(pred, positions)] = index
        return index.get(values, ())

    def add(self, new: set[Atom]) -> None:
        for atom in new:
            args = atom[1:]
            self.facts_of.setdefault(atom[0], []).append(args)
            for (pred, positions), index in self.indexes.items():
                if pred == atom[0]:
                    index.setdefault(tuple(args[p] for p in positions), []).append(args)


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
