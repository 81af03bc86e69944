"""`plannerl plan` and `plannerl validate` through the real entry point (`python -m plannerl.cli`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import BAD, CLASSIC, DOMAINS, ROOT

from plannerl.errors import PddlError
from plannerl.pddl.planfile import format_plan, parse_plan_text, read_plan, replay, write_plan
from plannerl.pddl.up_bridge import EXTERNAL_HEURISTIC
from plannerl.planning import compiled
from plannerl.planning.planner import COMPILED_HEURISTIC, MISSING_CORE, PYTHON_HEURISTIC, load_task


def plannerl(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plannerl.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plannerl: error: "), done.stderr
    assert message in lines[0], lines[0]


def test_plan_prints_a_table_with_a_summary():
    done = plannerl("plan", DOMAINS / "burger.pddl")
    assert done.returncode == 0, done.stderr
    assert "(stack robot1 topbun1 patty1 table1)" in done.stdout
    assert "length 8 · 1 optimal plan ·" in done.stdout and "expanded" in done.stdout


def test_plan_json_and_plan_file_round_trip(tmp_path):
    out = tmp_path / "sub" / "burger.plan"
    done = plannerl("plan", DOMAINS / "cooking.pddl", DOMAINS / "burger.pddl", "--format", "json", "--output", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"plan", "length", "optimal_plans", "expanded", "seconds"} <= set(report)
    assert report["length"] == len(report["plan"]) == 8 and report["optimal_plans"] == 1
    text = out.read_text()
    assert text == format_plan(report["plan"]) and text.endswith("; cost = 8 (unit cost)\n")
    assert [s for _, s in parse_plan_text(text)] == report["plan"]
    # unified-planning reads the file we wrote
    from unified_planning.io import PDDLReader

    from plannerl.pddl.up_bridge import read_problem

    up_plan = PDDLReader().parse_plan(read_problem(None, DOMAINS / "burger.pddl"), str(out))
    assert len(up_plan.actions) == 8
    checked = plannerl("validate", DOMAINS / "burger.pddl", out)
    assert checked.returncode == 0 and "valid: 8 steps, reaches the goal" in checked.stdout


def test_plan_pddl_format_is_the_plan_file_text():
    done = plannerl("plan", CLASSIC / "blocksworld/p01.pddl", "--format", "pddl")
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "(unstack c a)" and done.stdout.endswith("; cost = 6 (unit cost)\n")


def test_goal_already_holding_gives_the_empty_plan():
    done = plannerl("plan", CLASSIC / "blocksworld/p00.pddl", "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["plan"] == []
    assert plannerl("plan", CLASSIC / "blocksworld/p00.pddl").returncode == 0


@pytest.mark.parametrize("planner", ["fast-downward", "pyperplan"])
def test_external_planners_from_the_cli(planner):
    done = plannerl("plan", CLASSIC / "gripper/p02.pddl", "--planner", planner, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["planner"] == planner and report["length"] == 5 and report["optimal_plans"] is None
    assert (report["core"], report["symmetry"], report["heuristic"]) == (None, False, EXTERNAL_HEURISTIC)
    for option in (["--max-states", "5"], ["--no-symmetry"]):
        assert_one_line_error(plannerl("plan", CLASSIC / "gripper/p02.pddl", "--planner", planner, *option), 2,
                              f"{option[0]} applies to the builtin planner only")


def _kitchen_with_spare_tables(folder):
    """A generated burger kitchen with extra empty tables (interchangeable) beside its domain file."""
    from plannerl.tasks.generate import generate_instance

    instance = generate_instance("burger", 3, extra_stations=4, distractors=1)
    shutil.copy(instance.domain_path, folder / instance.domain_path.name)
    path = folder / instance.file_name
    path.write_text(instance.problem_text)
    return path


def test_plan_reports_core_symmetry_and_heuristic(tmp_path):
    """JSON says which search ran; --no-symmetry searches every state and must find the same
    canonical plan and plan count; -v says the same on stderr, on one line."""
    assert compiled.available(), "build the compiled core: python setup.py build_ext --inplace"
    problem = _kitchen_with_spare_tables(tmp_path)
    done = plannerl("plan", problem, "--format", "json", "-v")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["core"], report["symmetry"], report["heuristic"]) == ("compiled", True, COMPILED_HEURISTIC)
    assert 0 <= report["heuristic_seconds"] <= report["seconds"]
    spare = [members for members in report["symmetry_classes"] if all(m.startswith("table") for m in members)]
    assert spare and len(spare[0]) >= 4, report["symmetry_classes"]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("plannerl: compiled core; symmetry on (")
    assert " ".join(spare[0]) + " interchangeable" in done.stderr
    plain = plannerl("plan", problem, "--format", "json", "--no-symmetry", "-v")
    assert plain.returncode == 0, plain.stderr
    unreduced = json.loads(plain.stdout)
    assert (unreduced["core"], unreduced["symmetry"], unreduced["symmetry_classes"]) == ("compiled", False, [])
    assert (unreduced["plan"], unreduced["optimal_plans"]) == (report["plan"], report["optimal_plans"])
    assert unreduced["expanded"] >= report["expanded"]
    assert "plannerl: compiled core; symmetry off; heuristic: " in plain.stderr
    summary = plannerl("plan", problem, "--no-symmetry")
    assert summary.returncode == 0 and "builtin (compiled core, symmetry off)" in summary.stdout


def test_plan_without_the_compiled_core_falls_back_to_python_and_says_so_with_v(tmp_path):
    """A checkout where plannerl.planning._core cannot be imported (as before `build_ext`): same plan and
    count from the pure-Python search; the reason is printed once with -v, never without."""
    problem = _kitchen_with_spare_tables(tmp_path)
    with_core = json.loads(plannerl("plan", problem, "--format", "json").stdout)
    unbuilt = ("import sys; sys.modules['plannerl.planning._core'] = None; from plannerl.cli.main import run;"
               "sys.argv = ['plannerl', *sys.argv[1:]]; run()")
    for verbose in (["-v"], []):
        done = subprocess.run([sys.executable, "-c", unbuilt, "plan", str(problem), "--format", "json", *verbose],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["core"], report["symmetry"], report["heuristic"]) == ("python", False, PYTHON_HEURISTIC)
        assert (report["plan"], report["optimal_plans"]) == (with_core["plan"], with_core["optimal_plans"])
        assert report["symmetry_classes"] == [] and report["heuristic_seconds"] == 0
        assert done.stderr.count(MISSING_CORE) == (1 if verbose else 0), done.stderr
        assert "Traceback" not in done.stderr


BAD_INPUTS = [
    ("empty.pddl", "empty.pddl: empty file"),
    ("binary.pddl", "binary.pddl: binary data"),
    ("unbalanced.pddl", "unbalanced.pddl:2: unbalanced parentheses"),
    ("deep_nesting.pddl", "deep_nesting.pddl:2: parentheses nested deeper than 64"),
    ("unknown_predicate.pddl", "unknown_predicate.pddl:6: :goal: unknown predicate clean"),
    ("unknown_object.pddl", "unknown_object.pddl:5: :init: unknown object or constant spoon"),
    ("unknown_type.pddl", "unknown_type.pddl:4: unknown type utensil"),
    ("wrong_arity.pddl", "wrong_arity.pddl:6: :goal: predicate at takes 2 arguments, got 1"),
    ("no_domain.pddl", "defines (domain warehouse); pass the domain file first"),
]


@pytest.mark.parametrize(("name", "message"), BAD_INPUTS, ids=[n for n, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(name, message):
    assert_one_line_error(plannerl("plan", BAD / name), 2, message)


def test_unsupported_requirement_is_refused_by_name():
    assert_one_line_error(plannerl("plan", BAD / "unsupported_requirement.pddl", BAD / "ok.pddl"), 2,
                          "requirement :conditional-effects is not supported")


def test_no_plan_exits_3_and_says_so():
    assert_one_line_error(plannerl("plan", BAD / "unsolvable.pddl"), 3, "no plan exists: all 3 reachable states explored")
    assert_one_line_error(plannerl("plan", BAD / "unreachable_goal.pddl"), 3, "no plan exists: goal (holding plate) is unreachable")


def test_limits_exit_4_and_say_which():
    done = plannerl("plan", CLASSIC / "logistics/domain.pddl", BAD / "large_logistics.pddl", "--time-limit", "0.3")
    assert_one_line_error(done, 4, "no plan found within the time limit of 0.3 s")
    assert_one_line_error(plannerl("plan", DOMAINS / "cheese_burger.pddl", "--max-states", "10"), 4, "state limit")


def test_usage_mistakes():
    assert_one_line_error(plannerl("plan", BAD / "ok.pddl", BAD / "ok.pddl", BAD / "ok.pddl"), 2, "expected [DOMAIN] PROBLEM, got 3 files")
    assert_one_line_error(plannerl("plan", BAD / "missing.pddl"), 2, "missing.pddl: no such file")
    done = plannerl("plan", BAD / "ok.pddl", "--planner", "magic")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "magic" in done.stderr


# ------------------------------------------------------------------- validate


def test_validate_valid_plan_with_odd_case_spacing_and_comments():
    done = plannerl("validate", BAD / "ok.pddl", BAD / "ok.plan")
    assert done.returncode == 0 and "valid: 2 steps, reaches the goal" in done.stdout


def test_validate_names_the_failing_step_and_unmet_precondition():
    assert_one_line_error(plannerl("validate", BAD / "ok.pddl", BAD / "failing_step.plan"), 1,
                          "invalid: step 2 (line 3) (pick plate table) does not apply: unmet precondition (hand-empty)")


def test_validate_names_the_unmet_goals():
    assert_one_line_error(plannerl("validate", BAD / "ok.pddl", BAD / "goal_unmet.plan"), 1,
                          "all 2 steps apply but the goal is not reached: unmet goal (at cup table)")


def test_validate_plan_naming_an_unknown_action():
    assert_one_line_error(plannerl("validate", BAD / "domain.pddl", BAD / "ok.pddl", BAD / "unknown_action.plan"), 2,
                          "unknown_action.plan:3: unknown action 'teleport' (the domain has pick, put)")


def test_plan_file_mistakes(tmp_path):
    task = load_task(None, BAD / "ok.pddl")
    cases = {
        "(pick cup)": "unknown_arity.plan:1: (pick cup): pick takes 2 arguments, got 1",
        "(pick spoon shelf)": "(pick spoon shelf): unknown object spoon",
        "(pick shelf cup)": "(pick shelf cup): shelf is a place, but pick expects a item for ?i",
        "pick cup shelf": "expected one action like (name arg ...) per line",
        "(pick (cup) shelf)": "expected one action like (name arg ...) per line",
    }
    for text, message in cases.items():
        path = tmp_path / "unknown_arity.plan"
        path.write_text(text + "\n")
        with pytest.raises(PddlError, match=re.escape(message)):
            read_plan(path, task)
    (tmp_path / "bin.plan").write_bytes(b"\x00\x01")
    assert_one_line_error(plannerl("validate", BAD / "ok.pddl", tmp_path / "bin.plan"), 2, "binary data, not a plan file")


def test_replay_reports_steps_that_grounding_pruned(tmp_path):
    """(pick plate shelf) is well typed but can never apply (the plate is never on the shelf):
    grounding drops it, and replay still names its unmet precondition."""
    task = load_task(None, BAD / "ok.pddl")
    result = replay(task, ["(pick plate shelf)"])
    assert not result.valid and result.failed_step == 1 and result.unmet == ["(at plate shelf)"]
    assert "step 1 (pick plate shelf) does not apply: unmet precondition (at plate shelf)" in result.message()
    write_plan(tmp_path / "p.plan", ["(pick cup shelf)", "(put cup table)"])
    assert replay(task, read_plan(tmp_path / "p.plan", task)).valid
    assert (tmp_path / "p.plan").read_text() == "(pick cup shelf)\n(put cup table)\n; cost = 2 (unit cost)\n"
    assert parse_plan_text("0.000: (PICK cup shelf) [1.000]\n; c\n\n") == [(1, "(pick cup shelf)")]


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from plannerl.cli.main import app; import typer.testing as t; t.CliRunner().invoke(app, ['--help']);"
            "heavy = [m for m in ('unified_planning', 'torch', 'transformers', 'trl', 'datasets', 'matplotlib') if m in sys.modules];"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert plannerl("--help").returncode == 0
