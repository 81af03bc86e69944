"""Sub-goals of a recipe (`data.subgoals`): many goals from one recipe, never another recipe's goal."""

from __future__ import annotations

import json
import random

import pytest
from test_generate import SHIPPED, assert_one_line_error, plannerl

from plannerl.errors import PlannerlError
from plannerl.tasks.generate import generate_instance, solve_instance
from plannerl.tasks.random_recipes import BASES, goal_signature, subgoal_recipe
from plannerl.tasks.recipes import load_recipe
from plannerl.train.config import resolve_config
from plannerl.train.rows import RowOptions, instance_rows, options_of

FEW = {"extra_stations": (0, 3), "distractors": (0, 2)}


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    rest = iter(whole)
    return all(item in rest for item in part)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_subgoal_keeps_the_shape_and_is_never_another_recipes_goal(name):
    parent = load_recipe(name)
    others = {goal_signature(load_recipe(n)) for n in SHIPPED} - {goal_signature(parent)}
    seen = set()
    for seed in range(200):
        recipe = subgoal_recipe(parent, random.Random(seed))
        assert recipe == subgoal_recipe(parent, random.Random(seed))  # seeded
        assert goal_signature(recipe) not in others
        if recipe is parent:
            continue
        layers = list(recipe.layers)
        assert layers[0] in BASES and recipe.name == f"{name}_subgoal"
        if len(parent.layers) > 2:
            assert layers[-1] == BASES[layers[0]] and _is_subsequence(layers[1:-1], list(parent.layers[1:-1]))
        assert set(recipe.cooked) <= set(parent.cooked) and set(recipe.cut) <= set(parent.cut)
        assert {t for t in parent.cooked if t in layers} == set(recipe.cooked)  # requirements kept where the type is
        seen.add(goal_signature(recipe))
    if name == "double_cheese_burger":  # four fillings on two bases: many goals
        assert len(seen) >= 15


def test_subgoals_change_only_the_seeds_that_draw_one():
    changed = 0
    for seed in range(40):
        plain = generate_instance("double_cheese_burger", seed, **FEW)
        mixed = generate_instance("double_cheese_burger", seed, subgoals=0.5, **FEW)
        assert mixed.problem_text == generate_instance("double_cheese_burger", seed, subgoals=0.5, **FEW).problem_text
        if mixed.recipe.name == "double_cheese_burger":
            assert mixed.problem_text == plain.problem_text  # the seed's own instance, as with subgoals 0
        else:
            changed += 1
            assert mixed.name == f"double_cheese_burger_subgoal_{seed}" and mixed.task_name == "double_cheese_burger"
            task, oracle, plan = solve_instance(mixed)
            state = task.init
            for action in plan:
                state = task.apply(state, action)
            assert task.is_goal(state) and mixed.optimal_length in (None, len(plan))  # None: one binding, unsolved
    assert 10 <= changed <= 30


def test_subgoal_rows_are_labelled_under_the_subgoal_name():
    seed = next(s for s in range(100) if generate_instance("burger", s, subgoals=1.0, **FEW).recipe.name != "burger")
    instance, length, rows = instance_rows("burger", seed, RowOptions(subgoals=1.0), ranges=FEW)
    assert instance.recipe.layers[0] == "bread" and length == instance.optimal_length
    assert rows and {row["task"] for row in rows} == {"burger_subgoal"}


def test_subgoals_is_a_probability_in_the_training_config():
    assert options_of(resolve_config(overrides={"data": {"subgoals": 0.5}})).subgoals == 0.5
    assert options_of(resolve_config()).subgoals == 0.0
    with pytest.raises(PlannerlError, match=r"data.subgoals must be from 0 to 1, got 1.5"):
        resolve_config(overrides={"data": {"subgoals": 1.5}})


def test_data_command_writes_subgoal_rows(tmp_path):
    done = plannerl("data", "--task", "double_cheese_burger", "--seeds", "0:9", "--subgoals", "0.5", "--out", tmp_path / "d",
                    "--extra-stations", "0-3", "--distractors", "0-2", "--test-fraction", "0")
    assert done.returncode == 0, done.stderr
    tasks = json.loads((tmp_path / "d" / "summary.json").read_text())["tasks"]
    assert set(tasks) == {"double_cheese_burger", "double_cheese_burger_subgoal"}
    assert sum(stats["instances"] for stats in tasks.values()) == 10
    assert_one_line_error(plannerl("data", "--task", "burger", "--seeds", "0:1", "--subgoals", "2", "--out", tmp_path / "e"),
                          "--subgoals must be from 0 to 1, got 2.0")
