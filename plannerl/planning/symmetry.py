"""Object symmetry: objects the task cannot tell apart, and states up to renaming them.

Two objects are interchangeable when swapping them everywhere maps the grounded task onto
itself: same type, neither is named in the goal or is a domain constant, and the swap maps
the static facts to static facts and the reachable (fluent) facts to reachable facts. Then
it also maps every ground action to a ground action (grounding only reads types, static
facts and relaxed reachability), so every plan to a plan and every distance to the same
distance. Swapping is transitive (if x~y and y~z then (x z) = (x y)(y z)(x y) is a symmetry),
so the interchangeable objects fall into classes, and any renaming within classes is a
symmetry of the task. Empty distractor tables are one class; two lettuces that no goal
names are another, whatever stations they stand on.

The initial state need not be symmetric: search runs over canonical states (one
representative per orbit, `plannerl.planning._core` computes it by colour refinement over the true
facts), and a renaming carries plans and optimal-action sets back to the real objects.
Objects that a static fact or the goal tells apart are never merged.
"""

from __future__ import annotations

from array import array

from plannerl.pddl.task import Task


def object_classes(task: Task) -> list[tuple[str, ...]]:
    """Classes (of two or more) of interchangeable objects, each sorted, in order of first member."""
    named = {term for atom in task.problem.goal_pos + task.problem.goal_neg for term in atom[1:]}
    named |= set(task.domain.constants)
    facts = set(task.facts)
    facts_of: dict[str, list] = {}
    for atom in task.facts:
        for term in set(atom[1:]):
            facts_of.setdefault(term, []).append(atom)
    static_of: dict[str, list] = {}
    for atom in task.static_facts:
        for term in set(atom[1:]):
            static_of.setdefault(term, []).append(atom)

    def swap_is_symmetry(x: str, y: str) -> bool:
        def swapped(atom):
            return (atom[0], *(y if t == x else x if t == y else t for t in atom[1:]))

        if len(facts_of.get(x, ())) != len(facts_of.get(y, ())) or len(static_of.get(x, ())) != len(static_of.get(y, ())):
            return False
        return (all(swapped(a) in facts for a in facts_of.get(x, ()))
                and all(swapped(a) in task.static_facts for a in static_of.get(x, ())))

    classes: list[list[str]] = []
    for obj in sorted(task.objects):
        if obj in named:
            continue
        for members in classes:
            if task.objects[members[0]] == task.objects[obj] and swap_is_symmetry(members[0], obj):
                members.append(obj)
                break
        else:
            classes.append([obj])
    return [tuple(members) for members in classes if len(members) > 1]


class Symmetry:
    """The object structure of a task's facts, as `plannerl.planning._core` reads it, and renamings.

    `objects` is the sorted object list (object ids are positions in it); `classes` the
    interchangeable classes. With `enabled=False` every object is its own class, so canonical
    states are the states themselves (used to check that symmetry changes nothing).
    """

    def __init__(self, task: Task, *, enabled: bool = True) -> None:
        self.task = task
        self.objects = sorted(task.objects)
        self.object_id = {name: i for i, name in enumerate(self.objects)}
        self.classes = object_classes(task) if enabled else []
        obj_class = [-1] * len(self.objects)
        for k, members in enumerate(self.classes):
            for name in members:
                obj_class[self.object_id[name]] = k
        self.obj_class = obj_class
        predicates = sorted({fact[0] for fact in task.facts})
        pred_id = {p: i for i, p in enumerate(predicates)}
        self.fact_pred = array("i", (pred_id[f[0]] for f in task.facts))
        offsets, args = array("i", [0]), array("i")
        for fact in task.facts:
            args.extend(self.object_id[t] for t in fact[1:])
            offsets.append(len(args))
        self.fact_args_off, self.fact_args = offsets, args
        self._action_of_args = None

    @property
    def trivial(self) -> bool:
        return not self.classes

    def permute_action(self, action: int, perm) -> int:
        """The index of `action` with its arguments renamed by `perm` (object id -> object id)."""
        if self._action_of_args is None:
            self._action_of_args = {(a.schema, a.args): i for i, a in enumerate(self.task.actions)}
        act = self.task.actions[action]
        objects, ids = self.objects, self.object_id
        args = tuple(objects[perm[ids[t]]] if t in ids else t for t in act.args)
        return self._action_of_args[(act.schema, args)]


def inverse(perm) -> list[int]:
    out = [0] * len(perm)
    for i, j in enumerate(perm):
        out[j] = i
    return out


def compose(outer, inner) -> list[int]:
    """The renaming `inner` then `outer`."""
    return [outer[j] for j in inner]
