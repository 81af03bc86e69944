"""Mutex groups and implied goal facts of a compiled task, from a lifted invariant analysis.

Used by `plannerl.planning.heuristics` to choose each goal fact's pattern and to charge costs;
kept apart because it answers a question of its own (which facts can never hold together, which
facts every goal state holds) from the ground task alone, no domain names read.

- `mutex_groups`: sets of facts of which at most one holds (Helmert 2009, simplified): where the
  robot is, what the hand holds, what an item lies on, what lies on a station.
- `goal_implied_facts`: facts every reachable goal state satisfies, per goal fact.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import permutations

from plannerl.pddl.reader import Domain
from plannerl.pddl.task import Task, set_bits

COUNTED = -1


def _may_equal(domain: Domain, schema, a: str, b: str) -> bool:
    """Whether two terms of an action schema can denote the same object."""
    if a == b:
        return True
    if not a.startswith("?") and not b.startswith("?"):
        return False
    if (a, b) in schema.not_equal or (b, a) in schema.not_equal:
        return False
    var_type = dict(schema.params)
    ta = var_type.get(a, domain.constants.get(a))
    tb = var_type.get(b, domain.constants.get(b))
    return ta is None or tb is None or domain.is_subtype(ta, tb) or domain.is_subtype(tb, ta)


def _bind(part, atom) -> dict[int, str] | None:
    theta: dict[int, str] = {}
    for pos, k in enumerate(part[1]):
        if k != COUNTED:
            term = atom[1 + pos]
            if theta.setdefault(k, term) != term:
                return None
    return theta


def synthesise_invariants(domain: Domain, fluent: set[str], known=lambda schema: set(), mutex=None) -> list[tuple[int, frozenset]]:
    """Lifted at-most-one invariants: (number of parameters, parts); a part is (predicate, argmap)
    where argmap gives, per argument position, the invariant parameter it binds or COUNTED.

    A candidate is kept when every action that adds one of its facts also deletes a fact of the
    same instance that holds before it (a precondition, or a fact `known(schema)` says its
    preconditions imply), and never adds two; an action that adds without such a delete refines
    the candidate with each such delete (Helmert 2009, Sec. 5). The initial state is checked on
    the ground groups (`mutex_groups`).
    """
    queue: list[tuple[int, frozenset]] = []
    for pred in sorted(fluent):
        arity = len(domain.predicates[pred])
        for counted in range(arity):
            argmap = tuple(COUNTED if p == counted else (p if p < counted else p - 1) for p in range(arity))
            queue.append((arity - 1, frozenset({(pred, argmap)})))
    seen = set(queue)
    found = []
    holds = {schema.name: set(schema.pre_pos) | known(schema) for schema in domain.actions}
    while queue:
        candidate = queue.pop(0)
        verdict = _balance(domain, candidate, holds)
        if verdict is True:
            found.append(candidate)
            continue
        for refined in verdict:
            if refined not in seen:
                seen.add(refined)
                queue.append(refined)
    return [c for c in found if not any(o[0] == c[0] and c[1] < o[1] for o in found)]


def _balance(domain: Domain, candidate, holds):
    """True when balanced, else the list of refined candidates (empty: reject)."""
    n, parts = candidate
    parts_of: dict[str, list] = {}
    for part in parts:
        parts_of.setdefault(part[0], []).append(part)
    for schema in domain.actions:
        before = holds[schema.name]
        adds = [(atom, part) for atom in schema.add for part in parts_of.get(atom[0], ())]
        dels = [(atom, part) for atom in schema.delete for part in parts_of.get(atom[0], ())]
        for atom, part in adds:
            theta = _bind(part, atom)
            if theta is None:
                continue
            for other, other_part in adds:
                if other == atom:
                    continue
                theta2 = _bind(other_part, other)
                if theta2 is not None and all(_may_equal(domain, schema, theta[k], theta2[k]) for k in range(n)):
                    return []
            if atom in before:
                continue
            if any(d in before and d != atom and (t := _bind(dp, d)) is not None and all(t[k] == theta[k] for k in range(n))
                   for d, dp in dels):
                continue
            terms = {theta[k]: k for k in range(n)}
            if len(terms) < n:
                return []
            refined = []
            for d in schema.delete:
                if d not in before or d[0] in parts_of:
                    continue
                argmap = tuple(terms.get(t, COUNTED) for t in d[1:])
                if argmap.count(COUNTED) <= 1 and {k for k in argmap if k != COUNTED} == set(range(n)):
                    refined.append((n, parts | {(d[0], argmap)}))
            return refined
    return True


def _ground_groups(task: Task, invariants) -> tuple[list[tuple[int, ...]], set]:
    """Ground instances of the invariants with at most one true initial fact, and the invariants
    all of whose instances pass that test (only those may be used in lifted reasoning)."""
    instances: dict[tuple, list[int]] = {}
    parts_of: dict[str, list] = {}
    for inv in invariants:
        for part in inv[1]:
            parts_of.setdefault(part[0], []).append((inv, part))
    for k, fact in enumerate(task.facts):
        for inv, part in parts_of.get(fact[0], ()):
            theta = _bind(part, fact)
            if theta is not None:
                instances.setdefault((inv, tuple(theta[i] for i in range(inv[0]))), []).append(k)
    groups, broken = [], set()
    for (inv, _), facts in instances.items():
        facts = sorted(set(facts))
        if sum(task.init >> k & 1 for k in facts) > 1:
            broken.add(inv)
        elif len(facts) > 1:
            groups.append(tuple(facts))
    return sorted(set(groups)), {inv for inv in invariants if inv not in broken}


def _lifted_mutex(domain: Domain, schema, invariants, r, p) -> bool:
    """Two atoms of one schema that can never hold together: facts of one instance of a valid
    invariant that are provably different facts."""
    for n, parts in invariants:
        for part_r in parts:
            if part_r[0] != r[0]:
                continue
            theta_r = _bind(part_r, r)
            for part_p in parts:
                if part_p[0] != p[0] or theta_r is None:
                    continue
                theta_p = _bind(part_p, p)
                if theta_p is None or any(theta_r[k] != theta_p[k] for k in range(n)):
                    continue
                if r[0] != p[0] or part_r != part_p:
                    return True
                if any(not _may_equal(domain, schema, a, b) for a, b in zip(r[1:], p[1:])):
                    return True
    return False


def synthesise_implications(task: Task, fluent: set[str], invariants) -> list[tuple[str, str, tuple[int, ...]]]:
    """Invariants P(x) -> Q(perm x) between fluent predicates of equal arity (Q's argument j is
    P's argument perm[j]), e.g. "an item directly on a station is in that station": true
    initially, every action adding a P fact leaves the matching Q fact true, and every action
    deleting a Q fact deletes the matching P fact or requires a fact mutex with it."""
    domain = task.domain
    init_atoms = [task.facts[k] for k in set_bits(task.init)] + sorted(a for a in task.problem.init if a[0] in fluent)
    init_set = set(init_atoms)
    found = []
    for p_pred in sorted(fluent):
        arity = len(domain.predicates[p_pred])
        if not 1 <= arity <= 3:
            continue
        for q_pred in sorted(fluent):
            if q_pred == p_pred or len(domain.predicates[q_pred]) != arity:
                continue
            for perm in permutations(range(arity)):
                if _implication_holds(domain, p_pred, q_pred, perm, init_set, invariants):
                    found.append((p_pred, q_pred, perm))
    return found


def _implication_holds(domain, p_pred, q_pred, perm, init_set, invariants) -> bool:
    def image(atom):
        return (q_pred, *(atom[1 + perm[j]] for j in range(len(perm))))

    def preimage(atom):
        args = [None] * len(perm)
        for j, i in enumerate(perm):
            args[i] = atom[1 + j]
        return (p_pred, *args)

    for atom in init_set:
        if atom[0] == p_pred and image(atom) not in init_set:
            return False
    for schema in domain.actions:
        pre, add, dele = set(schema.pre_pos), set(schema.add), set(schema.delete)
        for atom in schema.add:
            if atom[0] == p_pred:
                q = image(atom)
                if not (q in add or (q in pre and q not in dele)):
                    return False
        for atom in schema.delete:
            if atom[0] != q_pred or atom in add:
                continue
            p = preimage(atom)
            if any(a[0] == p_pred and all(_may_equal(domain, schema, x, y) for x, y in zip(a[1:], p[1:])) for a in schema.add):
                return False
            if p in dele:
                continue
            if not any(_lifted_mutex(domain, schema, invariants, r, p) for r in schema.pre_pos):
                return False
    return True


def mutex_groups(task: Task) -> list[tuple[int, ...]]:
    """Ground mutex groups (sorted fact indices, two or more facts, at most one true initially).

    Two rounds: plain monotonicity invariants, then implications proven with them ("an item on
    a station is in it"), then invariants again, now accepting deletes that the preconditions
    imply (picking an item up deletes "in the station" without requiring it, but requires "on
    the station", which implies it)."""
    fluent = {atom[0] for schema in task.domain.actions for atom in schema.add + schema.delete}
    invariants = synthesise_invariants(task.domain, fluent)
    _, valid = _ground_groups(task, invariants)
    implications = synthesise_implications(task, fluent, [inv for inv in invariants if inv in valid])
    if implications:
        def known(schema) -> set:
            out = set()
            for atom in schema.pre_pos:
                for p_pred, q_pred, perm in implications:
                    if atom[0] == p_pred:
                        out.add((q_pred, *(atom[1 + perm[j]] for j in range(len(perm)))))
            return out

        invariants = synthesise_invariants(task.domain, fluent, known)
    groups, _ = _ground_groups(task, invariants)
    return groups


def goal_implied_facts(task: Task, groups, sparse: ActionFacts | None = None) -> dict[int, set[int]]:
    """Facts every reachable goal state satisfies, per goal fact that implies them.

    Consider a goal fact g and its last achiever a in a plan (or the initial state when g holds
    there and is never deleted). After a, g is never deleted, so no later action deletes g or
    requires a fact mutex with g; a fact that a leaves true and that every deleter of which
    does one of those things therefore holds at the end. What all possible last achievers
    leave is implied; achievers that would leave a fact mutex with an implied one are ruled
    out, and that repeats to a fixpoint. On a burger: the bottom bun's goal table is implied
    by "bun on table1", then "patty on bun" can only be achieved there, so the patty is in
    table1 at the end, and so on up the stack.
    """
    sparse = sparse or ActionFacts.of(task)
    mutex_mask: dict[int, int] = {}
    for g in groups:
        m = sum(1 << k for k in g)
        for k in g:
            mutex_mask[k] = mutex_mask.get(k, 0) | (m & ~(1 << k))
    actions = task.actions
    known_persists: dict[tuple[int, int], bool] = {}

    def persists(f: int, g: int) -> bool:
        if (f, g) not in known_persists:
            known_persists[f, g] = all(actions[b].delete >> g & 1 or actions[b].pre & mutex_mask.get(g, 0)
                                       for b in sparse.deleters.get(f, ()))
        return known_persists[f, g]

    goal = set_bits(task.goal_pos)
    cases: dict[int, list[int]] = {}
    for g in goal:
        leaves = [(actions[a].pre | actions[a].add) & ~actions[a].delete for a in sparse.adders.get(g, ())]
        if task.init >> g & 1:
            leaves.append(task.init)
        cases[g] = [sum(1 << f for f in set_bits(m) if persists(f, g)) for m in leaves]
    implied = dict.fromkeys(goal, 0)
    known = task.goal_pos
    while True:
        conflict = 0
        for f in set_bits(known):
            conflict |= mutex_mask.get(f, 0)
        changed = False
        for g in goal:
            possible = [m for m in cases[g] if not m & conflict]
            if not possible:
                continue
            common = possible[0]
            for m in possible[1:]:
                common &= m
            if common & ~known:
                implied[g] |= common & ~known
                known |= common
                changed = True
        if not changed:
            return {g: set(set_bits(m)) for g, m in implied.items()}


@dataclass
class ActionFacts:
    """Each action's preconditions as index lists, and the actions adding or deleting each
    fact: the analysis walks these thousands of times, and pulling them out of int masks bit
    by bit cost more than everything else it does."""

    pre: list
    neg: list
    adders: dict[int, list[int]]
    deleters: dict[int, list[int]]

    @classmethod
    def of(cls, task: Task, core=None) -> ActionFacts:
        """From the compiled core's lists when given (fast), else from the task's masks."""
        if core is None:
            pre, neg, add, delete = ([set_bits(getattr(a, name)) for a in task.actions] for name in ("pre", "neg", "add", "delete"))
            return cls(pre, neg, _actions_by_fact(add), _actions_by_fact(delete))
        raw = [array("i", part).tolist() for part in core.fact_lists()[:4] + core.fact_users()]
        pre, neg, adders, deleters = ([flat[i:j] for i, j in zip(off, off[1:])] for off, flat in zip(raw[::2], raw[1::2]))
        return cls(pre, neg, *({k: users for k, users in enumerate(by_fact) if users} for by_fact in (adders, deleters)))


def _actions_by_fact(lists: list) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for a, facts in enumerate(lists):
        for k in facts:
            if k in out:
                out[k].append(a)
            else:
                out[k] = [a]
    return out


