"""Training on a user's own PDDL domain: problem sets, random-walk starts, config errors, a smoke run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import revisits
from test_generate import assert_one_line_error, plannerl

from plannerl.errors import PlannerlError
from plannerl.planning.planner import load_task
from plannerl.tasks.problem_sets import find_problems, goal_kinds, load_problems, relabelled_goals, training_starts
from plannerl.train.config import resolve_config, training_tasks
from plannerl.train.rows import training_rows
from plannerl.train.sources import rollout_problems, split_problems

ROOT = Path(__file__).resolve().parent.parent
CLASSIC = ROOT / "tests" / "fixtures" / "classic"
BLOCKS = CLASSIC / "blocksworld" / "domain.pddl"
LOGISTICS = CLASSIC / "logistics" / "domain.pddl"
BAD = ROOT / "tests" / "fixtures" / "bad"


@pytest.fixture
def blocks(tmp_path) -> dict:
    """Blocksworld fixtures split in two folders: p01-p03 to train on, p04 held out."""
    train, held = tmp_path / "train", tmp_path / "held"
    train.mkdir(), held.mkdir()
    for name in ("p01", "p02", "p03"):
        shutil.copy(CLASSIC / "blocksworld" / f"{name}.pddl", train)
    shutil.copy(CLASSIC / "blocksworld" / "p04.pddl", held)
    return {"domain": str(BLOCKS), "problems": str(train), "eval": {"problems": str(held)}}


def test_walk_starts_are_distinct_reachable_solvable_and_seeded():
    task = load_task(BLOCKS, CLASSIC / "blocksworld" / "p02.pddl")
    problem = load_problems(BLOCKS, [CLASSIC / "blocksworld" / "p02.pddl"])[0]
    starts = training_starts(problem, walks=30, walk_length=6, seed=0)
    assert starts[0] == task.init and len(starts) == len(set(starts)) > 10
    assert starts == training_starts(problem, walks=30, walk_length=6, seed=0)
    assert starts != training_starts(problem, walks=30, walk_length=6, seed=1)
    reachable, frontier = {task.init}, [task.init]
    for _ in range(6):
        frontier = [task.apply(s, a) for s in frontier for a in task.applicable(s)]
        reachable.update(frontier)
    for state in starts[1:]:
        assert state in reachable and not task.is_goal(state) and problem.oracle.h_star(state) is not None
    assert training_starts(problem, walks=30, walk_length=0, seed=0) == [task.init]


def test_domain_rows_label_every_start_with_optimal_actions(blocks):
    config = resolve_config(overrides={**blocks, "data": {"walks": 4, "off_expert": 0}})
    assert training_tasks(config) == ["blocksworld"]
    rows = training_rows(config)
    instances = {row["instance"] for row in rows}
    assert {name.split("_walk")[0] for name in instances} == {"p01", "p02", "p03"}  # named by file
    assert any("_walk" in name for name in instances) and {row["task"] for row in rows} == {"blocksworld"}
    for row in rows:
        assert row["expert_action_pddl"] in row["optimal_actions_pddl"]
    assert rows == training_rows(config)  # same config, same rows
    # renamed: the blocks a..e permuted per start, the same states' optimal lengths and label counts
    renamed = training_rows(resolve_config(overrides={**blocks, "data": {"walks": 4, "off_expert": 0, "rename": 1.0}}))
    assert [r["h_star"] for r in renamed] == [r["h_star"] for r in rows]
    assert [len(r["optimal_actions"]) for r in renamed] == [len(r["optimal_actions"]) for r in rows]
    assert sum(bool(r.get("renaming")) for r in renamed) > len(renamed) // 2  # a draw may be the identity
    assert {r["prompt"] for r in renamed} != {r["prompt"] for r in rows}


def test_problem_files_are_found_by_folder_glob_or_file(blocks, tmp_path):
    folder = find_problems(blocks["problems"])
    assert [p.name for p in folder] == ["p01.pddl", "p02.pddl", "p03.pddl"]
    assert find_problems(str(Path(blocks["problems"]) / "p0[12].pddl")) == folder[:2]
    assert find_problems(CLASSIC / "blocksworld")[0].name == "p00.pddl"  # the domain file is skipped


@pytest.mark.parametrize("change, message", [
    ({"problems": "", "domain": str(BLOCKS)}, "problems: domain"),
    ({"domain": ""}, "problems: applies only with domain"),
    ({"tasks": ["burger"]}, "tasks: a run on domain"),
    ({"domain": "nowhere/domain.pddl"}, "domain: nowhere/domain.pddl: no such file"),
    ({"problems": "empty"}, "problems: no PDDL problem files in"),
    ({"eval": {"problems": "nothing/*.pddl"}}, "eval.problems: no PDDL problem files in nothing/*.pddl"),
])
def test_bad_domain_configs_are_one_line_errors(blocks, tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlannerlError) as caught:
        resolve_config(overrides={**blocks, **change})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_held_out_problem_states_its_step_limit_and_a_bad_one_fails_at_the_config(blocks, tmp_path):
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    text = (Path(blocks["eval"]["problems"]) / "p04.pddl").read_text()
    (heldout / "p04.pddl").write_text("; step-limit: 40\n" + text)
    config = resolve_config(overrides={**blocks, "eval": {"problems": str(heldout)}})
    assert [p.step_limit for p in split_problems(config, "heldout")] == [40]
    (heldout / "p04.pddl").write_text("; step-limit: -3\n" + text)
    with pytest.raises(PlannerlError, match="p04.pddl:1: step-limit must be a positive integer, got '-3'"):
        resolve_config(overrides={**blocks, "eval": {"problems": str(heldout)}})


def test_bad_problem_sets_fail_before_training(blocks, tmp_path):
    """A problem of another domain, one without a plan, and a held-out twin of a training problem."""
    def error(overrides: dict) -> str:
        with pytest.raises(PlannerlError) as caught:
            training_rows(resolve_config(overrides={**blocks, **overrides}))
        return str(caught.value)

    assert "gripper" in error({"problems": str(CLASSIC / "gripper" / "p01.pddl")})
    unsolvable = error({"domain": str(BAD / "domain.pddl"), "problems": str(BAD / "unsolvable.pddl"), "eval": {"problems": ""}})
    assert "unsolvable.pddl: the goal cannot be reached" in unsolvable
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "copy.pddl").write_text((CLASSIC / "blocksworld" / "p02.pddl").read_text().replace("reverse-5", "renamed"))
    assert "copy.pddl has the same initial state and goal as training problem" in error({"eval": {"problems": str(twin)}})
    # from the command line: one line, and no run folder left behind to need --resume once mended
    done = plannerl("train", "--domain", BLOCKS, "--problems", blocks["problems"], "--heldout", twin, "--out", tmp_path / "run")
    assert_one_line_error(done, "copy.pddl has the same initial state and goal as training problem")
    assert not (tmp_path / "run").exists()


def test_rollout_instances_are_walked_starts_named_by_seed(blocks):
    config = resolve_config(overrides=blocks)
    problems = rollout_problems(config, "3000:3005")
    assert [p.name for p in problems] == [f"{n}_s{s}" for s, n in zip(range(3000, 3006), ["p01", "p02", "p03"] * 2)]
    assert all(p.group == "blocksworld" and p.step_limit >= p.optimal_length for p in problems)
    assert [p.task.init for p in problems] == [p.task.init for p in rollout_problems(config, "3000:3005")]


def test_domain_smoke_run_from_the_command_line_trains_and_evaluates_both_splits(blocks, tmp_path):
    memory = ("--set", "eval.avoid_revisits=true")  # evaluation and validation play with the visited-state memory
    done = plannerl("train", "--config", ROOT / "configs" / "smoke.toml", "--domain", BLOCKS, "--problems", blocks["problems"],
                    "--heldout", blocks["eval"]["problems"], "--set", "data.walks=3", *memory, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == "blocksworld"
    # prompt "auto" is focus on a domain (todo stays the recipes' style: test_train.py)
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["plannerl_prompt"] == "focus"
    for stage in ("sft", "grpo", "recovery"):
        assert set(summary["evaluation"][stage]) == {"train", "heldout"}
        report = json.loads((tmp_path / "run" / "eval" / f"{stage}-heldout.json").read_text())
        [episode] = report["episodes"]
        assert episode["instance"] == "p04"
        assert all(every for back, every in revisits(load_task(BLOCKS, episode["source"]), episode["actions"]) if back)
    resumed = plannerl("train", "--config", ROOT / "configs" / "smoke.toml", "--domain", BLOCKS, "--problems", blocks["problems"],
                       "--heldout", blocks["eval"]["problems"], "--set", "data.walks=3", *memory, "--out", tmp_path / "run",
                       "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert_one_line_error(plannerl("train", "--domain", BLOCKS, "--out", tmp_path / "x"), "problems: domain")


def test_relabelled_goals_are_new_solvable_goals_of_the_training_goals_kinds():
    """Logistics: goals ask where packages are; a relabelled goal is the packages' places at a
    random walk's end (never a truck's or the airplane's), reachable, new and seeded."""
    problem = load_problems(LOGISTICS, [CLASSIC / "logistics" / "p02.pddl"])[0]
    task = problem.task
    kinds = goal_kinds(task, task.problem.goal_pos)
    assert kinds == {("at", "package", "office")}  # both packages go to offices in p02
    kinds.add(("at", "package", "airport"))
    found = relabelled_goals(problem, kinds, goals=40, walk_length=12, seed=0)
    assert len(found) >= 3
    goals = [p.task.goal_pos for p in found]
    assert len(set(goals)) == len(goals) and task.goal_pos not in goals
    for relabelled in found:
        atoms = relabelled.task.problem.goal_pos
        assert atoms and all(atom[0] == "at" and task.objects[atom[1]] == "package" for atom in atoms)
        assert relabelled.task.init == task.init and not relabelled.task.is_goal(task.init)
        plan = relabelled.oracle.canonical_plan()
        state = task.init
        for action in plan:
            assert task.is_applicable(state, action)
            state = task.apply(state, action)
        assert relabelled.task.is_goal(state)
    again = relabelled_goals(problem, kinds, goals=40, walk_length=12, seed=0)
    assert [p.task.goal_pos for p in again] == goals


def test_domain_rows_train_on_relabelled_goals_but_never_on_a_held_out_problem(blocks, tmp_path):
    """`data.goals` adds rows of new goals (instances pNN_goalK); a relabelled problem that
    equals a held-out problem (same start and goal) is left out."""
    config = resolve_config(overrides={**blocks, "data": {"goals": 6, "off_expert": 0}})
    rows = training_rows(config)
    relabelled = {row["instance"] for row in rows if "_goal" in row["instance"]}
    assert relabelled and {name.split("_goal")[0] for name in relabelled} <= {"p01", "p02", "p03"}
    # a held-out file that is one of those problems: it must leave the training rows
    name = sorted(relabelled)[0]
    source = load_problems(BLOCKS, [Path(blocks["problems"]) / f"{name.split('_goal')[0]}.pddl"])[0]
    kinds = set().union(*(goal_kinds(p.task, p.task.problem.goal_pos)
                          for p in load_problems(BLOCKS, sorted(Path(blocks["problems"]).glob("*.pddl")))))
    twin = next(p for p in relabelled_goals(source, kinds, goals=6, walk_length=16, seed=0) if p.name == name)
    text = (CLASSIC / "blocksworld" / f"{source.name}.pddl").read_text()
    goal = " ".join(f"({' '.join(atom)})" for atom in twin.task.problem.goal_pos)
    held = tmp_path / "held"
    (held / "twin.pddl").write_text(text[:text.index("(:goal")] + f"(:goal (and {goal})))\n")
    again = training_rows(config)
    assert name not in {row["instance"] for row in again}
    assert {row["instance"] for row in again} == {row["instance"] for row in rows} - {name}
