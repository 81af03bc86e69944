"""Admissible heuristics for the compiled task: pattern databases with guarded cost partitioning.

Why not the usual ones. On Robotouille-style kitchens the delete relaxation (h^max, LM-cut)
forgets that the robot must walk back and forth, and projections that share the robot cannot
simply be added: every pattern needs the robot's moves. Fast Downward's best configuration
(A* with iPDB) still expands tens of thousands of states on 13 stations.

What this module builds, from the ground task alone (no domain names are read):

1. Mutex groups by a lifted invariant analysis (Helmert 2009, simplified): sets of facts of
   which at most one holds, e.g. where the robot is, what the hand holds, what an item lies
   on, what lies on a station.
2. One pattern per goal fact g that can still change: the facts of g's mutex groups and of the
   groups of the preconditions of g's achievers (for "patty on bun": where the robot is, the
   hand, what the patty lies on, where the bun is and whether it is clear), as far as those
   groups are about objects every achiever names (for "top bun clear": not each item that
   some unstack would lift off it, which would make the database exponential in them).
3. A transition cost partitioning that makes the patterns additive. Each goal fact's groups
   "own" their facts. An action that changes an owned fact costs 1 in its owner's pattern and
   0 elsewhere (picking up the patty is the patty's business). An action that changes no owned
   fact (a move) is charged through guards: mutex groups whose facts are owned, read in a fixed
   order (the group of an object the action keeps, e.g. the hand; then one of its destination,
   e.g. what lies on the target station; then one of its origin). The first guard whose true
   fact is owned decides: moving while holding the patty is the patty's move; moving with an
   empty hand to the station the bun lies on is the bun's move. At most one fact of a group
   holds, so every concrete transition is charged at most once in total, and the sum of the
   pattern distances is admissible (Keller et al. 2016 call this transition cost partitioning).
   Each pattern's abstract task carries the charge as extra preconditions (one variant of the
   action per case), so its distances are ordinary shortest paths with 0/1 costs.
4. Each pattern database is built by `plannerl.planning._core` over canonical abstract states under the
   task's object symmetry, so 25 stations cost little more than 5.
5. Databases are shared: patterns whose abstract tasks are isomorphic by a renaming of roles
   (the goal objects, the build table, interchangeable stations) use one database, within a
   task (the five "X on Y" facts of a double cheese burger) and across tasks (a thousand
   randomised instances of one recipe have a few dozen distinct abstract tasks). An exact
   signature of each abstract task proves the isomorphism before anything is shared.

The sum is admissible but not consistent; the search applies pathmax and reopens states.
"""

from __future__ import annotations

import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate

from plannerl.pddl.reader import Domain
from plannerl.pddl.task import Task
from plannerl.planning.compiled import fact_weights

COUNTED = -1
# pattern databases kept across tasks (key: `_shared_key`), so that a thousand instances of one
# recipe build each distinct abstract task once: at most this many, holding at most this many
# abstract states in all (a 10,000-state database takes about half a megabyte)
DATABASE_CACHE = 256
DATABASE_CACHE_STATES = 3_000_000
_DATABASES: OrderedDict[tuple, tuple] = OrderedDict()
NEVER = -3  # owner of an action that never applies (see _Analysis.never_applicable)
PDB_STATE_LIMIT = 2_000_000
# A goal fact whose abstraction names more facts than this gets no database: building it would
# run into the state limit after a minute. Leaving a pattern out keeps the sum admissible, only
# weaker.
PATTERN_ATOM_LIMIT = 256


# ---------------------------------------------------------------- invariants


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
    from itertools import permutations

    domain = task.domain
    init_atoms = [task.facts[k] for k in _bits(task.init)] + sorted(a for a in task.problem.init if a[0] in fluent)
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

    goal = _bits(task.goal_pos)
    cases: dict[int, list[int]] = {}
    for g in goal:
        leaves = [(actions[a].pre | actions[a].add) & ~actions[a].delete for a in sparse.adders.get(g, ())]
        if task.init >> g & 1:
            leaves.append(task.init)
        cases[g] = [sum(1 << f for f in _bits(m) if persists(f, g)) for m in leaves]
    implied = dict.fromkeys(goal, 0)
    known = task.goal_pos
    while True:
        conflict = 0
        for f in _bits(known):
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
            return {g: set(_bits(m)) for g, m in implied.items()}


# ---------------------------------------------------------------- patterns and charges


@dataclass
class Pattern:
    """One goal fact's abstraction: its facts, its abstract task (a `_core.Core` with its database)
    and the projection of concrete facts onto abstract facts."""

    goal_fact: int
    facts: list[int]
    core: object = field(repr=False)
    projection: bytes = field(repr=False)
    states: int = 0


@dataclass
class PatternSum:
    """The admissible sum of the patterns' distances, with how long it took to build."""

    patterns: list[Pattern]
    seconds: float

    def core_patterns(self) -> list[tuple[object, bytes]]:
        return [(p.core, p.projection) for p in self.patterns]


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


OTHER, FREE = "*other", "*free"


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
            pre, neg, add, delete = ([_bits(getattr(a, name)) for a in task.actions] for name in ("pre", "neg", "add", "delete"))
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


class _Analysis:
    """What the patterns of one task share: mutex groups and their indexes, implied goal facts,
    the patterns' facts, targets and owned facts, and how every action's cost is charged."""

    def __init__(self, task: Task, core=None, symmetry=None) -> None:
        """`core` is the task's `_core.Core` made with `symmetry` (`core_for_task`); both are
        made here when not given (the core's object ids are the symmetry's)."""
        from plannerl.planning.compiled import core_for_task
        from plannerl.planning.symmetry import Symmetry

        self.task = task
        if core is None or symmetry is None:
            symmetry = Symmetry(task, enabled=False)
            core = core_for_task(task, symmetry)
        self.core, self.object_id = core, symmetry.object_id
        self._unrequired: dict[int, list[list[int]]] = {}
        self.sparse = sparse = ActionFacts.of(task, core)
        self.groups = mutex_groups(task)
        self.group_mask = [sum(1 << k for k in g) for g in self.groups]
        self.groups_of: dict[int, list[int]] = {}
        for gi, g in enumerate(self.groups):
            for k in g:
                self.groups_of.setdefault(k, []).append(gi)
        self.group_params = [set(task.facts[g[0]][1:]).intersection(*(task.facts[k][1:] for k in g[1:])) for g in self.groups]
        self.implied = goal_implied_facts(task, self.groups, sparse)
        self.goal_facts = [k for k in _bits(task.goal_pos) if k in sparse.deleters or not task.init >> k & 1]
        self.masks, goal_masks, self.targets = [], [], []
        for g in self.goal_facts:
            mask, goal_mask, targets = self._pattern_facts(g)
            self.masks.append(mask)
            goal_masks.append(goal_mask)
            self.targets.append(targets)
        self.owner: dict[int, int] = {}
        for p, goal_mask in enumerate(goal_masks):
            for k in _bits(goal_mask):
                self.owner.setdefault(k, p)
        self.target_objects = [{t for k in _bits(targets) for t in task.facts[k][1:]} for targets in self.targets]
        self._charges()

    def never_applicable(self, action: int) -> bool:
        """Whether two preconditions of action number `action` lie in one mutex group (e.g.
        stacking an item on itself: holding it while it is in a station). Such actions are
        grounded (grounding is relaxed) but never apply, and would make patterns that differ
        only by names charge differently; the abstract tasks leave them out (`_charges` finds them)."""
        return self.owner_of[action] == NEVER

    def unrequired_deletes(self, fact: int) -> list[list[int]]:
        """The preconditions of each action that deletes `fact` without requiring it (kept: every
        pattern over the fact reads them)."""
        if fact not in self._unrequired:
            pre = self.sparse.pre
            self._unrequired[fact] = [pre[b] for b in self.sparse.deleters.get(fact, ()) if fact not in pre[b]]
        return self._unrequired[fact]

    def closure(self, fact: int) -> int:
        mask = 1 << fact
        for gi in self.groups_of.get(fact, ()):
            mask |= self.group_mask[gi]
        return mask

    def _pattern_facts(self, g: int) -> tuple[int, int, int]:
        """(pattern facts, goal groups, targets) of goal fact g.

        Targets: g and the facts it implies. Pattern: the groups of the targets; those of the
        conditions of g's achievers that are about the targets' objects or objects every
        achiever names (where the robot is, the hand, where the support is); and
        what the goal's objects need in order to move, as far as those groups are about the
        goal's objects (the patty must be clear to be picked up)."""
        task, sparse = self.task, self.sparse
        goal_mask, targets = self.closure(g), 1 << g
        for k in self.implied.get(g, ()):
            goal_mask |= self.closure(k)
            targets |= 1 << k
        mask = goal_mask
        about = {t for k in _bits(targets) for t in task.facts[k][1:]}
        conditions: set[int] = set()
        common: set[str] | None = None
        for a in sparse.adders.get(g, ()):
            conditions.update(sparse.pre[a])
            conditions.update(sparse.neg[a])
            common = set(task.actions[a].args) if common is None else common & set(task.actions[a].args)
        # not the groups of each item some unstack would lift off the top bun: they made the
        # database of `(clear topbun1)` exponential in the distractors (2,000,000 states in 30 s)
        wanted = about | (common or set())
        for k in conditions:
            if k not in self.groups_of:
                mask |= 1 << k
            for gi in self.groups_of.get(k, ()):
                if self.group_params[gi] <= wanted:
                    mask |= self.group_mask[gi]
        movers: set[int] = set()
        for k in _bits(goal_mask):
            movers.update(sparse.adders.get(k, ()))
            movers.update(sparse.deleters.get(k, ()))
        conditions = set()
        for a in movers:
            conditions.update(sparse.pre[a])
            conditions.update(sparse.neg[a])
        for k in conditions:
            for gi in self.groups_of.get(k, ()):
                if self.group_params[gi] and self.group_params[gi] <= about:
                    mask |= self.group_mask[gi]
        return mask, goal_mask, targets

    def _charges(self) -> None:
        """Per action: the pattern that owns it, or its guards (see the module docstring).

        An action that changes owned facts belongs to the owner of the one that names its
        earliest arguments (unstacking the cheese from the patty is the cheese's business, not
        that of the patty now clear): a rule by roles, not by names, so patterns that differ
        only by their objects' names get the same abstract task and share a database
        (`build_pattern_sum`). Otherwise its guards are the groups with owned facts whose facts
        all name one of its arguments, read in this order: groups of an object the action
        carries along (the moving robot's hand), of its destination (what lies on the target
        station), of its origin. Each guard decides by its true owned fact; a carried object's
        fact only decides when the action's destination matters to its owner (moving while
        holding the patty is the patty's move only when it goes where the patty must end up).

        The loop over the actions runs in the compiled core (`Core.charges`): in Python it was
        the largest single cost of preparing a generated instance."""
        task, object_id = self.task, self.object_id

        def flat(lists) -> tuple[array, array]:
            lists = list(lists)
            return array("i", accumulate(map(len, lists), initial=0)), array("i", [x for values in lists for x in values])

        self.fact_group_off, self.fact_groups = flat(self.groups_of.get(k, ()) for k in range(len(task.facts)))
        owner = array("i", [-1] * len(task.facts))
        for k, p in self.owner.items():
            owner[k] = p
        out = self.core.charges(self.fact_group_off, self.fact_groups, *flat(self.groups),
                                *flat([object_id[t] for t in params] for params in self.group_params), owner,
                                *flat([object_id[t] for t in objects] for objects in self.target_objects))
        self.owner_of, self.guard_off, self.guard_fact_off, self.guard_facts, self.guard_owner = (array("i", part) for part in out)

    def merge_map(self, mask: int, targets: int, symmetry) -> tuple[list[tuple], list[int], dict[int, int]]:
        """Abstract facts of a pattern: its facts with the fixed objects it need not tell apart
        renamed to one stand-in, OTHER for objects another goal fact names (another item of the
        burger), FREE for the rest (a lone distractor), so "holding cheese1" and "holding
        patty1" become "holding OTHER" in the patty's pattern. Returns the abstract atoms, how
        many facts each stands for, and the map from fact to abstract fact.

        Never renamed: objects of the targets, parameters of the pattern's groups (the robot of
        "where the robot is"), objects of facts in no group, and objects whose renaming would
        make a delete inexact (stations: picking up deletes "in the station" unrequired):
        every action deleting a renamed fact must require a fact with the same new name."""
        task = self.task
        facts = _bits(mask)
        goal_objects = {t for atom in task.problem.goal_pos + task.problem.goal_neg for t in atom[1:]}
        keep = {t for k in _bits(targets) for t in task.facts[k][1:]}
        for k in facts:
            inside = [gi for gi in self.groups_of.get(k, ()) if self.group_mask[gi] & mask == self.group_mask[gi]]
            if not inside:
                keep.update(task.facts[k][1:])
            for gi in inside:
                keep.update(self.group_params[gi])
        renamed = {t for k in facts for t in task.facts[k][1:]} - keep

        def rename(k: int) -> tuple:
            atom = task.facts[k]
            return (atom[0], *((OTHER if t in goal_objects else FREE) if t in renamed else t for t in atom[1:]))

        # the deleters' preconditions inside the pattern, split once: most deleters require the
        # fact they delete, which settles them whatever is renamed
        inexact: dict[int, list[list[int]]] = {}
        inside = set(facts)
        for k in facts:
            if renamed.intersection(task.facts[k][1:]):
                inexact[k] = [[j for j in pre if j in inside] for pre in self.unrequired_deletes(k)]
        names: dict[int, tuple] = {}  # rename(j), valid until `renamed` shrinks

        def name_of(j: int) -> tuple:
            if j not in names:
                names[j] = rename(j)
            return names[j]

        changed = True
        while changed:
            changed = False
            for k in facts:
                atom = task.facts[k]
                if not renamed.intersection(atom[1:]):
                    continue
                name = name_of(k)
                if all(any(name_of(j) == name for j in pre) for pre in inexact[k]):
                    continue
                renamed.difference_update(atom[1:])
                names.clear()
                changed = True
        index: dict[tuple, int] = {}
        atoms: list[tuple] = []
        members: list[int] = []
        of_fact: dict[int, int] = {}
        for k in facts:
            atom = name_of(k)
            if atom not in index:
                index[atom] = len(atoms)
                atoms.append(atom)
                members.append(0)
            of_fact[k] = index[atom]
            members[index[atom]] += 1
        return atoms, members, of_fact


def build_pattern_sum(task: Task, symmetry, core=None, *, max_states: int = PDB_STATE_LIMIT, share: bool = True) -> PatternSum:
    """Patterns for every goal fact that can change, with their databases built.

    Patterns whose abstract tasks are the same up to a renaming of roles (the five "on" facts
    of a double cheese burger: two items, the robot and the build table each) share one
    database, built from all their initial states: `_shared_key` proves the renaming is an
    isomorphism of the abstract tasks, so distances carry over exactly (`share=False` builds
    one database per pattern, to check that). A database kept from an earlier task with the
    same key serves too, when it holds this task's initial abstract states. `core` is the
    task's `_core.Core` (built here when not given); it projects the actions."""
    from plannerl.planning.compiled import core_for_task

    start = time.perf_counter()
    core = core or core_for_task(task, symmetry)
    analysis = _Analysis(task, core, symmetry)
    weights = fact_weights(task.facts, task.init)
    objects = list(symmetry.objects) + [OTHER, FREE]
    object_id = {name: i for i, name in enumerate(objects)}
    obj_classes = list(symmetry.obj_class) + [-1, -1]
    abstract = []
    shared: dict[tuple, list[int]] = {}
    for p, g in enumerate(analysis.goal_facts):
        mask, targets = analysis.masks[p], analysis.targets[p]
        atoms, members, of_fact = analysis.merge_map(mask, targets, symmetry)
        if len(atoms) > PATTERN_ATOM_LIMIT:
            continue
        pred_id: dict[str, int] = {}
        fact_pred, args_off, args = array("i"), array("i", [0]), array("i")
        for atom in atoms:
            fact_pred.append(pred_id.setdefault(atom[0], len(pred_id)))
            args.extend(object_id[t] for t in atom[1:])
            args_off.append(len(args))
        weight = [1000] * len(atoms)
        for k, i in of_fact.items():
            weight[i] = min(weight[i], weights[k])
        init = sum(1 << of_fact[k] for k in _bits(task.init & mask))
        goal = sum(1 << of_fact[k] for k in _bits(targets & mask))
        # only objects the abstract facts name can be interchanged there
        present = set(args)
        obj_class = array("i", [cls if i in present else -1 for i, cls in enumerate(obj_classes)])
        size = (len(atoms) // 64 + 1) * 8
        projection = array("i", [-1] * len(task.facts))
        for k, i in of_fact.items():
            projection[k] = i
        sub = core.project(p, projection, array("i", members), analysis.fact_group_off, analysis.fact_groups, analysis.owner_of,
                           analysis.guard_off, analysis.guard_fact_off, analysis.guard_facts, analysis.guard_owner, len(atoms),
                           init.to_bytes(size, "little"), goal.to_bytes(size, "little"), array("i", weight), fact_pred,
                           args_off, args, obj_class)
        if share:
            key, order = _shared_key(task, symmetry, g, targets, atoms, sub)
        else:
            key, order = (p,), list(range(len(atoms)))
        shared.setdefault(key, []).append(len(abstract))
        abstract.append((g, mask, of_fact, init, sub, order))
    patterns: list[Pattern | None] = [None] * len(abstract)
    for key, members in shared.items():
        # a database of an earlier task with the same key serves when it holds our initial states
        cached = _DATABASES.get(key) if share else None
        for attempt in (cached, abstract[members[0]][4:] + (None,)):
            if attempt is None:
                continue
            sub, order, states = attempt
            # member atom i is the database's atom at the same place in the shared order
            to_db = [[0] * len(order) for _ in members]
            for renaming, q in zip(to_db, members):
                for place, i in enumerate(abstract[q][5]):
                    renaming[i] = order[place]
            size = (len(order) // 64 + 1) * 8
            inits = [sum(1 << renaming[i] for i in _bits(abstract[q][3])).to_bytes(size, "little") for renaming, q in zip(to_db, members)]
            if states is None:
                states = sub.build_pdb(max_states, b"".join(inits[1:]))
                if share and states >= 0:
                    _DATABASES[key] = (sub, order, states)
                    while len(_DATABASES) > DATABASE_CACHE or sum(v[2] for v in _DATABASES.values()) > DATABASE_CACHE_STATES:
                        _DATABASES.popitem(last=False)
                break
            if all(sub.pdb_has(x) for x in inits):
                _DATABASES.move_to_end(key)
                break
        if states < 0:
            continue  # over the state limit: the database is unusable, the pattern is left out
        for renaming, q in zip(to_db, members):
            g, mask, of_fact = abstract[q][:3]
            projection = array("i", [-1] * len(task.facts))
            for k, i in of_fact.items():
                projection[k] = renaming[i]
            patterns[q] = Pattern(g, _bits(mask), sub, projection.tobytes(), states)
    return PatternSum([p for p in patterns if p is not None], time.perf_counter() - start)


def _shared_key(task: Task, symmetry, goal_fact: int, targets: int, atoms: list[tuple], sub) -> tuple[tuple, list[int]]:
    """What two patterns (of one task or of two tasks) must have in common to share a database,
    and the pattern's atoms in the order of that key.

    Objects are renamed to their roles: the goal fact's objects "?0", "?1", ..., then those of
    the other targets in turn (the build table), then the members of each symmetry class in
    order ("?table#0.0", ...: the first class of tables; its members are interchangeable); no
    PDDL name starts with "?". Other
    names are kept. Sorting the renamed atoms gives every atom a place. The key is the sorted
    renamed atoms with the abstract task's signature under that numbering (goal, and every
    action with its cost): equal keys mean the map between atoms at the same place sends one
    abstract task onto the other, an isomorphism, so both have the same distances."""
    role: dict[str, str] = {}
    for t in task.facts[goal_fact][1:]:
        role.setdefault(t, f"?{len(role)}")
    rest = [task.facts[k] for k in _bits(targets) if k != goal_fact]
    while True:
        open_atoms = [(atom[0], *(role.get(t, "~") for t in atom[1:]), atom) for atom in rest if any(t not in role for t in atom[1:])]
        if not open_atoms:
            break
        for t in min(open_atoms)[-1][1:]:
            role.setdefault(t, f"?{len(role)}")
    classes_of_type: dict[str, int] = {}
    for members in symmetry.classes:
        type_name = task.objects[members[0]]
        count = classes_of_type[type_name] = classes_of_type.get(type_name, -1) + 1
        for rank, t in enumerate(members):
            role.setdefault(t, f"?{type_name}#{count}.{rank}")
    renamed = [(atom[0], *(role.get(t, t) for t in atom[1:])) for atom in atoms]
    order = sorted(range(len(atoms)), key=renamed.__getitem__)
    place = array("i", [0] * len(atoms))
    for i, k in enumerate(order):
        place[k] = i
    return (tuple(renamed[k] for k in order), sub.signature(place)), order
