"""unified-planning interop: translated errors, Fast Downward and pyperplan backends, UP's validator."""

from __future__ import annotations

import pytest
from conftest import BAD, CLASSIC, DOMAINS, problem_id

from plannerl.errors import LimitError, NoPlanError, PddlError
from plannerl.pddl.up_bridge import (
    fast_downward_command,
    fast_downward_plan,
    pyperplan_plan,
    read_problem,
    run_fast_downward_process,
    validate_with_up,
)
from plannerl.planning.planner import solve

UP_ERRORS = [
    ("unbalanced.pddl", r"unbalanced.pddl:7: unified-planning cannot parse this: Expected '\)'"),
    ("unknown_predicate.pddl", r"unknown_predicate.pddl:6: unified-planning cannot read it: .*\(clean cup\)"),
    ("unknown_object.pddl", r"unknown_object.pddl:5: unified-planning cannot read it: .*spoon"),
    ("unknown_type.pddl", r"unknown_type.pddl: unified-planning cannot read it: unknown name 'utensil'"),
    ("wrong_arity.pddl", r"wrong_arity.pddl:6: unified-planning cannot read it: .*at has arity 2 but 1"),
    ("empty.pddl", r"empty.pddl: empty file"),
    ("binary.pddl", r"binary.pddl: binary data"),
]


@pytest.mark.parametrize(("name", "message"), UP_ERRORS, ids=[n for n, _ in UP_ERRORS])
def test_up_reader_errors_become_one_line(name, message):
    with pytest.raises(PddlError, match=message) as caught:
        read_problem(None, BAD / name)
    assert "\n" not in str(caught.value)


def test_up_reader_names_the_domain_file_when_the_domain_is_at_fault(tmp_path):
    bad_domain = tmp_path / "domain.pddl"
    bad_domain.write_text((BAD / "domain.pddl").read_text().replace("(holding ?i)\n", "(holding ?i ?p)\n"))
    with pytest.raises(PddlError, match=r"domain.pddl:\d+: unified-planning cannot read it: .*holding has arity 1 but 2"):
        read_problem(bad_domain, BAD / "ok.pddl")
    with pytest.raises(PddlError, match=r"unsupported_requirement.pddl:3: requirement :conditional-effects is not supported"):
        read_problem(BAD / "unsupported_requirement.pddl", BAD / "ok.pddl")


SMALL = [DOMAINS / "burger.pddl", CLASSIC / "gripper/p03.pddl", CLASSIC / "logistics/p01.pddl", CLASSIC / "blocksworld/p01.pddl",
         CLASSIC / "blocksworld/p00.pddl"]


@pytest.mark.parametrize("problem", SMALL, ids=problem_id)
def test_external_planners_agree_with_builtin(problem):
    builtin = solve(None, problem).plan_names
    for found in (fast_downward_plan(None, problem), pyperplan_plan(None, problem), run_fast_downward_process(None, problem)):
        assert found.length == len(builtin), found.planner
        assert validate_with_up(None, problem, found.plan), found.planner
        assert all(step == step.lower() and step.startswith("(") for step in found.plan)


def test_fast_downward_reports_expanded_states_and_leaves_no_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    found = fast_downward_plan(None, DOMAINS / "burger.pddl")
    assert found.expanded is not None and found.expanded > 0
    assert list(tmp_path.iterdir()) == []  # no output.sas left behind
    assert "credits" not in capsys.readouterr().out.lower()  # the engine banner is silenced
    process = run_fast_downward_process(None, DOMAINS / "burger.pddl")
    assert process.expanded is not None and process.seconds > 0
    assert list(tmp_path.iterdir()) == []


def test_fast_downward_command_is_what_a_user_would_type(tmp_path):
    command = fast_downward_command("d.pddl", "p.pddl", tmp_path / "plan")
    assert command[1].endswith("fast-downward.py") and command[-2:] == ["--search", "astar(lmcut())"]


@pytest.mark.parametrize("planner", [fast_downward_plan, pyperplan_plan, run_fast_downward_process], ids=lambda f: f.__name__)
def test_unsolvable_and_time_limit(planner):
    with pytest.raises(NoPlanError, match="no plan exists"):
        planner(None, BAD / "unsolvable.pddl")
    with pytest.raises(LimitError, match="time limit of 0.5 s"):
        planner(CLASSIC / "logistics/domain.pddl", BAD / "large_logistics.pddl", 0.5)


def test_validate_with_up_rejects_bad_plans():
    problem = BAD / "ok.pddl"
    assert validate_with_up(None, problem, ["(pick cup shelf)", "(put cup table)"])
    assert not validate_with_up(None, problem, ["(pick cup shelf)", "(put cup shelf)"])  # goal unmet
    assert not validate_with_up(None, problem, ["(pick cup shelf)", "(pick plate table)"])  # precondition unmet
    with pytest.raises(PddlError, match=r"plan step 2 \(teleport cup table\): unknown action teleport"):
        validate_with_up(None, problem, ["(pick cup shelf)", "(teleport cup table)"])
    with pytest.raises(PddlError, match="unknown object spoon"):
        validate_with_up(None, problem, ["(pick spoon shelf)"])
    with pytest.raises(PddlError, match="pick takes 2 arguments, got 1"):
        validate_with_up(None, problem, ["(pick cup)"])
