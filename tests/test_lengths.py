"""The optimal-length cache: a second evaluation of the same instances searches nothing and
scores the same; bad entries and a turned-off cache fall back to searching."""

from __future__ import annotations

import json

import pytest
from conftest import CLASSIC

from plannerl.agents.problems import problems_from_files, problems_from_tasks
from plannerl.errors import StateLimitError
from plannerl.planning.lengths import cache_dir, optimal_length, task_digest
from plannerl.planning.oracle import make_oracle
from plannerl.tasks.generate import generate_instance


def entries() -> list:
    return sorted((cache_dir() / "optimal").rglob("*.json"))


def test_a_second_labelling_of_the_same_instances_searches_nothing_and_agrees():
    first = problems_from_tasks(["burger", "cheese_burger"], [3, 4])
    assert len(entries()) == 4 and all(p.oracle.searches == 1 for p in first)
    again = problems_from_tasks(["burger", "cheese_burger"], [3, 4])
    assert [p.optimal_length for p in again] == [p.optimal_length for p in first]
    assert [p.step_limit for p in again] == [p.step_limit for p in first]
    assert all(p.oracle.searches == 0 for p in again)  # the oracle still searches on demand (oracle policy)
    assert again[0].oracle.canonical_plan() == first[0].oracle.canonical_plan()


def test_the_digest_tells_tasks_apart_and_a_changed_task_is_searched_again():
    burger = generate_instance("burger", 3).load_task()
    other = generate_instance("burger", 4).load_task()
    assert task_digest(burger) == task_digest(generate_instance("burger", 3).load_task())
    assert task_digest(burger) != task_digest(other)
    blocks = problems_from_files([CLASSIC / "blocksworld" / "p01.pddl"])[0]
    assert blocks.oracle.searches == 1 and len(entries()) == 1


@pytest.mark.parametrize("content", ["not json", '{"format": "plannerl-optimal-length-1", "optimal_length": -3}',
                                     '{"optimal_length": 2}', "[]"])
def test_a_damaged_entry_is_searched_again_and_rewritten(content):
    task = generate_instance("burger", 5).load_task()
    true_length = optimal_length(task, make_oracle(task))
    [entry] = entries()
    entry.write_text(content)
    oracle = make_oracle(task)
    assert optimal_length(task, oracle) == true_length and oracle.searches == 1
    assert json.loads(entry.read_text())["optimal_length"] == true_length


def test_a_search_stopped_at_the_state_limit_is_remembered_with_its_limit():
    task = generate_instance("cheese_burger", 6).load_task()
    with pytest.raises(StateLimitError, match="stopped after 3 states"):
        optimal_length(task, make_oracle(task, max_states=3))
    small = make_oracle(task, max_states=2)
    with pytest.raises(StateLimitError, match="stopped after 2 states"):
        optimal_length(task, small)  # a lower limit would stop too: not searched
    assert small.searches == 0
    enough = make_oracle(task)
    length = optimal_length(task, enough)  # a higher limit searches, and the length replaces the record
    assert enough.searches == 1 and length == len(enough.canonical_plan())
    assert optimal_length(task, make_oracle(task, max_states=3)) == length


def test_a_state_limit_remembered_from_an_older_search_is_searched_again():
    """An older search stopped where today's finishes (held-out lettuce_tomato_sandwich 5006
    was remembered past 5M states and kept being skipped): only a limit the same search hit is
    trusted."""
    task = generate_instance("cheese_burger", 6).load_task()
    with pytest.raises(StateLimitError):
        optimal_length(task, make_oracle(task, max_states=3))
    (entry,) = entries()
    record = json.loads(entry.read_text())
    entry.write_text(json.dumps({**record, "exceeded_states": 10**9, "search": record["search"] - 1}))
    oracle = make_oracle(task)
    assert optimal_length(task, oracle) == len(oracle.canonical_plan()) and oracle.searches == 1


def test_the_cache_can_be_moved_or_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("PLANNERL_CACHE", "off")
    assert cache_dir() is None
    problems = problems_from_tasks(["burger"], [3])
    assert problems[0].oracle.searches == 1
    monkeypatch.delenv("PLANNERL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "plannerl"
    problems_from_tasks(["burger"], [3])
    assert len(list((tmp_path / "plannerl" / "optimal").rglob("*.json"))) == 1


def test_an_evaluation_reports_the_same_bytes_from_the_cache_as_from_the_searches(tmp_path, monkeypatch):
    from plannerl.agents.eval_run import EvalSpec, run_evaluation

    def report(name: str) -> bytes:
        run_evaluation(EvalSpec(tasks=["burger", "cheese_sandwich"], seeds="0:2", policies=["oracle", "random"],
                                report=tmp_path / name))
        return (tmp_path / name).read_bytes()

    searched = report("searched.json")
    assert report("cached.json") == searched
    monkeypatch.setenv("PLANNERL_CACHE", "off")
    assert report("uncached.json") == searched
