"""The built-in planner and oracle against independent references.

- unified-planning's validator accepts every plan, and Fast Downward (A* + LM-cut through
  up-fast-downward) finds plans of the same length, on every cooking task and classic fixture;
- on small problems an exhaustive reference written here (its own naive grounder over sets of
  atoms, forward BFS over all reachable states, backward BFS for h*, dynamic programming for
  plan counts) gives the same h*, optimal-action sets, plan counts and canonical plans.

Each check runs on every search path `plannerl.planning.planner.solve` can take: the compiled core with
object symmetry (the default), the compiled core without it, and the pure-Python search (the
fallback when the extension is not built).
"""

from __future__ import annotations

import random
from collections import deque
from functools import cache
from itertools import product
from pathlib import Path

import pytest
from conftest import ALL_PROBLEMS, BAD, CLASSIC, DOMAINS, problem_id

from plannerl.errors import LimitError, NoPlanError
from plannerl.pddl.planfile import replay
from plannerl.pddl.reader import load
from plannerl.pddl.up_bridge import fast_downward_plan, validate_with_up
from plannerl.planning import compiled
from plannerl.planning.oracle import Oracle
from plannerl.planning.planner import load_task, solve
from plannerl.planning.search import Engine, optimal_search

# search path -> solve() options; the core's paths need the built extension
PATHS = {"compiled": {}, "compiled-no-symmetry": {"symmetry": False}, "python": {"compiled_core": False}}


@cache
def _solved(problem: Path, path: str = "compiled"):
    if path != "python":
        assert compiled.available(), "build the compiled core: python setup.py build_ext --inplace"
    solution = solve(None, problem, **PATHS[path])
    assert solution.core == ("python" if path == "python" else "compiled")
    return solution


def test_compiled_core_is_built():
    """CI builds it with the package; without it every check below would test the fallback only."""
    assert compiled.available(), "build the compiled core: python setup.py build_ext --inplace"


@pytest.mark.parametrize("problem", ALL_PROBLEMS, ids=problem_id)
def test_plan_is_valid_for_up_and_as_short_as_fast_downward(problem):
    reference_length = fast_downward_plan(None, problem).length
    default = _solved(problem)
    for path in PATHS:
        solution = _solved(problem, path)
        plan = solution.plan_names
        assert len(plan) == reference_length, path
        assert replay(solution.task, plan).valid, path
        # the canonical plan and the plan count are defined by the task alone, not by the search
        assert (plan, solution.result.optimal_plans) == (default.plan_names, default.result.optimal_plans), path
        assert solution.result.optimal_plans >= 1
    assert validate_with_up(None, problem, default.plan_names)


def test_cooking_lengths_match_robotouille():
    """RESEARCH.md: exhaustive search over Robotouille's own semantics gives 8, 8, 15, 23 with
    2, 1, 2, 1 shortest plans (our PDDL binds the goal objects, so symmetric ties may differ)."""
    lengths = {name: len(_solved(DOMAINS / f"{name}.pddl").plan_names)
               for name in ("cheese_sandwich", "burger", "cheese_burger", "double_cheese_burger")}
    assert lengths == {"cheese_sandwich": 8, "burger": 8, "cheese_burger": 15, "double_cheese_burger": 23}


# ---------------------------------------------------------------- exhaustive reference


class Reference:
    """Exhaustive search over explicit states (frozensets of fluent atoms), sharing nothing with
    plannerl's task, search or oracle: only the parsed Domain/Problem (checked against UP in
    test_pddl.py)."""

    def __init__(self, problem_path: Path) -> None:
        domain, problem = load(None, problem_path)
        fluent = {atom[0] for schema in domain.actions for atom in schema.add + schema.delete}
        self.actions = []  # (text, pre, neg, add, delete)
        for schema in domain.actions:
            choices = [[o for o, t in problem.objects.items() if domain.is_subtype(t, want)] for _, want in schema.params]
            for values in product(*choices):
                b = dict(zip((var for var, _ in schema.params), values))

                def ground(atom, b=b):
                    return (atom[0], *(b.get(x, x) for x in atom[1:]))

                if any(b.get(x, x) != b.get(y, y) for x, y in schema.equal) or any(b.get(x, x) == b.get(y, y) for x, y in schema.not_equal):
                    continue
                pos = [ground(a) for a in schema.pre_pos]
                neg = [ground(a) for a in schema.pre_neg]
                if any(a[0] not in fluent and a not in problem.init for a in pos):
                    continue
                if any(a[0] not in fluent and a in problem.init for a in neg):
                    continue
                text = "(" + " ".join((schema.name, *values)) + ")"
                self.actions.append((text, frozenset(a for a in pos if a[0] in fluent), frozenset(a for a in neg if a[0] in fluent),
                                     frozenset(ground(a) for a in schema.add), frozenset(ground(a) for a in schema.delete)))
        self.init = frozenset(a for a in problem.init if a[0] in fluent)
        goal_pos = {a for a in problem.goal_pos if a[0] in fluent}
        goal_neg = {a for a in problem.goal_neg if a[0] in fluent}
        static_goals_hold = all(a in problem.init for a in problem.goal_pos if a[0] not in fluent)

        def is_goal(s):
            return static_goals_hold and goal_pos <= s and not (goal_neg & s)

        self.edges: dict[frozenset, list[tuple[str, frozenset]]] = {}
        queue = deque([self.init])
        self.edges[self.init] = []
        order = [self.init]
        while queue:
            s = queue.popleft()
            out = []
            for text, pre, neg, add, delete in self.actions:
                if pre <= s and not (neg & s):
                    t = (s - delete) | add
                    out.append((text, t))
                    if t not in self.edges:
                        self.edges[t] = []
                        queue.append(t)
                        order.append(t)
            self.edges[s] = out
        self.states = order
        # backward BFS over reversed edges from every goal state
        parents: dict[frozenset, list[frozenset]] = {s: [] for s in self.states}
        for s, out in self.edges.items():
            for _, t in out:
                parents[t].append(s)
        self.h = {s: 0 for s in self.states if is_goal(s)}
        queue = deque(self.h)
        while queue:
            t = queue.popleft()
            for s in parents[t]:
                if s not in self.h:
                    self.h[s] = self.h[t] + 1
                    queue.append(s)

    def optimal_actions(self, s) -> set[str]:
        if self.h.get(s, 0) == 0:
            return set()
        return {text for text, t in self.edges[s] if self.h.get(t) == self.h[s] - 1}

    def plan_count(self, s) -> int:
        counts: dict[frozenset, int] = {}
        for state in sorted((x for x in self.h), key=self.h.__getitem__):
            counts[state] = 1 if self.h[state] == 0 else sum(
                counts[t] for _, t in self.edges[state] if self.h.get(t) == self.h[state] - 1)
        return counts[s]

    def canonical_plan(self, s) -> list[str]:
        """Lexicographically smallest shortest plan: greedily the smallest optimal action name."""
        plan = []
        while self.h[s] > 0:
            text = min(self.optimal_actions(s))
            plan.append(text)
            s = next(t for name, t in self.edges[s] if name == text)
        return plan


SMALL = [DOMAINS / f"{n}.pddl" for n in ("burger", "cheese_sandwich", "cooked_burger", "cheese_burger")] + [
    CLASSIC / f"{d}/{p}.pddl" for d, p in (("blocksworld", "p00"), ("blocksworld", "p01"), ("blocksworld", "p02"), ("blocksworld", "p03"),
                                           ("gripper", "p01"), ("gripper", "p02"), ("gripper", "p04"), ("gripper", "p06"),
                                           ("logistics", "p01"), ("logistics", "p02"))
] + [BAD / "ok.pddl"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("problem", SMALL, ids=problem_id)
def test_canonical_plan_and_count_match_exhaustive_reference(problem, path):
    ref = Reference(problem)
    solution = _solved(problem, path)
    assert len(solution.plan_names) == ref.h[ref.init]
    assert solution.plan_names == ref.canonical_plan(ref.init)
    assert solution.result.optimal_plans == ref.plan_count(ref.init)
    assert not solution.result.plans_capped
    first = {solution.task.actions[a].pddl for a in solution.result.optimal_first_actions}
    assert first == ref.optimal_actions(ref.init)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("problem", SMALL + [BAD / "unsolvable.pddl"], ids=problem_id)
def test_oracle_and_applicable_actions_match_exhaustive_reference(problem, path):
    ref = Reference(problem)
    task = load_task(None, problem)
    # a Python heuristic (here the blind one) makes the oracle search in Python
    oracle = Oracle(task, heuristic=(lambda state: 0) if path == "python" else None, symmetry=path == "compiled")
    # every state of the tiny problems; a seeded sample elsewhere (each label is one search)
    states = ref.states if len(ref.states) <= 300 else [ref.init, *random.Random(0).sample(ref.states, 30)]
    for s in states:
        state = task.state_of(s)
        assert {task.actions[a].pddl for a in task.applicable(state)} == {text for text, _ in ref.edges[s]}
        label = oracle.label(state)
        assert label.h_star == ref.h.get(s)
        names = [task.actions[a].pddl for a in label.optimal_actions]
        assert set(names) == ref.optimal_actions(s)
        if names:
            assert names[0] == min(names)  # the canonical (expert) action is the smallest name


def test_unsolvable_problem_exhausts_the_reachable_states():
    with pytest.raises(NoPlanError, match="no plan exists: all 3 reachable states explored"):
        solve(None, BAD / "unsolvable.pddl")
    with pytest.raises(NoPlanError, match="no plan exists: all 3 reachable states explored"):
        solve(None, BAD / "unsolvable.pddl", compiled_core=False)
    # the cup's two goal places in one pattern (per goal object): its database has no goal
    # state, so the start is a dead end before any search
    engine = Engine(load_task(None, BAD / "unsolvable.pddl"))
    engine.heuristic_patterns(by_object=True)  # built and kept: the search uses them at once
    with pytest.raises(NoPlanError, match="the heuristic proves the goal unreachable from the start"):
        engine.search()
    with pytest.raises(NoPlanError, match="unreachable even ignoring delete effects"):
        solve(None, BAD / "unreachable_goal.pddl")


def test_limits_are_reported_as_limits():
    large = BAD / "large_logistics.pddl"
    with pytest.raises(LimitError, match="time limit of 0.2 s"):
        solve(CLASSIC / "logistics/domain.pddl", large, time_limit=0.2)
    task = load_task(None, DOMAINS / "cheese_burger.pddl")
    with pytest.raises(LimitError, match="state limit"):
        optimal_search(task, max_states=10)


def test_goal_that_already_holds_gives_the_empty_plan():
    solution = solve(None, CLASSIC / "blocksworld/p00.pddl")
    assert solution.plan_names == [] and solution.result.optimal_plans == 1
    assert validate_with_up(None, CLASSIC / "blocksworld/p00.pddl", [])
