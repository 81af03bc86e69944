"""Training on a mix of tasks: config checks, balanced rows, and a two-task smoke run end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from plannerl.errors import PlannerlError
from plannerl.tasks.random_recipes import excluded_signatures, goal_signature
from plannerl.train.config import parse_assignment, resolve_config, training_tasks
from plannerl.train.rows import balance_tasks, training_rows

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["burger", "cheese_burger", "cheese_sandwich", "cooked_burger", "double_cheese_burger", "lettuce_tomato_sandwich"]


@pytest.mark.parametrize("overrides, message", [
    ({"tasks": ["burger", "pizza"]}, "tasks: unknown task 'pizza'"),
    ({"task": "pizza"}, "task: unknown task 'pizza'"),
    ({"exclude_tasks": ["pizza"]}, "exclude_tasks: 'pizza' is not a shipped recipe"),
    ({"tasks": ["burger"], "exclude_tasks": ["burger"]}, "tasks: the mix ['burger'] is empty"),
])
def test_bad_mixes_are_one_line_errors_naming_the_key(overrides, message):
    with pytest.raises(PlannerlError) as caught:
        resolve_config(overrides=overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_mix_defaults_to_the_single_task_and_drops_excluded_names():
    assert training_tasks(resolve_config()) == ["burger"]
    config = resolve_config(overrides={"tasks": ["burger", "random", "burger", "cheese_burger"],
                                       "exclude_tasks": ["cheese_burger"]})
    assert training_tasks(config) == ["burger", "random"]
    assert training_tasks(resolve_config(ROOT / "configs" / "generalist.toml")) == ["random"]
    assert parse_assignment('tasks=["burger","cheese_sandwich"]') == {"tasks": ["burger", "cheese_sandwich"]}


def test_balance_gives_every_task_the_largest_task_count_deterministically():
    short = [{"task": "a", "i": i} for i in range(3)]
    long = [{"task": "b", "i": i} for i in range(8)]
    balanced = balance_tasks([short, long], seed=0)
    assert Counter(row["task"] for row in balanced) == {"a": 8, "b": 8}
    assert balanced[-8:] == long and all(row in short for row in balanced[:8])
    assert balanced[:6] == short + short  # whole copies first, then a seeded sample of the rest
    assert balance_tasks([short, long], seed=0) == balanced
    assert balance_tasks([long], seed=0) == long


def test_mixed_rows_are_balanced_per_task_and_random_goals_avoid_the_excluded_recipes():
    held_out = [name for name in SHIPPED if name != "cheese_sandwich"]
    config = resolve_config(overrides={"tasks": ["cheese_sandwich", "random"], "exclude_tasks": held_out,
                                       "data": {"train_seeds": "1000:1003", "off_expert": 0}})
    rows = training_rows(config)
    counts = Counter(row["task"] for row in rows)
    assert set(counts) == {"cheese_sandwich", "random"} and counts["cheese_sandwich"] == counts["random"]
    assert rows == training_rows(config)  # same config, same rows
    two_jobs = resolve_config(base=config, overrides={"runtime": {"jobs": 2}})
    assert training_rows(two_jobs) == rows  # labelled in two processes, the same rows
    from plannerl.tasks.generate import generate_instance

    excluded = excluded_signatures(held_out)
    for seed in range(1000, 1004):
        recipe = generate_instance("random", seed, exclude=held_out, best_binding=False).recipe
        assert goal_signature(recipe) not in excluded


def test_random_ties_reach_the_training_rows_goals():
    """`data.random_ties` makes the rows' goals build on bread2 where the name rule said bread1,
    over the same kitchens: the config key reaches the generator."""
    def bases(random_ties: bool) -> list[str]:
        config = resolve_config(overrides={"task": "cheese_sandwich",
                                           "data": {"train_seeds": "1000:1011", "off_expert": 0, "random_ties": random_ties}})
        starts = [row for row in training_rows(config) if row["step"] == 0]
        assert len(starts) == 12
        return ["bread2" if "cheese1 on bread2" in row["prompt"] else "bread1" for row in starts]

    by_name, drawn = bases(False), bases(True)
    assert drawn.count("bread2") > by_name.count("bread2") + 2


@pytest.mark.slow
def test_two_task_smoke_run_trains_and_reports_every_task(tmp_path):
    """The CI smoke pipeline on a mix of burger and cheese_sandwich: rows of both, rollouts and
    validation over both, and one evaluation row per task in the summary and the reports."""
    from plannerl.train.pipeline import train

    config = resolve_config(ROOT / "configs" / "smoke.toml", {"tasks": ["burger", "cheese_sandwich"]})
    summary = train(config, tmp_path / "run", say=lambda *a, **k: None, progress=False)
    assert summary["task"] == "burger, cheese_sandwich"
    for stage in summary["evaluation"].values():
        for split in stage.values():
            assert set(split) == {"burger", "cheese_sandwich"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()]
    counts = Counter(row["task"] for row in rows)
    assert counts["burger"] == counts["cheese_sandwich"] > 0
    visited = [json.loads(line) for line in (tmp_path / "run" / "recovery-1" / "rows.jsonl").read_text().splitlines()]
    assert {row["task"] for row in visited} <= {"burger", "cheese_sandwich"} and visited
    validations = sorted((tmp_path / "run" / "validation").glob("*.json"))
    assert validations and all(json.loads(p.read_text())["episodes"] == 2 for p in validations)  # one seed per task


def test_a_seed_past_the_state_limit_gives_no_rows_instead_of_stopping_the_run(monkeypatch, tmp_path):
    """A layout too large to solve optimally (the planner's state limit) is left out, the same
    seeds every time, and `plannerl data` names them; the other seeds' rows are unchanged."""
    from plannerl.planning import search
    from plannerl.train.rows import RowOptions, build_dataset, task_rows

    few = {"extra_stations": (0, 12), "distractors": (0, 4)}
    full = task_rows("cheese_burger", range(6), RowOptions(), ranges=few)
    monkeypatch.setattr(search, "DEFAULT_MAX_STATES", 12)  # a handful of layouts fit: the rest stand for huge ones
    limited = task_rows("cheese_burger", range(6), RowOptions(), ranges=few)
    kept = [seed for seed, done in enumerate(limited) if done is not None]
    assert 0 < len(kept) < 6
    assert all(limited[seed][2] == full[seed][2] for seed in kept)
    summary = build_dataset("cheese_burger", range(6), tmp_path / "d", RowOptions(), test_fraction=0.0, **few)
    assert summary["skipped_seeds"] == [seed for seed in range(6) if seed not in kept]
    assert summary["train"]["instances"] == len(kept)


def test_rollout_count_is_one_episode_per_seed_and_task():
    """Recovery's progress bars and its validation line ("9/20 -> 8/20") count every task of a mix."""
    from plannerl.train.sources import rollout_count

    mix = resolve_config(ROOT / "configs" / "smoke.toml", {"tasks": ["burger", "cheese_sandwich"]})
    assert rollout_count(mix, "3000:3004") == 10
    assert rollout_count(resolve_config(), "4000:4019") == 20
    ferry = ROOT / "tests" / "fixtures" / "classic" / "ferry"
    domain = resolve_config(overrides={"domain": str(ferry / "domain.pddl"), "problems": str(ferry)})
    assert rollout_count(domain, "3000:3019") == 20
