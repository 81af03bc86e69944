"""The plan report and the external planner bridge as library calls (the CLI only prints them).

Real PDDL (shipped domains, classic fixtures) and real planners: Fast Downward and pyperplan
through unified-planning, and plannerl's own search."""

from __future__ import annotations

import json

import pytest
from conftest import BAD, CLASSIC, DOMAINS

from plannerl.errors import LimitError, NoPlanError, PddlError, PlannerlError
from plannerl.pddl.planfile import replay
from plannerl.pddl.up_bridge import EXTERNAL_HEURISTIC
from plannerl.planning.external import EXTERNAL_PLANNERS, external_plan
from plannerl.planning.planner import load_task
from plannerl.planning.report import PLANNERS, how_solved, plan_report, report_json, summary_line

SCHEMA = {"planner", "problem", "domain", "plan", "length", "optimal_plans", "optimal_plans_capped", "expanded", "seconds",
          "core", "symmetry", "symmetry_classes", "heuristic", "heuristic_seconds"}


@pytest.mark.parametrize("planner", EXTERNAL_PLANNERS)
def test_external_plan_is_optimal_and_checked_on_plannerls_task(planner):
    problem = CLASSIC / "gripper/p02.pddl"
    task, found = external_plan(planner, None, problem)
    assert found.planner == planner and found.length == 5
    assert task.domain.path == str(CLASSIC / "gripper/domain.pddl")
    assert replay(load_task(None, problem), found.plan).valid


def test_external_plan_refuses_an_unknown_planner_by_name():
    with pytest.raises(PlannerlError, match="unknown external planner 'lama'; known: fast-downward, pyperplan"):
        external_plan("lama", None, CLASSIC / "gripper/p02.pddl")


def test_external_plan_reads_with_plannerls_reader_first():
    """A bad file fails with plannerl's line-numbered error before any external planner starts."""
    with pytest.raises(PddlError, match=r"unbalanced\.pddl:2: unbalanced parentheses"):
        external_plan("fast-downward", None, BAD / "unbalanced.pddl")


def test_every_planner_answers_in_the_same_schema():
    problem = CLASSIC / "gripper/p02.pddl"
    reports = {planner: plan_report(None, problem, planner=planner) for planner in PLANNERS}
    for planner, report in reports.items():
        assert set(report) == SCHEMA, planner
        assert report["planner"] == planner and report["problem"] == str(problem) and report["length"] == len(report["plan"]) == 5
        assert report["seconds"] >= 0
    assert reports["builtin"]["optimal_plans"] >= 1 and reports["builtin"]["core"] in ("compiled", "python")
    for planner in EXTERNAL_PLANNERS:
        external = reports[planner]
        assert (external["optimal_plans"], external["core"], external["symmetry"], external["heuristic"]) == (
            None, None, False, EXTERNAL_HEURISTIC)
        assert (external["heuristic_seconds"], external["symmetry_classes"]) == (None, [])


def test_builtin_report_of_a_shipped_kitchen():
    report = plan_report(DOMAINS / "cooking.pddl", DOMAINS / "burger.pddl")
    assert report["length"] == 8 and report["optimal_plans"] == 1 and not report["optimal_plans_capped"]
    assert "(stack robot1 topbun1 patty1 table1)" in report["plan"]
    assert report["domain"] == str(DOMAINS / "cooking.pddl")
    assert json.loads(report_json(report)) == report
    assert list(json.loads(report_json(report))) == sorted(report)


def test_summary_and_how_solved_read_the_report():
    report = plan_report(None, DOMAINS / "burger.pddl")
    summary = summary_line(report)
    assert summary.startswith("length 8 · 1 optimal plan · ") and f"{report['expanded']} expanded" in summary
    assert summary.endswith(f"builtin ({report['core']} core, symmetry {'on' if report['symmetry'] else 'off'})")
    assert how_solved(report).startswith(f"{report['core']} core; symmetry ")
    unreduced = plan_report(None, DOMAINS / "burger.pddl", symmetry=False)
    assert (unreduced["plan"], unreduced["optimal_plans"]) == (report["plan"], report["optimal_plans"])
    assert "; symmetry off; heuristic: " in how_solved(unreduced)
    external = plan_report(None, CLASSIC / "gripper/p02.pddl", planner="pyperplan")
    assert "optimal plans not counted" in summary_line(external) and summary_line(external).endswith(" · pyperplan")


def test_goal_already_holding_is_the_empty_plan():
    report = plan_report(None, CLASSIC / "blocksworld/p00.pddl")
    assert report["plan"] == [] and report["length"] == 0


@pytest.mark.parametrize("options, option", [({"max_states": 5}, "--max-states"), ({"symmetry": False}, "--no-symmetry")])
def test_builtin_only_options_are_refused_for_external_planners(options, option):
    with pytest.raises(PlannerlError, match=f"{option} applies to the builtin planner only"):
        plan_report(None, CLASSIC / "gripper/p02.pddl", planner="fast-downward", **options)


def test_unknown_planner_limits_and_unsolvable_problems_are_errors():
    with pytest.raises(PlannerlError, match="unknown planner 'magic'"):
        plan_report(None, BAD / "ok.pddl", planner="magic")
    with pytest.raises(LimitError, match="state limit"):
        plan_report(None, DOMAINS / "cheese_burger.pddl", max_states=10)
    with pytest.raises(NoPlanError, match="no plan exists"):
        plan_report(None, BAD / "unsolvable.pddl")
