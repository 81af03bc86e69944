"""Renamed training instances (`plannerl.tasks.renaming`, `data.rename`): the same problem
under shuffled names, checked against a fresh compile of the renamed PDDL text."""

import random
import re
from pathlib import Path

import pytest

from plannerl.errors import PlannerlError
from plannerl.pddl.reader import parse_domain, parse_problem
from plannerl.pddl.task import compile_task
from plannerl.planning.oracle import make_oracle
from plannerl.planning.planner import load_task
from plannerl.tasks.generate import _domain, generate_instance, solve_instance
from plannerl.tasks.renaming import object_renaming, renamed_task
from plannerl.train.config import parse_assignment
from plannerl.train.rows import RowOptions, instance_rows


def _rename_text(text: str, renaming: dict[str, str]) -> str:
    return re.sub(r"\b[a-z]+\d+\b", lambda m: renaming.get(m.group(0), m.group(0)), text)


@pytest.mark.parametrize("task_name, seed", [("cheese_sandwich", 42), ("lettuce_tomato_sandwich", 3)])
def test_a_renamed_task_is_the_problem_of_the_renamed_pddl_text(task_name, seed):
    """Every action of the renamed task is the same-named action of the renamed problem
    compiled from scratch, with the same effect on the same facts, and its canonical plan is
    a shortest plan there: the original's oracle labels the renamed task correctly."""
    instance = generate_instance(task_name, seed, extra_stations=(3, 6), distractors=(1, 3))
    task, oracle, plan = solve_instance(instance)
    renaming = object_renaming(task, random.Random(7))
    assert renaming, "a kitchen with several tables must get some new names"
    assert set(renaming) == set(renaming.values())            # a permutation
    assert all(re.fullmatch(r"[a-z-]+\d+", name) for name in renaming)  # counters zero..three stay
    renamed = renamed_task(task, renaming)
    fresh = compile_task(_domain(instance.domain_path),
                         parse_problem("renamed.pddl", _domain(instance.domain_path), _rename_text(instance.problem_text, renaming)))
    state, fresh_state = renamed.init, fresh.init
    assert set(renamed.true_facts(state)) == set(fresh.true_facts(fresh_state))
    for action in plan:
        fresh_action = fresh.find_action(renamed.actions[action].pddl)
        assert fresh.is_applicable(fresh_state, fresh_action)
        state, fresh_state = renamed.apply(state, action), fresh.apply(fresh_state, fresh_action)
        assert set(renamed.true_facts(state)) == set(fresh.true_facts(fresh_state))
    assert renamed.is_goal(state) and fresh.is_goal(fresh_state)
    assert len(make_oracle(fresh).canonical_plan()) == len(plan)
    assert oracle.optimal_actions(renamed.init) == oracle.optimal_actions(task.init)


def test_renaming_is_seeded_and_leaves_unnumbered_and_single_objects_alone():
    task = generate_instance("lettuce_tomato_sandwich", 3, extra_stations=(3, 6), distractors=(1, 3)).load_task()
    first, second = (renamed_task(task, object_renaming(task, random.Random(1))) for _ in range(2))
    assert first.facts == second.facts and [a.pddl for a in first.actions] == [a.pddl for a in second.actions]
    assert renamed_task(task, object_renaming(task, random.Random(2))).facts != first.facts
    for name in ("zero", "one", "two", "three", "robot1"):
        assert first.objects.get(name) == task.objects[name]
    assert renamed_task(task, {}) is task


def test_a_users_domain_has_its_unnumbered_names_permuted_unless_constant_or_static():
    """Blocksworld's blocks `a`..`e` carry no number: they are permuted among themselves, and the
    renamed task is the problem of the renamed file. Gripper's rooms and grippers appear in
    static facts (`(room rooma)`), so they keep their names."""
    classic = Path(__file__).resolve().parent / "fixtures" / "classic"
    domain_path, problem_path = classic / "blocksworld" / "domain.pddl", classic / "blocksworld" / "p02.pddl"
    task = load_task(domain_path, problem_path)
    renaming = object_renaming(task, random.Random(1))
    assert renaming and set(renaming) == set(renaming.values()) and set(renaming) <= set(task.objects)
    text = re.sub(r"(?<=[\s(])([a-e])(?=[\s)])", lambda m: renaming.get(m.group(1), m.group(1)), problem_path.read_text())
    domain = parse_domain(domain_path)
    fresh = compile_task(domain, parse_problem("renamed.pddl", domain, text))
    renamed = renamed_task(task, renaming)
    state, fresh_state = renamed.init, fresh.init
    assert set(renamed.true_facts(state)) == set(fresh.true_facts(fresh_state))
    for action in make_oracle(task).canonical_plan():
        fresh_action = fresh.find_action(renamed.actions[action].pddl)
        state, fresh_state = renamed.apply(state, action), fresh.apply(fresh_state, fresh_action)
        assert set(renamed.true_facts(state)) == set(fresh.true_facts(fresh_state))
    assert renamed.is_goal(state) and fresh.is_goal(fresh_state)
    gripper = load_task(classic / "gripper" / "domain.pddl", classic / "gripper" / "p01.pddl")
    assert not set(object_renaming(gripper, random.Random(1))) & {"rooma", "roomb", "left", "right"}


def test_data_rename_swaps_the_base_bread_in_some_goals_and_keeps_every_label():
    """With rename 1.0 the rows are those of the same instance under new names: the same
    number of rows, the same optimal lengths, and the goal's base bread is no longer mostly
    bread1 (the name tie-break of the goal binding); 0.0 gives exactly the plain rows."""
    seeds = range(1000, 1012)
    plain = {s: instance_rows("cheese_sandwich", s, RowOptions(style="todo"))[2] for s in seeds}
    renamed = {s: instance_rows("cheese_sandwich", s, RowOptions(style="todo", rename=1.0))[2] for s in seeds}
    assert {s: instance_rows("cheese_sandwich", s, RowOptions(style="todo", rename=0.0))[2] for s in seeds} == plain
    for seed in seeds:
        assert "renaming" not in plain[seed][0]
        assert [r["h_star"] for r in renamed[seed]] == [r["h_star"] for r in plain[seed]]
        # each row names its renaming, so its actions replay on the problem file
        back = {new: old for old, new in renamed[seed][0]["renaming"].items()}
        assert [_rename_text(r["expert_action_pddl"], back) for r in renamed[seed]] == [r["expert_action_pddl"] for r in plain[seed]]
        assert [len(r["optimal_actions"]) for r in renamed[seed]] == [len(r["optimal_actions"]) for r in plain[seed]]
    base = re.compile(r"Goal: cheese1 on (bread\d)")
    plain_bases = [base.search(rows[0]["prompt"]).group(1) for rows in plain.values()]
    renamed_bases = [base.search(rows[0]["prompt"]).group(1) for rows in renamed.values()]
    assert plain_bases.count("bread2") <= 2 and 4 <= renamed_bases.count("bread2") <= 10
    with pytest.raises(PlannerlError, match="data.rename must be from 0 to 1"):
        parse_assignment("data.rename=2.0")
