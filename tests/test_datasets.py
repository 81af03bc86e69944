"""Single-turn rows checked against replay, the oracle and an independent breadth-first search."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import deque

import pytest
from conftest import DOMAINS, FIXTURES, ROOT

from plannerl.errors import PlannerlError
from plannerl.planning.oracle import Oracle
from plannerl.planning.planner import load_task
from plannerl.tasks.actions import match_answer, parse_action
from plannerl.tasks.datasets import build_dataset_from_files, expert_rows, label_state, split_instances
from plannerl.tasks.generate import generate_instance, solve_instance
from plannerl.tasks.render import render_messages, render_prompt
from plannerl.train.rows import build_dataset

BLOCKS = FIXTURES / "data" / "blocks"
# Layouts small enough for the breadth-first cross-checks (the defaults go up to 28 stations).
FEW = {"extra_stations": (0, 3), "distractors": (0, 2)}
FIELDS = {"prompt", "messages", "completion", "expert_action", "expert_action_pddl", "optimal_actions", "optimal_actions_pddl",
          "task", "instance", "step", "h_star", "valid_actions", "valid_actions_pddl", "state", "history", "history_pddl",
          "source", "domain"}


def plannerl(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plannerl.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)


def distance_to_goal(task, state: int) -> int | None:
    """Plain breadth-first search, independent of plannerl.planning.search and the oracle."""
    seen = {state}
    frontier = deque([(state, 0)])
    while frontier:
        current, depth = frontier.popleft()
        if task.is_goal(current):
            return depth
        for action in task.applicable(current):
            child = task.apply(current, action)
            if child not in seen:
                seen.add(child)
                frontier.append((child, depth + 1))
    return None


def row_state(task, row) -> int:
    facts = [tuple(fact.strip("()").split()) for fact in row["state"]]
    return task.state_of(facts)


def check_rows(task, rows, *, bfs: bool) -> None:
    """Replay the expert, and check every optimal action (and only those) lowers h* by one."""
    oracle = Oracle(task)
    for i, row in enumerate(rows):
        assert FIELDS <= set(row)
        state = row_state(task, row)
        assert row["step"] == i and row["history_pddl"] == [r["expert_action_pddl"] for r in rows[:i]]
        assert row["history"] == [r["expert_action"] for r in rows[:i]]
        assert row["completion"] == f"Action: {row['expert_action']}"
        assert row["prompt"] == render_prompt(task, state, history=[task.find_action(a) for a in row["history_pddl"]])
        assert row["messages"] == render_messages(task, state, history=[task.find_action(a) for a in row["history_pddl"]])
        # replaying the expert from this row's state reaches the goal in exactly h_star steps
        replay = state
        for later in rows[i:]:
            replay = task.apply(replay, task.find_action(later["expert_action_pddl"]))
        assert task.is_goal(replay) and len(rows) - i == row["h_star"]
        # the expert action is one of the optimal ones; the two lists describe the same actions
        assert row["expert_action"] in row["optimal_actions"]
        assert row["optimal_actions"] == sorted(row["optimal_actions"])
        for sentence, pddl in zip(row["optimal_actions"], row["optimal_actions_pddl"], strict=True):
            assert parse_action(task, state, f"Action: {sentence}").action == task.find_action(pddl)
        optimal = {task.find_action(p) for p in row["optimal_actions_pddl"]}
        valid = [task.find_action(p) for p in row["valid_actions_pddl"]]
        assert valid == task.applicable(state) and optimal <= set(valid)
        for action in valid:
            child = task.apply(state, action)
            lowers = oracle.h_star(child) == row["h_star"] - 1
            assert lowers == (action in optimal)
            if bfs:
                assert (distance_to_goal(task, child) == row["h_star"] - 1) == (action in optimal)
        if i + 1 < len(rows):
            assert row_state(task, rows[i + 1]) == task.apply(state, task.find_action(row["expert_action_pddl"]))


@pytest.mark.parametrize(("name", "seed"), [("burger", 3), ("cheese_sandwich", 7), ("cheese_burger", 2), ("cooked_burger", 2)])
def test_expert_rows_replay_and_optimal_actions_agree_with_bfs(name, seed):
    instance = generate_instance(name, seed, hold_probability=0.5, extra_stations=(0, 3), distractors=(1, 2))
    task, oracle, plan = solve_instance(instance)
    rows = expert_rows(task, task_name=name, instance=instance.name, oracle=oracle)
    assert len(rows) == len(plan) == rows[0]["h_star"]
    assert [r["step"] for r in rows] == list(range(len(rows)))
    assert {r["task"] for r in rows} == {name} and {r["instance"] for r in rows} == {instance.name}
    check_rows(task, rows, bfs=True)


@pytest.mark.parametrize("problem", ["tower3.pddl", "swap4.pddl"])
def test_rows_on_a_non_cooking_domain(problem):
    task = load_task(None, BLOCKS / problem)
    rows = expert_rows(task, task_name="blocks", instance=problem)
    check_rows(task, rows, bfs=True)
    assert rows[0]["completion"].startswith("Action: ") and "(" in rows[0]["expert_action"]


def test_several_optimal_actions_are_all_listed():
    task = load_task(None, BLOCKS / "swap4.pddl")
    rows = expert_rows(task, task_name="blocks", instance="swap4")
    assert max(len(r["optimal_actions"]) for r in rows) >= 2
    for row in rows:
        for sentence, pddl in zip(row["optimal_actions"], row["optimal_actions_pddl"]):
            assert match_answer(f"Action: {sentence}", row["optimal_actions"], row["optimal_actions_pddl"]) is not None
            assert match_answer(pddl, row["optimal_actions"], row["optimal_actions_pddl"]) is not None


def test_label_state_works_for_states_the_expert_never_visits():
    task, oracle, plan = solve_instance(generate_instance("cheese_burger", 4, **FEW))
    expert_states = {s for s, _ in oracle.trajectory(plan)}
    rng = random.Random(1)
    state, history, labelled = task.init, [], 0
    for _ in range(25):
        if not task.is_goal(state) and state not in expert_states:
            row = label_state(task, state, oracle, history=history, task_name="cheese_burger", instance="walk")
            assert row["source"] == "visited" and row["step"] == len(history)
            assert row["h_star"] == distance_to_goal(task, state)
            for pddl in row["optimal_actions_pddl"]:
                assert distance_to_goal(task, task.apply(state, task.find_action(pddl))) == row["h_star"] - 1
            labelled += 1
        action = rng.choice(task.applicable(state))
        history.append(action)
        state = task.apply(state, action)
    assert labelled >= 10
    goal = task.init
    for action in plan:
        goal = task.apply(goal, action)
    with pytest.raises(PlannerlError, match="goal state"):
        label_state(task, goal, oracle)


def test_split_is_by_instance_and_stable():
    names = [f"i{k}" for k in range(20)]
    test = split_instances(names, 0.25, 0)
    assert len(test) == 5 and test <= set(names)
    assert split_instances(names, 0.25, 0) == test and split_instances(names, 0.25, 1) != test
    assert len(split_instances(["a", "b"], 0.1, 0)) == 1 and split_instances(["a"], 0.1, 0) == set()
    assert split_instances(names, 0.0, 0) == set()
    with pytest.raises(PlannerlError):
        split_instances(names, 1.5, 0)


def test_build_dataset_files_load_and_are_byte_identical(tmp_path):
    import datasets

    a, b = tmp_path / "a", tmp_path / "b"
    summary = build_dataset("burger", range(1, 9), a, test_fraction=0.25, split_seed=3, **FEW)
    build_dataset("burger", range(1, 9), b, test_fraction=0.25, split_seed=3, jobs=2, **FEW)  # two worker processes
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert {"train.jsonl", "test.jsonl", "summary.json", "README.md", "problems/instances.json", "problems/cooking.pddl"} <= set(files)
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    train = [json.loads(line) for line in (a / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (a / "test.jsonl").read_text().splitlines()]
    assert not {r["instance"] for r in train} & {r["instance"] for r in test}
    assert len({r["instance"] for r in test}) == 2 and summary["test_instances"] == sorted({r["instance"] for r in test})
    assert summary["rows"] == len(train) + len(test) == summary["train"]["rows"] + summary["test"]["rows"]
    assert summary["instances"] == 8
    assert summary["prompt_chars_max"] == max(len(r["prompt"]) for r in train + test)
    assert summary["prompt_tokens_max"] == max(len(r["prompt"].split()) for r in train + test)
    index = json.loads((a / "problems" / "instances.json").read_text())
    lengths = {r["name"]: r["optimal_length"] for r in index["instances"]}
    for row in train + test:
        assert row["h_star"] <= lengths[row["instance"]]
    # both ways of loading read the same rows
    loaded = datasets.load_dataset(str(a))
    assert loaded["train"].num_rows == len(train) and loaded["test"].num_rows == len(test)
    direct = datasets.load_dataset("json", data_files={"train": str(a / "train.jsonl")})["train"]
    assert direct[0]["prompt"] == train[0]["prompt"] and direct[0]["messages"] == train[0]["messages"]
    # rows replay against the problems saved beside them
    task = load_task(None, a / "problems" / f"{train[0]['instance']}.pddl")
    check_rows(task, [r for r in train if r["instance"] == train[0]["instance"]], bfs=False)


def test_dataset_from_problem_files(tmp_path):
    summary = build_dataset_from_files(None, [BLOCKS / "tower3.pddl", BLOCKS / "swap4.pddl"], tmp_path / "d", test_fraction=0.5)
    build_dataset_from_files(None, [BLOCKS / "tower3.pddl", BLOCKS / "swap4.pddl"], tmp_path / "j", test_fraction=0.5, jobs=2)
    for path in (tmp_path / "d").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "j" / path.relative_to(tmp_path / "d")).read_bytes(), path
    assert summary["instances"] == 2 and summary["tasks"].keys() == {"tiny-blocks"}
    assert (tmp_path / "d" / "problems" / "domain.pddl").is_file()
    assert load_task(None, tmp_path / "d" / "problems" / "swap4.pddl").name == "swap4"
    with pytest.raises(PlannerlError, match="two problems are named"):
        build_dataset_from_files(None, [BLOCKS / "swap4.pddl", BLOCKS / "swap4.pddl"], tmp_path / "e")


def test_data_command_from_task_and_from_files(tmp_path):
    done = plannerl("data", "--task", "cheese_sandwich", "--seeds", "1:4", "--out", tmp_path / "t")  # Robotouille's ranges
    assert done.returncode == 0, done.stderr
    assert "cheese_sandwich" in done.stdout and (tmp_path / "t" / "summary.json").is_file()
    index = json.loads((tmp_path / "t" / "problems" / "instances.json").read_text())
    assert index["ranges"]["extra_stations"] == [0, 24] and index["ranges"]["distractors"] == [0, 8]
    done = plannerl("data", "--task", "cheese_sandwich", "--seeds", "1:4", "--out", tmp_path / "t2", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    for name in ("train.jsonl", "test.jsonl", "summary.json", "problems/instances.json"):
        assert (tmp_path / "t" / name).read_bytes() == (tmp_path / "t2" / name).read_bytes(), name
    done = plannerl("data", DOMAINS / "cooking.pddl", DOMAINS / "burger.pddl", DOMAINS / "cheese_sandwich.pddl", "--out", tmp_path / "f")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["rows"] == 16


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "pizza", "--seeds", "1"], "known tasks: burger"),
    (["--task", "burger", "--seeds", "1:x"], "not a non-negative integer"),
    (["--task", "burger"], "--task needs --seeds"),
    ([], "give PDDL problem files"),
    (["--task", "burger", "--seeds", "1", "--test-fraction", "2"], "test fraction"),
    (["--task", "burger", "--seeds", "1", "--jobs", "0"], "jobs"),
])
def test_data_command_bad_input(tmp_path, args, message):
    out = tmp_path / "out"
    done = plannerl("data", *args, "--out", out)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr, done.stderr
    assert not out.exists()


def test_data_command_unwritable_folder_and_bad_recipe(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = plannerl("data", "--task", "burger", "--seeds", "1", "--out", blocker / "out")
    assert done.returncode == 2 and "not writable" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "blt.toml").write_text('layers = ["bread", "bacon"]\n[base]\nstations = ["table"]\nstacks = [["bread", "bacon"]]\n')
    out = tmp_path / "out"
    done = plannerl("data", "--task", "blt", "--seeds", "1", "--out", out, env={**os.environ, "PLANNERL_RECIPES": str(recipes)})
    assert done.returncode == 2 and "blt.toml: layers: unknown ingredient type 'bacon'" in done.stderr
    assert not out.exists()
