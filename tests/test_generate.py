"""Seed specs, recipes and the seeded cooking generator, checked with the real planner."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DOMAINS, FIXTURES, ROOT

from plannerl.errors import PlannerlError
from plannerl.parallel import map_seeds
from plannerl.pddl.reader import parse_problem
from plannerl.pddl.task import compile_task
from plannerl.planning.planner import load_task, solve
from plannerl.planning.search import breadth_first_search
from plannerl.seeds import parse_seeds
from plannerl.tasks.generate import (
    DEFAULT_RANGES,
    _domain,
    _instance,
    base_instance,
    generate_instance,
    list_tasks,
    make_ranges,
    paper_step_limit,
    problem_text,
    random_layout,
    solve_instance,
    write_instances,
)
from plannerl.tasks.recipes import COOKING_DOMAIN, load_recipe

DATA = FIXTURES / "data"
SHIPPED = ["burger", "cheese_burger", "cheese_sandwich", "cooked_burger", "double_cheese_burger", "lettuce_tomato_sandwich"]
SMALL = ["burger", "cheese_sandwich", "cheese_burger", "cooked_burger"]
# Layouts small enough for breadth-first cross-checks (the defaults go up to 28 stations).
FEW = {"extra_stations": (0, 3), "distractors": (0, 2)}


def plannerl(*args, env=None, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plannerl.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=env)


def assert_one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plannerl: error: "), done.stderr
    assert message in lines[0], lines[0]


# --- seed specs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "seeds"), [
    ("7", [7]),
    ("1,2,5", [1, 2, 5]),
    ("42:420:42", [42, 84, 126, 168, 210, 252, 294, 336, 378, 420]),
    ("0:3", [0, 1, 2, 3]),
    (" 5:9:2 , 1", [5, 7, 9, 1]),
    ("3:3", [3]),
])
def test_parse_seeds(spec, seeds):
    assert parse_seeds(spec) == seeds


def test_range_stop_is_inclusive_in_both_forms():
    assert len(parse_seeds("0:999")) == 1000
    assert len(parse_seeds("0:1000")) == 1001
    assert parse_seeds("0:10:5") == [0, 5, 10]


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty"), ("a", "'a'"), ("1:", "''"), ("5:1", "stops before it starts"), ("1:5:0", "step"),
    ("-3", "'-3'"), ("1,1", "appears twice"), ("1:2:3:4", "bad part"), ("0:20000000", "more than"), ("1.5", "'1.5'"),
])
def test_bad_seed_specs_name_the_spec(spec, message):
    with pytest.raises(PlannerlError) as info:
        parse_seeds(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


# --- recipes and tasks ------------------------------------------------------------------------

def test_list_tasks_has_every_shipped_recipe():
    assert set(SHIPPED) <= set(list_tasks())


def test_paper_step_limits():
    assert [paper_step_limit(t) for t in ("cheese_sandwich", "burger", "cheese_burger", "double_cheese_burger")] == [15, 15, 23, 35]
    assert paper_step_limit("cooked_burger") is None


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(PlannerlError) as info:
        generate_instance("pizza", 1)
    assert "unknown task 'pizza'" in str(info.value) and "double_cheese_burger" in str(info.value)


def test_a_user_recipe_folder_adds_tasks(tmp_path, monkeypatch):
    (tmp_path / "cheese_toast.toml").write_text(
        'layers = ["bread", "cheese"]\n[base]\nstations = ["table", "table"]\nstacks = [["bread"], ["cheese"]]\n')
    monkeypatch.setenv("PLANNERL_RECIPES", str(tmp_path))
    assert "cheese_toast" in list_tasks()
    task, _, plan = solve_instance(generate_instance("cheese_toast", 3))
    assert task.is_goal(_replay(task, plan))


@pytest.mark.parametrize(("text", "field", "message"), [
    ('layers = ["bread", "pickle"]\n[base]\nstations = ["table"]\nstacks = [["bread", "pickle"]]\n', "layers",
     "unknown ingredient type 'pickle'"),
    ('layers = ["bread", "cheese"]\ncooked = ["bacon"]\n[base]\nstations = ["table"]\nstacks = [["bread", "cheese"]]\n', "cooked",
     "unknown ingredient type 'bacon'"),
    ('layers = ["bread", "cheese"]\n[base]\nstations = ["table", "oven"]\nstacks = [["bread", "cheese"]]\n', "base.stations",
     "unknown station type 'oven'"),
    ('layers = ["bread", "cheese"]\nlayer = 1\n[base]\nstations = ["table"]\nstacks = [["bread", "cheese"]]\n', "layer", "unknown field"),
    ('layers = ["bread", "cheese"]\n[base]\nstations = ["table"]\nstacks = [["bread"]]\n', "base.stacks", "exactly the items"),
    ('layers = ["bottombun", "patty"]\ncooked = ["patty"]\n[base]\nstations = ["table", "table"]\nstacks = [["bottombun"], ["patty"]]\n',
     "base.stations", "needs a stove"),
    ('layers = ["bread", "cheese"]\n', "base", "missing [base]"),
    ('layers = ["bread", "cheese"\n', None, "not valid TOML"),
])
def test_bad_recipes_name_file_and_field(tmp_path, text, field, message):
    path = tmp_path / "bad_recipe.toml"
    path.write_text(text)
    with pytest.raises(PlannerlError) as info:
        generate_instance(str(path), 1)
    error = str(info.value)
    assert error.startswith(f"{path}: ") and message in error and "\n" not in error
    if field:
        assert f": {field}: " in error


# --- the generator ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_base_layout_matches_the_hand_written_problem(name):
    """The recipe's [base] rebuilt as PDDL has the optimal length of domains/<name>.pddl."""
    expected = len(solve(None, DOMAINS / f"{name}.pddl").result.plan)
    # the rule's binding (no search over bindings) is already the best one on these layouts
    _, _, plan = solve_instance(base_instance(name, best_binding=False))
    assert len(plan) == expected


@pytest.mark.parametrize("name", SMALL)
def test_same_seed_same_text_and_every_instance_solvable(name):
    texts = {}
    for seed in range(6):
        instance = generate_instance(name, seed, **FEW)
        assert generate_instance(name, seed, **FEW).problem_text == instance.problem_text
        task, oracle, plan = solve_instance(instance)
        assert task.is_goal(_replay(task, plan))
        # an independent search agrees on the optimal length
        assert len(breadth_first_search(task).plan) == len(plan)
        texts[seed] = instance.problem_text
    assert len(set(texts.values())) == len(texts)


@pytest.mark.parametrize("name", SHIPPED)
def test_layouts_respect_the_randomiser_rules(name):
    recipe = load_recipe(name)
    ranges = make_ranges(extra_stations=(0, 6), distractors=(0, 4), hold_probability=0.5)
    held_seen = False
    for seed in range(40):
        layout = random_layout(recipe, random.Random(seed), ranges)
        types = dict(layout.stations)
        items = dict(layout.items)
        placed = [item for stack in layout.stacks.values() for item in stack]
        assert all(len(stack) == 1 for stack in layout.stacks.values())
        assert sorted(placed + ([layout.held] if layout.held else [])) == sorted(items)
        assert len(layout.distractors) <= 4 and all(items[d] not in recipe.layers for d in layout.distractors)
        assert len(layout.stations) >= len(recipe.base_stations)
        for station, (item,) in layout.stacks.items():
            if items[item] == recipe.layers[0]:
                assert types[station] == "table"
        assert any(t == "table" and s not in layout.stacks for s, t in layout.stations), "one table stays empty"
        assert set(types.values()) <= set(recipe.station_types)
        held_seen |= layout.held is not None
    assert held_seen


@pytest.mark.parametrize("name", ["cooked_burger", "lettuce_tomato_sandwich", "random"])
def test_blocked_starts_occupy_every_stove_and_board_the_recipe_needs_and_stay_solvable(name):
    """`blocked = 1`: no needed stove or board starts empty, each holds an item not prepared
    there, so every optimal plan picks one off first; the same seed gives the same text."""
    cleared = tested = 0
    for seed in itertools.count():
        instance = generate_instance(name, seed, blocked=1.0, **FEW)
        recipe = instance.recipe
        needed = {"stove"} if set(recipe.cooked) - set(recipe.start_cooked) else set()
        needed |= {"board"} if recipe.cut else set()
        if not needed:  # a random recipe that neither cooks nor cuts
            continue
        tested += 1
        if tested > 10:
            break
        assert instance.problem_text == generate_instance(name, seed, blocked=1.0, **FEW).problem_text
        task, _, plan = solve_instance(instance)
        facts = set(task.true_facts(task.init))
        stations = {obj: kind for obj, kind in task.objects.items() if kind in ("table", "stove", "board")}
        for station, kind in stations.items():
            if kind in needed:
                assert ("empty", station) not in facts, (seed, station)
        assert task.is_goal(_replay(task, plan))
        prepared = {"stove": set(recipe.cooked), "board": set(recipe.cut)}
        if any(f[0] == "on-station" and stations[f[2]] in needed and task.objects[f[1]] in prepared[stations[f[2]]]
               for f in facts):
            continue  # the patty (lettuce) already starts on a stove (board): nothing to clear
        steps = [task.actions[k] for k in plan]
        assert any(a.schema == "pick-up" and stations[a.args[2]] in needed
                   and task.objects[a.args[1]] not in prepared[stations[a.args[2]]] for a in steps), seed
        cleared += 1
    assert cleared >= 3, f"only {cleared} of 10 instances had a station to clear"


def test_blocked_zero_changes_no_instance():
    for name, seed in (("cooked_burger", 3), ("random", 1007)):
        assert generate_instance(name, seed, blocked=0.0).problem_text == generate_instance(name, seed).problem_text


def test_a_held_item_has_no_place_facts():
    for seed in range(50):
        instance = generate_instance("burger", seed, hold_probability=1.0, **FEW)
        held = instance.holding
        assert held is not None
        task = instance.load_task()
        facts = set(task.true_facts(task.init))
        assert ("holding", "robot1", held) in facts and ("clear", held) in facts
        assert not any(f[0] in ("in", "on-station") and f[1] == held for f in facts)
        assert not any(f[0] == "on" and held in f[1:] for f in facts)
        assert ("hand-empty", "robot1") not in facts


def test_default_ranges_are_robotouilles():
    """0-24 extra stations and 0-8 distractor items of the recipe's distractor types, both ends reached."""
    assert DEFAULT_RANGES.extra_stations == (0, 24) and DEFAULT_RANGES.distractors == (0, 8)
    for name in SHIPPED:
        recipe = load_recipe(name)
        stations, distractors = set(), set()
        for seed in range(300):
            layout = random_layout(recipe, random.Random(seed), DEFAULT_RANGES)
            stations.add(len(layout.stations))
            distractors.add(len(layout.distractors))
            assert {dict(layout.items)[d] for d in layout.distractors} <= set(recipe.distractors) - set(recipe.layers)
        assert distractors == set(range(9)), name
        # at most 14 items, so the extra stations alone decide the largest layouts
        assert max(stations) == len(recipe.base_stations) + 24, name


def test_ranges_are_keyword_parameters_with_checked_values():
    wide = generate_instance("burger", 5, extra_stations=6, distractors=3)
    assert wide.distractors == 3 and wide.stations >= 3 + 6
    for bad in ({"extra_stations": (3, 1)}, {"distractors": -1}, {"hold_probability": 2.0}, {"blocked": -0.1},
                {"extra_stations": "many"}):
        with pytest.raises(PlannerlError):
            generate_instance("burger", 1, **bad)
    with pytest.raises(PlannerlError):
        generate_instance("burger", -1)


def _replay(task, plan):
    state = task.init
    for action in plan:
        assert task.is_applicable(state, action)
        state = task.apply(state, action)
    return state


def _length(recipe, layout, layers, table) -> int:
    domain = _domain(COOKING_DOMAIN)
    text = problem_text(recipe, layout, "brute", layers, table, 0)
    return len(breadth_first_search(compile_task(domain, parse_problem("brute.pddl", domain, text))).plan)


def _brute_force_best(recipe, layout) -> int:
    """Shortest optimal length over every assignment of same-type items to layers and every table."""
    groups: dict[str, list[str]] = {}
    for item, type_name in layout.items:
        if item not in layout.distractors:
            groups.setdefault(type_name, []).append(item)
    tables = [s for s, t in layout.stations if t == "table"]
    best = None
    for choice in itertools.product(*(itertools.permutations(items) for items in groups.values())):
        order = {t: iter(p) for t, p in zip(groups, choice)}
        layers = [next(order[t]) for t in recipe.layers]
        for table in tables:
            n = _length(recipe, layout, layers, table)
            best = n if best is None else min(best, n)
    return best


def _special_seeds(recipe, ranges, count):
    """Seeds whose layout makes the binding matter: a held item, or the robot beside a required item."""
    found = []
    for seed in itertools.count():
        layout = random_layout(recipe, random.Random(seed), ranges)
        at_robot = [i for i in layout.stacks.get(layout.robot_station, []) if i not in layout.distractors]
        if layout.held or at_robot:
            found.append((seed, layout))
        if len(found) == count:
            return found


@pytest.mark.parametrize(("task", "count", "ranges"), [
    ("cheese_sandwich", 6, {"extra_stations": (0, 2), "distractors": (0, 1), "hold_probability": 0.5}),
    pytest.param(str(DATA / "patty_cheese_patty.toml"), 2, {"extra_stations": 0, "distractors": (0, 1), "hold_probability": 0.5},
                 marks=pytest.mark.slow),
])
def test_goal_binding_matches_brute_force_over_bindings(task, count, ranges):
    recipe = load_recipe(task)
    for seed, layout in _special_seeds(recipe, make_ranges(**ranges), count):
        chosen = _instance(recipe, seed, "x", layout, True, None)
        assert _length(recipe, layout, list(chosen.layers), chosen.build_table) == _brute_force_best(recipe, layout), seed


def test_write_instances_is_self_contained_and_byte_identical(tmp_path):
    paths = write_instances("cheese_burger", [3, 1, 2], tmp_path / "a", **FEW)
    write_instances("cheese_burger", [3, 1, 2], tmp_path / "b", jobs=2, **FEW)  # two worker processes, same bytes
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["cheese_burger_1.pddl", "cheese_burger_2.pddl", "cheese_burger_3.pddl", "cooking.pddl",
                     "cooking.templates.toml", "instances.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    index = json.loads((tmp_path / "a" / "instances.json").read_text())
    assert [r["seed"] for r in index["instances"]] == [3, 1, 2]
    for path, record in zip(paths, index["instances"]):
        # the written file alone (domain found beside it) plans to the recorded optimal length
        assert len(solve(None, path).result.plan) == record["optimal_length"]
        assert load_task(None, path).name == record["name"]


def test_generate_command_writes_a_folder_plan_can_read(tmp_path):
    out = tmp_path / "gen"
    done = plannerl("generate", "burger", "--seeds", "4,8", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "burger" in done.stdout
    planned = plannerl("plan", out / "burger_8.pddl")
    assert planned.returncode == 0 and "length" in planned.stdout
    listed = plannerl("generate", "--list")
    assert listed.returncode == 0 and all(name[:10] in listed.stdout for name in SHIPPED)


def test_generate_command_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gen"
    assert_one_line_error(plannerl("generate", "pizza", "--seeds", "1", "--out", out), "known tasks: burger")
    assert_one_line_error(plannerl("generate", "burger", "--seeds", "3:1", "--out", out), "stops before it starts")
    assert_one_line_error(plannerl("generate", "burger", "--seeds", "1", "--out", out, "--extra-stations", "x"), "--extra-stations")
    assert_one_line_error(plannerl("generate", "burger", "--seeds", "1", "--out", out, "--distractors", "4-1"),
                          "--distractors: range 4-1 must satisfy")
    assert_one_line_error(plannerl("generate", "cooked_burger", "--seeds", "1", "--out", out, "--blocked", "1.5"),
                          "--blocked must be from 0 to 1, got 1.5")
    # plannerl data checks the same flag before its progress bar starts, naming the flag
    assert_one_line_error(plannerl("data", "--task", "burger", "--seeds", "1", "--out", out, "--hold-probability", "1.5"),
                          "--hold-probability must be from 0 to 1, got 1.5")
    assert not out.exists()
    bad = tmp_path / "recipes"
    bad.mkdir()
    (bad / "blt.toml").write_text('layers = ["bread", "bacon"]\n[base]\nstations = ["table"]\nstacks = [["bread", "bacon"]]\n')
    env = {**os.environ, "PLANNERL_RECIPES": str(bad)}
    assert_one_line_error(plannerl("generate", "blt", "--seeds", "1", "--out", out, env=env), "layers: unknown ingredient type 'bacon'")
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(plannerl("generate", "burger", "--seeds", "1", "--out", blocker / "sub"), "not writable")


def test_generate_command_with_jobs_writes_the_same_bytes(tmp_path):
    one = plannerl("generate", "burger", "--seeds", "0:5", "--out", tmp_path / "one", "--extra-stations", "0-6")
    two = plannerl("generate", "burger", "--seeds", "0:5", "--out", tmp_path / "two", "--extra-stations", "0-6", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 6 + 3
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert_one_line_error(plannerl("generate", "burger", "--seeds", "1", "--out", tmp_path / "bad", "--jobs", "0"), "jobs")
    assert not (tmp_path / "bad").exists()


def test_ctrl_c_stops_every_worker_and_writes_nothing(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the workers ignore it, the command
    stops them, says how far it got, exits 130 and leaves no instances behind."""
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "plannerl.cli", "generate", "burger", "--seeds", "0:199", "--jobs", "2",
                                "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    group = process.pid
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 120
    while len(children.read_text().split()) < 2:  # the workers are up: start-up imports are over
        assert process.poll() is None and time.monotonic() < deadline, "no workers started"
        time.sleep(0.05)
    time.sleep(1.0)
    assert process.poll() is None, "finished before the interrupt"
    os.killpg(group, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "plannerl: interrupted" and "Traceback" not in stderr
    assert "interrupted after" in stdout and "/200 instances" in stdout
    assert not (out / "instances.json").exists() and not list(out.glob("*.pddl"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # no worker outlives the command
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a worker process is still running")


def test_a_worker_that_dies_is_one_clear_error():
    with pytest.raises(PlannerlError, match="a worker process died"):
        map_seeds(os._exit, [3, 4, 5], jobs=2)
    assert map_seeds(abs, [-3, 4, -5], jobs=2) == [3, 4, 5]  # results in seed order


def test_random_ties_change_only_which_interchangeable_item_the_goal_names():
    """With `random_ties` a seed keeps its kitchen and optimal length, the goal still binds a
    shortest plan (brute force over every binding), and the sandwich's base is bread2 about as
    often as bread1 (by name it is bread1 unless bread2 is strictly better); the same seed
    gives the same instance."""
    bases = {"by name": [], "random": []}
    for seed in range(40):  # Robotouille's ranges
        by_name = generate_instance("cheese_sandwich", seed)
        drawn = generate_instance("cheese_sandwich", seed, random_ties=True)
        assert drawn.problem_text == generate_instance("cheese_sandwich", seed, random_ties=True).problem_text
        assert drawn.problem_text.split("(:goal")[0] == by_name.problem_text.split("(:goal")[0]
        assert drawn.optimal_length == by_name.optimal_length
        bases["by name"].append(by_name.layers[0])
        bases["random"].append(drawn.layers[0])
    assert bases["by name"].count("bread2") <= 4 and 12 <= bases["random"].count("bread2") <= 28
    recipe = load_recipe("cheese_sandwich")
    ranges = make_ranges(extra_stations=(0, 2), distractors=(0, 1), hold_probability=0.5)
    for seed, layout in _special_seeds(recipe, ranges, 4):
        chosen = _instance(recipe, seed, "x", layout, True, None, ties=random.Random(seed))
        assert _length(recipe, layout, list(chosen.layers), chosen.build_table) == _brute_force_best(recipe, layout), seed
