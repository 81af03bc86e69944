"""The pattern-database heuristic of plannerl.planning.heuristics, checked against exact distances.

h* comes from a backward breadth-first search over the explicit state graph that the task's
own successor function spans (the task itself is checked against an independent reference in
test_planner.py), so nothing here trusts the code under test.
"""

from __future__ import annotations

import re
from array import array
from collections import deque

import pytest
from conftest import CLASSIC, DOMAINS, problem_id

from plannerl.pddl.task import set_bits
from plannerl.planning import compiled, heuristics
from plannerl.planning.heuristics import _Analysis, build_pattern_sum, shares_goal_objects
from plannerl.planning.planner import load_task
from plannerl.planning.search import Engine
from plannerl.tasks.generate import generate_instance

pytestmark = pytest.mark.skipif(not compiled.available(), reason="needs the compiled core (python setup.py build_ext --inplace)")

SMALL = [DOMAINS / f"{n}.pddl" for n in ("burger", "cheese_sandwich", "cooked_burger", "cheese_burger")] + [
    CLASSIC / "blocksworld/p02.pddl", CLASSIC / "blocksworld/p03.pddl", CLASSIC / "gripper/p06.pddl", CLASSIC / "logistics/p02.pddl"]


def state_graph(task, limit: int | None = None) -> tuple[list[int], dict[int, list[int]]]:
    """Reachable states in breadth-first order (the first `limit`) and their successors."""
    order, out = [task.init], {}
    seen = {task.init}
    queue = deque(order)
    while queue:
        state = queue.popleft()
        out[state] = [child for _, child in task.successors(state)]
        for child in out[state]:
            if child not in seen and (limit is None or len(seen) < limit):
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order, out


def exact_distances(task) -> dict[int, int]:
    """h* of every reachable state from which the goal is reachable."""
    order, out = state_graph(task)
    parents: dict[int, list[int]] = {s: [] for s in order}
    for state, children in out.items():
        for child in children:
            parents[child].append(state)
    h = {s: 0 for s in order if task.is_goal(s)}
    queue = deque(h)
    while queue:
        state = queue.popleft()
        for parent in parents[state]:
            if parent not in h:
                h[parent] = h[state] + 1
                queue.append(parent)
    return {s: h.get(s) for s in order}


def pattern_values(patterns, state: int) -> list[int]:
    """Each pattern's distance for a concrete state (-1: the pattern proves a dead end)."""
    values = []
    for core, projection in patterns:
        proj = array("i", projection)
        abstract = 0
        mask = state
        while mask:
            low = mask & -mask
            k = low.bit_length() - 1
            mask ^= low
            if proj[k] >= 0:
                abstract |= 1 << proj[k]
        values.append(core.pdb_value(abstract.to_bytes(abstract.bit_length() // 64 * 8 + 8, "little")))
    return values


@pytest.mark.parametrize("symmetry", [True, False], ids=["symmetry", "no-symmetry"])
@pytest.mark.parametrize("problem", SMALL, ids=problem_id)
def test_heuristic_is_admissible_on_every_reachable_state(problem, symmetry):
    task = load_task(None, problem)
    patterns = Engine(task, symmetry=symmetry).heuristic_patterns()
    h_star = exact_distances(task)
    for state, distance in h_star.items():
        values = pattern_values(patterns, state)
        if -1 in values:
            assert distance is None, f"a pattern calls a state with h* = {distance} a dead end"
        elif distance is not None:
            assert sum(values) <= distance
    if patterns and task.goal_pos & ~task.init:
        assert sum(pattern_values(patterns, task.init)) > 0, "the heuristic should see that the goal does not hold"


@pytest.mark.parametrize("seed", [None, 9], ids=["base", "seed9"])
def test_patterns_that_differ_only_by_names_share_a_database_with_the_same_values(seed):
    """On a double cheese burger the goal facts "X on Y" make isomorphic patterns (on a
    randomised layout not all of them: nothing goes on the top bun): those share one
    database, and it gives every state the values that separate databases give."""
    if seed is None:
        task = load_task(None, DOMAINS / "double_cheese_burger.pddl")
    else:
        task = generate_instance("double_cheese_burger", seed, extra_stations=(0, 24), distractors=(0, 8),
                                 best_binding=False).load_task()
    engine = Engine(task)
    shared = build_pattern_sum(task, engine.symmetry, engine.core).core_patterns()
    separate = build_pattern_sum(task, engine.symmetry, engine.core, share=False).core_patterns()
    assert len(shared) == len(separate)
    assert len({id(core) for core, _ in shared}) < len(shared)
    assert len({id(core) for core, _ in separate}) == len(separate)
    states, _ = state_graph(task, limit=3000)
    for state in states:
        assert pattern_values(shared, state) == pattern_values(separate, state)


def test_a_renamed_copy_of_a_task_reuses_its_databases_and_keeps_its_values():
    """Databases are kept across tasks by the shape of their abstract task, not by names: the
    double cheese burger with its tables, patties and cheeses renamed (goal table included)
    builds none of its own, and the borrowed ones give the values its own would."""
    from plannerl.pddl.reader import parse_domain, parse_problem
    from plannerl.pddl.task import compile_task

    renaming = {"table1": "table4", "table4": "table1", "patty1": "patty2", "patty2": "patty1", "cheese1": "cheese2",
                "cheese2": "cheese1"}
    text = (DOMAINS / "double_cheese_burger.pddl").read_text()
    renamed_text = re.sub(r"\b(table[14]|patty[12]|cheese[12])\b", lambda m: renaming[m.group(1)], text)
    domain = parse_domain(DOMAINS / "cooking.pddl")
    original = compile_task(domain, parse_problem("original.pddl", domain, text))
    renamed = compile_task(domain, parse_problem("renamed.pddl", domain, renamed_text))
    assert renamed.goal_pos != original.goal_pos
    heuristics._DATABASES.clear()
    first = Engine(original)
    own = {id(core) for core, _ in first.heuristic_patterns()}
    second = Engine(renamed)
    borrowed = second.heuristic_patterns()
    assert {id(core) for core, _ in borrowed} <= own
    separate = build_pattern_sum(renamed, second.symmetry, second.core, share=False).core_patterns()
    states, _ = state_graph(renamed, limit=2000)
    for state in states:
        assert pattern_values(borrowed, state) == pattern_values(separate, state)


@pytest.mark.parametrize("problem", [DOMAINS / "cheese_burger.pddl", CLASSIC / "blocksworld/p03.pddl"], ids=problem_id)
def test_actions_called_never_applicable_never_apply(problem):
    task = load_task(None, problem)
    analysis = _Analysis(task)
    never = [i for i in range(len(task.actions)) if analysis.never_applicable(i)]
    states, _ = state_graph(task)
    for state in states:
        assert not any(task.is_applicable(state, i) for i in never)
    if problem.parent == DOMAINS:  # stacking an item on itself is grounded but can never apply
        assert any(task.actions[i].schema == "stack" and task.actions[i].args[1] == task.actions[i].args[2] for i in never)


def test_signature_wants_a_permutation_of_the_facts():
    task = load_task(None, DOMAINS / "burger.pddl")
    core = Engine(task).core
    n = len(task.facts)
    assert core.signature(array("i", range(n))) != core.signature(array("i", [*range(1, n), 0]))
    with pytest.raises(ValueError, match="permutation"):
        core.signature(array("i", [0] * n))


def charges_written_out(analysis) -> tuple[list[int], ...]:
    """The charge rule of `_Analysis._charges`, action by action in plain Python (its loop runs
    in the compiled core): (owner_of, guard_off, guard_fact_off, guard_facts, guard_owner)."""
    task, groups, owner, sparse = analysis.task, analysis.groups, analysis.owner, analysis.sparse
    by_object: dict[str, list[int]] = {}
    for gi, members in enumerate(groups):
        if any(k in owner for k in members):
            for o in analysis.group_params[gi]:
                by_object.setdefault(o, []).append(gi)
    all_targets = set().union(*analysis.target_objects)
    owner_of, guard_off, guard_fact_off, guard_facts, guard_owner = [], [0], [0], [], []
    for a, action in enumerate(task.actions):
        found = [gi for k in sparse.pre[a] for gi in analysis.groups_of.get(k, ())]
        add, delete = set_bits(action.add), set_bits(action.delete)
        changed = [k for k in add + delete if k in owner]
        if len(found) != len(set(found)):
            owner_of.append(heuristics.NEVER)
        elif changed:
            args = action.args
            if len({owner[k] for k in changed}) > 1:
                changed.sort(key=lambda k: (sorted(args.index(t) if t in args else len(args) for t in task.facts[k][1:]), k))
            owner_of.append(owner[changed[0]])
        else:
            added = {t for k in add if k in analysis.groups_of for t in task.facts[k][1:]}
            deleted = {t for k in delete if k in analysis.groups_of for t in task.facts[k][1:]}
            destination = (added - deleted) & all_targets
            args = set(action.args)
            ranked = []
            for gi in {gi for o in args for gi in by_object.get(o, ())}:
                common = analysis.group_params[gi] & args
                carried = bool(common & added & deleted)
                rank = 0 if carried else 1 if common & added else 2 if common & deleted else 3
                ranked.append((rank, gi, [k for k in groups[gi] if k in owner
                                          and (not carried or destination & analysis.target_objects[owner[k]])]))
            owner_of.append(-1 if ranked else -2)
            for _, _, deciding in sorted(ranked):
                guard_facts.extend(deciding)
                guard_owner.extend(owner[k] for k in deciding)
                guard_fact_off.append(len(guard_facts))
        guard_off.append(len(guard_fact_off) - 1)
    return owner_of, guard_off, guard_fact_off, guard_facts, guard_owner


CHARGED = [("double_cheese_burger", seed) for seed in range(6)] + [("lettuce_tomato_sandwich", 1), ("cheese_burger", 3)]


@pytest.mark.parametrize("problem", SMALL + CHARGED, ids=lambda p: problem_id(p) if not isinstance(p, tuple) else f"{p[0]}-{p[1]}")
def test_compiled_charges_follow_the_rule_written_out(problem):
    """Every action's charge (owner, or guards in order with their deciding facts) as the
    compiled loop computes it equals the rule written out in Python, on shipped problems and
    randomised instances with distractors."""
    if isinstance(problem, tuple):
        task = generate_instance(problem[0], problem[1], best_binding=False).load_task()
    else:
        task = load_task(None, problem)
    analysis = _Analysis(task)
    compiled_charges = tuple(list(getattr(analysis, name)) for name in ("owner_of", "guard_off", "guard_fact_off",
                                                                         "guard_facts", "guard_owner"))
    assert compiled_charges == charges_written_out(analysis)
    if isinstance(problem, tuple):  # kitchens have actions of every kind: never applicable, owned, guarded
        assert {heuristics.NEVER, -1} <= set(compiled_charges[0]) and max(compiled_charges[0]) >= 0

@pytest.mark.parametrize("seed", [1007, 1020])
def test_a_clear_goal_gets_a_small_database_whatever_the_distractors(seed):
    """cheese_burger also asks `(clear topbun1)`, and any item may be stacked on the top bun.
    Its pattern once took every such item's groups (each is some achiever's condition), so
    its database grew exponentially with the distractors: at the default ranges seed 1020 (7
    stations, 2 distractors) built 276,611 abstract states and seed 1007 (9 stations, 4
    distractors) ran into the 2,000,000-state limit after 30 s and lost the pattern. Only
    groups about objects every achiever names join now: every goal fact keeps its small
    database, and the heuristic is still perfect on the initial state."""
    task = generate_instance("cheese_burger", seed, best_binding=False).load_task()
    assert task.goal_pos >> task.fact_index[("clear", "topbun1")] & 1
    engine = Engine(task)
    built = build_pattern_sum(task, engine.symmetry, engine.core, share=False)
    assert len(built.patterns) == len(_Analysis(task, engine.core).goal_facts)
    assert all(p.states < 20_000 for p in built.patterns)
    result = engine.search()
    assert sum(pattern_values(engine.heuristic_patterns(), task.init)) == result.length == result.expanded


def test_a_clear_goal_instance_keeps_its_optimal_length_and_first_actions():
    """The same seed-1020 cheese burger against blind uniform-cost search over the task's own
    states (no heuristic, no symmetry; about 36,000 states expanded)."""
    from plannerl.planning.search import optimal_search, python_optimal_search

    task = generate_instance("cheese_burger", 1020, best_binding=False).load_task()
    found = optimal_search(task)
    blind = python_optimal_search(task)
    assert found.length == blind.length == 12
    assert sorted(found.optimal_first_actions) == sorted(blind.optimal_first_actions)
    assert found.optimal_plans == blind.optimal_plans


CUTTING_KITCHEN = """(define (problem cut_lettuce)
  (:domain cooking)
  (:objects robot1 - robot table1 table2 table3 - table board1 - board
            lettuce1 - lettuce bread1 - bread onion1 - onion zero one two three - count)
  (:init (at robot1 table3) (hand-empty robot1)
         (vacant table1) (vacant table2) (vacant board1)
         (on-station lettuce1 table1) (in lettuce1 table1) (clear lettuce1)
         (on-station bread1 table2) (in bread1 table2) (clear bread1)
         (on-station onion1 board1) (in onion1 board1) (clear onion1) (empty table3)
         (cuttable lettuce1) (cut-progress lettuce1 zero)
         (cuttable onion1) (cut-progress onion1 zero)
         (next-count zero one) (next-count one two) (next-count two three))
  (:goal (and (on lettuce1 bread1) (cut-progress lettuce1 three))))
"""


def test_an_items_goal_facts_share_a_pattern_that_counts_every_cut_left(tmp_path):
    """The counts "zero".."three" are linked only by static `next-count` facts. Merged into one
    stand-in, the database of "lettuce1 cut three" reached it in one cut and gave 1 where three
    cuts remain; and apart from "lettuce1 on bread1" no database knew the lettuce must visit
    the board before the bread. Together they left lettuce_tomato_sandwich starts 10 steps
    short of h* (14 of 24). Now the lettuce has one pattern for both facts, with the counts
    kept apart: its value never falls below the cuts left plus the pick-up and stack the
    lettuce still needs, on the start it is 8 of 14 (5 before), and the sum stays admissible
    on every reachable state of a small kitchen whose only board is taken."""
    problem = tmp_path / "cut_lettuce.pddl"
    problem.write_text(CUTTING_KITCHEN)
    task = load_task(DOMAINS / "cooking.pddl", problem)
    engine = Engine(task)
    built = build_pattern_sum(task, engine.symmetry, engine.core, share=False)
    assert len(built.patterns) == 1  # both goal facts are about lettuce1
    h_star = exact_distances(task)
    progress = {task.fact_index[("cut-progress", "lettuce1", count)]: left
                for count, left in (("zero", 3), ("one", 2), ("two", 1), ("three", 0))}
    stacked = task.fact_index[("on", "lettuce1", "bread1")]
    holding = task.fact_index[("holding", "robot1", "lettuce1")]
    seen = set()
    for state, distance in h_star.items():
        values = pattern_values(built.core_patterns(), state)
        if distance is None or -1 in values:
            continue
        assert sum(values) <= distance
        if not state >> stacked & 1:
            left = next(n for k, n in progress.items() if state >> k & 1)
            assert sum(values) >= left + (not state >> holding & 1) + 1  # the cuts, a pick-up, the stack
            seen.add(left)
    assert seen == {0, 1, 2, 3}
    assert h_star[task.init] == 14  # clear the board, fetch and cut the lettuce, stack it on the bread
    assert sum(pattern_values(built.core_patterns(), task.init)) == 8  # 5 before (cut pattern 1, stack pattern 4)


def test_only_goal_facts_that_can_change_decide_whether_a_task_has_two_pattern_sets():
    """double_cheese_burger's patties start cooked and stay so: its goal facts that get patterns
    each name their own object, so it has one pattern set (no second search past the cheap
    budget); cooked_burger's raw patty must be cooked and stacked, so it has two."""
    assert not shares_goal_objects(load_task(None, DOMAINS / "double_cheese_burger.pddl"))
    assert shares_goal_objects(load_task(None, DOMAINS / "cooked_burger.pddl"))
    assert shares_goal_objects(load_task(None, DOMAINS / "lettuce_tomato_sandwich.pddl"))


def test_a_search_past_the_cheap_patterns_budget_switches_to_patterns_per_goal_object(monkeypatch):
    """The shipped lettuce_tomato_sandwich needs 701 states with the patterns per goal fact. With
    the cheap try capped below that, the engine builds the patterns per goal object, keeps them,
    and finds the same shortest plans (same canonical plan, count and first actions) in fewer
    states. A task whose goal facts each name their own object (Gripper's balls) never builds
    the second set, however long its search."""
    from plannerl.planning import search

    cheap = Engine(load_task(None, DOMAINS / "lettuce_tomato_sandwich.pddl")).search()
    assert cheap.expanded > 100
    monkeypatch.setattr(search, "CHEAP_HEURISTIC_STATES", 100)
    engine = Engine(load_task(None, DOMAINS / "lettuce_tomato_sandwich.pddl"))
    switched = engine.search()
    assert engine.object_patterns is not None and engine.patterns is not None
    assert (switched.plan, switched.optimal_plans, sorted(switched.optimal_first_actions)) == (
        cheap.plan, cheap.optimal_plans, sorted(cheap.optimal_first_actions))
    assert switched.expanded < cheap.expanded / 4
    again = engine.search()  # the stronger patterns serve at once
    assert again.plan == cheap.plan and again.expanded == switched.expanded
    gripper = Engine(load_task(None, CLASSIC / "gripper/p06.pddl"))
    assert gripper.search().expanded > 100
    assert gripper.object_patterns is None
