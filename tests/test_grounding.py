"""Grounding is shared between problems that differ only in their goal, and only then."""

from __future__ import annotations

from conftest import DOMAINS

from plannerl.pddl.reader import parse_domain, parse_problem
from plannerl.pddl.task import compile_task
from plannerl.planning.search import breadth_first_search

BURGER = (DOMAINS / "burger.pddl").read_text()


def test_a_second_goal_over_the_same_start_reuses_the_grounding_and_plans_for_its_own_goal():
    domain = parse_domain(DOMAINS / "cooking.pddl")
    first = compile_task(domain, parse_problem("first.pddl", domain, BURGER))
    # the same kitchen, but only the bottom bun has to be picked up
    goal_start = BURGER.index("(:goal")
    other = BURGER[:goal_start] + "(:goal (holding robot1 bottombun1)))\n"
    second = compile_task(domain, parse_problem("second.pddl", domain, other))
    assert second.actions == first.actions and all(a is b for a, b in zip(second.actions, first.actions))
    assert second.goal_pos != first.goal_pos
    plan = breadth_first_search(second).plan
    state = second.init
    for action in plan:
        state = second.apply(state, action)
    assert second.is_goal(state) and not first.is_goal(state)


def test_a_different_start_is_grounded_anew():
    domain = parse_domain(DOMAINS / "cooking.pddl")
    first = compile_task(domain, parse_problem("first.pddl", domain, BURGER))
    moved = BURGER.replace("(at robot1 table1)", "(at robot1 table2)").replace("(vacant table2)", "(vacant table1)")
    assert moved != BURGER
    second = compile_task(domain, parse_problem("moved.pddl", domain, moved))
    assert second.init != first.init
    assert not any(a is b for a, b in zip(second.actions, first.actions))
