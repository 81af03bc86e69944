"""Admissible heuristics for the compiled task: pattern databases with guarded cost partitioning.

Why not the usual ones. On Robotouille-style kitchens the delete relaxation (h^max, LM-cut)
forgets that the robot must walk back and forth, and projections that share the robot cannot
simply be added: every pattern needs the robot's moves. Fast Downward's best configuration
(A* with iPDB) still expands tens of thousands of states on 13 stations.

What this module builds, from the ground task alone (no domain names are read):

1. Mutex groups by a lifted invariant analysis (Helmert 2009, simplified): sets of facts of
   which at most one holds, e.g. where the robot is, what the hand holds, what an item lies
   on, what lies on a station.
2. One pattern per goal object: the goal facts that can still change and name it first
   ("lettuce1 cut three" and "lettuce1 on bread1" share one, which then knows the lettuce is
   cut on a board before it is stacked), over the facts of their mutex groups and of the
   groups of the preconditions of their achievers (for "patty on bun": where the robot is, the
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
from collections.abc import Container
from dataclasses import dataclass, field
from itertools import accumulate

from plannerl.pddl.task import Task, set_bits
from plannerl.planning.compiled import core_for_task, fact_weights
from plannerl.planning.invariants import ActionFacts, goal_implied_facts, mutex_groups
from plannerl.planning.symmetry import Symmetry

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


OTHER, FREE = "*other", "*free"


class _Analysis:
    """What the patterns of one task share: mutex groups and their indexes, implied goal facts,
    the patterns' facts, targets and owned facts, and how every action's cost is charged."""

    def __init__(self, task: Task, core=None, symmetry=None, *, by_object: bool = True) -> None:
        """`core` is the task's `_core.Core` made with `symmetry` (`core_for_task`); both are
        made here when not given (the core's object ids are the symmetry's). `by_object`: one
        pattern per goal object (the goal facts naming it first); otherwise one per goal fact."""
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
        # objects a static fact relates to another object: the counts of "(next-count zero one)"
        self.linked = {t for atom in task.static_facts if len(atom) > 2 for t in atom[1:]}
        self.implied = goal_implied_facts(task, self.groups, sparse)
        changing = changing_goal_facts(task, sparse.deleters)
        # goal facts about one object share its pattern ("lettuce1 cut three" and "lettuce1 on
        # bread1"): apart, neither database knew the lettuce must be cut on a board before it
        # is stacked, and a lettuce_tomato_sandwich start got h 18 of its 24 steps
        siblings: dict[str, list[int]] = {}
        for k in changing:
            siblings.setdefault(task.facts[k][1] if by_object and len(task.facts[k]) > 1 else k, []).append(k)
        self.goal_facts = [facts[0] for facts in siblings.values()]
        self.masks, goal_masks, self.targets = [], [], []
        for facts in siblings.values():
            mask, goal_mask, targets = self._pattern_facts(facts)
            self.masks.append(mask)
            goal_masks.append(goal_mask)
            self.targets.append(targets)
        self.owner: dict[int, int] = {}
        for p, goal_mask in enumerate(goal_masks):
            for k in set_bits(goal_mask):
                self.owner.setdefault(k, p)
        self.target_objects = [{t for k in set_bits(targets) for t in task.facts[k][1:]} for targets in self.targets]
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

    def _pattern_facts(self, goal_facts: list[int]) -> tuple[int, int, int]:
        """(pattern facts, goal groups, targets) of the goal facts about one object.

        Targets: the goal facts and the facts they imply. Pattern: the groups of the targets;
        those of the conditions of each goal fact's achievers that are about the targets'
        objects or objects all its achievers name (where the robot is, the hand, where the
        support is); and what the goal's objects need in order to move, as far as those groups
        are about the goal's objects (the patty must be clear to be picked up)."""
        task, sparse = self.task, self.sparse
        goal_mask = targets = 0
        for g in goal_facts:
            goal_mask |= self.closure(g)
            targets |= 1 << g
            for k in self.implied.get(g, ()):
                goal_mask |= self.closure(k)
                targets |= 1 << k
        mask = goal_mask
        about = {t for k in set_bits(targets) for t in task.facts[k][1:]}
        conditions: set[int] = set()
        wanted = set(about)
        for g in goal_facts:
            common: set[str] | None = None
            for a in sparse.adders.get(g, ()):
                conditions.update(sparse.pre[a])
                conditions.update(sparse.neg[a])
                common = set(task.actions[a].args) if common is None else common & set(task.actions[a].args)
            wanted |= common or set()
        # not the groups of each item some unstack would lift off the top bun: they made the
        # database of `(clear topbun1)` exponential in the distractors (2,000,000 states in 30 s)
        for k in conditions:
            if k not in self.groups_of:
                mask |= 1 << k
            for gi in self.groups_of.get(k, ()):
                if self.group_params[gi] <= wanted:
                    mask |= self.group_mask[gi]
        movers: set[int] = set()
        for k in set_bits(goal_mask):
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

    def merge_map(self, mask: int, targets: int) -> tuple[list[tuple], list[int], dict[int, int]]:
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
        facts = set_bits(mask)
        goal_objects = {t for atom in task.problem.goal_pos + task.problem.goal_neg for t in atom[1:]}
        renamed = {t for k in facts for t in task.facts[k][1:]} - self._kept_objects(facts, mask, targets)

        def rename(k: int) -> tuple:
            atom = task.facts[k]
            return (atom[0], *((OTHER if t in goal_objects else FREE) if t in renamed else t for t in atom[1:]))

        name_of = self._exact_renaming(facts, renamed, rename)
        return _number_atoms(facts, name_of)

    def _kept_objects(self, facts: list[int], mask: int, targets: int) -> set[str]:
        """Objects a pattern must tell apart: those of its targets, the parameters of its groups,
        the objects of its facts that lie in no group of the pattern, and the objects a static
        fact links (`linked`) where they appear in a fact of a group whose parameters are kept:
        a lettuce's cut progress "zero", "one", "two" (merged, one cut reached "three" and the
        database of "lettuce1 cut three" gave 1 where 3 cuts remain; keeping them raised h of a
        lettuce_tomato_sandwich start from 14 to 18 of its 24 steps), or logistics' locations,
        which `in-city` links, in "where the truck is"."""
        task = self.task
        keep = {t for k in set_bits(targets) for t in task.facts[k][1:]}
        for k in facts:
            inside = [gi for gi in self.groups_of.get(k, ()) if self.group_mask[gi] & mask == self.group_mask[gi]]
            if not inside:
                keep.update(task.facts[k][1:])
            for gi in inside:
                keep.update(self.group_params[gi])
        for k in facts:
            if any(self.group_params[gi] <= keep for gi in self.groups_of.get(k, ()) if self.group_params[gi]):
                keep.update(self.linked.intersection(task.facts[k][1:]))
        return keep

    def _exact_renaming(self, facts: list[int], renamed: set[str], rename):
        """Shrink `renamed` (in place) until every delete stays exact: each action deleting a
        renamed fact requires a fact with the same new name. Returns fact -> new name."""
        task = self.task
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
        return name_of


def _number_atoms(facts: list[int], name_of) -> tuple[list[tuple], list[int], dict[int, int]]:
    """(abstract atoms in first-seen order, how many facts each stands for, fact -> atom index)."""
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


def changing_goal_facts(task: Task, deleted: Container[int]) -> list[int]:
    """The goal facts that get patterns: false at the start, or `deleted` by some action. One
    that holds and never changes (a patty cooked before the start) needs no search."""
    return [k for k in set_bits(task.goal_pos) if k in deleted or not task.init >> k & 1]


def shares_goal_objects(task: Task) -> bool:
    """Whether two goal facts that get patterns name the same object first, so that patterns
    per goal object (`build_pattern_sum(by_object=True)`) differ from patterns per goal fact."""
    deleted = 0
    for action in task.actions:
        deleted |= action.delete
    firsts = [task.facts[k][1] for k in changing_goal_facts(task, set(set_bits(deleted))) if len(task.facts[k]) > 1]
    return len(set(firsts)) < len(firsts)


def build_pattern_sum(task: Task, symmetry, core=None, *, max_states: int = PDB_STATE_LIMIT, share: bool = True,
                      by_object: bool = True) -> PatternSum:
    """Patterns for every goal fact that can change, with their databases built.

    Patterns whose abstract tasks are the same up to a renaming of roles (the five "on" facts
    of a double cheese burger: two items, the robot and the build table each) share one
    database, built from all their initial states: `_shared_key` proves the renaming is an
    isomorphism of the abstract tasks, so distances carry over exactly (`share=False` builds
    one database per pattern, to check that). A database kept from an earlier task with the
    same key serves too, when it holds this task's initial abstract states. `core` is the
    task's `_core.Core` (built here when not given); it projects the actions."""
    start = time.perf_counter()
    core = core or core_for_task(task, symmetry)
    analysis = _Analysis(task, core, symmetry, by_object=by_object)
    universe = _ObjectUniverse(symmetry)
    weights = fact_weights(task.facts, task.init)
    abstract: list[_Abstract] = []
    shared: dict[tuple, list[int]] = {}
    for p, g in enumerate(analysis.goal_facts):
        found = _project(task, analysis, core, universe, weights, p)
        if found is None:
            continue
        if share:
            key, found.order = _shared_key(task, symmetry, g, analysis.targets[p], found.atoms, found.sub)
        else:
            key, found.order = (p,), list(range(len(found.atoms)))
        shared.setdefault(key, []).append(len(abstract))
        abstract.append(found)
    patterns: list[Pattern | None] = [None] * len(abstract)
    for key, members in shared.items():
        built = _shared_database(key, [abstract[q] for q in members], max_states, share)
        if built is None:
            continue  # over the state limit: the database is unusable, the pattern is left out
        sub, states, to_db = built
        for renaming, q in zip(to_db, members):
            item = abstract[q]
            projection = array("i", [-1] * len(task.facts))
            for k, i in item.of_fact.items():
                projection[k] = renaming[i]
            patterns[q] = Pattern(item.goal_fact, set_bits(item.mask), sub, projection.tobytes(), states)
    return PatternSum([p for p in patterns if p is not None], time.perf_counter() - start)


class _ObjectUniverse:
    """The core's object ids with the two stand-ins (OTHER, FREE) appended, and their symmetry classes."""

    def __init__(self, symmetry) -> None:
        self.objects = list(symmetry.objects) + [OTHER, FREE]
        self.object_id = {name: i for i, name in enumerate(self.objects)}
        self.obj_classes = list(symmetry.obj_class) + [-1, -1]


@dataclass
class _Abstract:
    """One goal fact's abstract task before its database is built (`_project`)."""

    goal_fact: int
    mask: int
    of_fact: dict[int, int]
    init: int
    atoms: list[tuple]
    sub: object = field(repr=False)
    order: list[int] = field(default_factory=list)


def _project(task: Task, analysis: _Analysis, core, universe: _ObjectUniverse, weights, p: int) -> _Abstract | None:
    """Pattern `p`'s abstract task, projected by the core; None when it names too many facts."""
    mask, targets = analysis.masks[p], analysis.targets[p]
    atoms, members, of_fact = analysis.merge_map(mask, targets)
    if len(atoms) > PATTERN_ATOM_LIMIT:
        return None
    pred_id: dict[str, int] = {}
    fact_pred, args_off, args = array("i"), array("i", [0]), array("i")
    for atom in atoms:
        fact_pred.append(pred_id.setdefault(atom[0], len(pred_id)))
        args.extend(universe.object_id[t] for t in atom[1:])
        args_off.append(len(args))
    weight = [1000] * len(atoms)
    for k, i in of_fact.items():
        weight[i] = min(weight[i], weights[k])
    init = sum(1 << of_fact[k] for k in set_bits(task.init & mask))
    goal = sum(1 << of_fact[k] for k in set_bits(targets & mask))
    # only objects the abstract facts name can be interchanged there
    present = set(args)
    obj_class = array("i", [cls if i in present else -1 for i, cls in enumerate(universe.obj_classes)])
    size = (len(atoms) // 64 + 1) * 8
    projection = array("i", [-1] * len(task.facts))
    for k, i in of_fact.items():
        projection[k] = i
    sub = core.project(p, projection, array("i", members), analysis.fact_group_off, analysis.fact_groups, analysis.owner_of,
                       analysis.guard_off, analysis.guard_fact_off, analysis.guard_facts, analysis.guard_owner, len(atoms),
                       init.to_bytes(size, "little"), goal.to_bytes(size, "little"), array("i", weight), fact_pred,
                       args_off, args, obj_class)
    return _Abstract(analysis.goal_facts[p], mask, of_fact, init, atoms, sub)


def _shared_database(key: tuple, members: list[_Abstract], max_states: int, share: bool):
    """(database core, its states, per member the map from its atoms to the database's) for
    patterns sharing `key`, or None when the database would exceed `max_states`.

    A database of an earlier task with the same key serves when it holds our initial states;
    otherwise the first member's abstract task is built from all members' initial states."""
    cached = _DATABASES.get(key) if share else None
    for attempt in (cached, (members[0].sub, members[0].order, None)):
        if attempt is None:
            continue
        sub, order, states = attempt
        # member atom i is the database's atom at the same place in the shared order
        to_db = [[0] * len(order) for _ in members]
        for renaming, item in zip(to_db, members):
            for place, i in enumerate(item.order):
                renaming[i] = order[place]
        size = (len(order) // 64 + 1) * 8
        inits = [sum(1 << renaming[i] for i in set_bits(item.init)).to_bytes(size, "little")
                 for renaming, item in zip(to_db, members)]
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
    return None if states < 0 else (sub, states, to_db)


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
    rest = [task.facts[k] for k in set_bits(targets) if k != goal_fact]
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
