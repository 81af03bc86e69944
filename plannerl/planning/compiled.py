"""The bridge to `plannerl.planning._core`, the compiled search core built from plannerl/planning/_core.c.

Python keeps states as ints (bit k = fact k); the core reads them as little-endian words.
`core_for_task` hands a grounded task to the core once (its masks, goal and the object
structure of its facts for symmetry); `make_core` does the same for any STRIPS task given as
masks, which is how the pattern databases of `plannerl.planning.heuristics` are built.

When the extension is not built (`python setup.py build_ext --inplace`, or any pip install of
the package builds it), `available()` is False and plannerl falls back to its pure-Python
search, which is exact but slower.
"""

from __future__ import annotations

from array import array
from itertools import accumulate

try:
    from plannerl.planning import _core
except ImportError:  # pragma: no cover - exercised only on a checkout without the build
    _core = None


def available() -> bool:
    return _core is not None


def words(nfacts: int) -> int:
    return nfacts // 64 + 1


def to_bytes(state: int, nfacts: int) -> bytes:
    return state.to_bytes(words(nfacts) * 8, "little")


def from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "little")


def make_core(nfacts: int, init: int, pre, neg, add, delete, cost, goal_pos: int, goal_neg: int, fact_weight,
              fact_pred, fact_args_off, fact_args, obj_class, action_object_off, action_objects):
    """A `_core.Core` for a STRIPS task given as per-action masks (ints) and int sequences;
    action a names the object ids `action_objects[action_object_off[a]:action_object_off[a + 1]]`
    (for pruning twin actions; -1 stands for an object the symmetry does not know)."""
    size = words(nfacts) * 8

    def blob(masks) -> bytes:
        return b"".join([m.to_bytes(size, "little") for m in masks])

    return _core.Core(nfacts, init.to_bytes(size, "little"), blob(pre), blob(neg), blob(add), blob(delete),
                      array("i", cost), goal_pos.to_bytes(size, "little"), goal_neg.to_bytes(size, "little"),
                      array("i", fact_weight), array("i", fact_pred), array("i", fact_args_off), array("i", fact_args),
                      array("i", obj_class), array("i", action_object_off), array("i", action_objects))


def fact_weights(facts, init: int) -> list[int]:
    """Per fact, an estimate (in 1/1000) of how often it holds: the share of its predicate's facts
    true at the start. The successor index files each action under its rarest precondition."""
    total: dict[str, int] = {}
    true: dict[str, int] = {}
    for k, fact in enumerate(facts):
        total[fact[0]] = total.get(fact[0], 0) + 1
        if init >> k & 1:
            true[fact[0]] = true.get(fact[0], 0) + 1
    return [1000 * (true.get(f[0], 0) + 1) // (total[f[0]] + 1) for f in facts]


def core_for_task(task, symmetry):
    """The task's actions (unit cost), goal and fact structure, with `symmetry`'s classes."""
    acts = task.actions
    ids = symmetry.object_id
    return make_core(len(task.facts), task.init, [a.pre for a in acts], [a.neg for a in acts], [a.add for a in acts],
                     [a.delete for a in acts], [1] * len(acts), task.goal_pos, task.goal_neg,
                     fact_weights(task.facts, task.init), symmetry.fact_pred, symmetry.fact_args_off, symmetry.fact_args,
                     symmetry.obj_class, accumulate((len(a.args) for a in acts), initial=0),
                     [ids.get(t, -1) for a in acts for t in a.args])
