"""Hostile plan files: random and mutated plans never raise anything but PlannerlError, and finish fast.

The reader (`plannerl.pddl.planfile`) takes plan files from anywhere (other planners, people, LLMs).
Whatever arrives, `read_plan` either returns resolved steps that `replay` can judge, or raises
one `PlannerlError` line; huge files are refused before they are read into memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plannerl.errors import PddlError, PlannerlError
from plannerl.pddl.planfile import MAX_PLAN_BYTES, format_plan, parse_plan_text, read_plan, read_plan_text, replay, resolve_step
from plannerl.planning.planner import load_task, solve

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ROOT / "domains"
BAD = ROOT / "tests" / "fixtures" / "bad"
SOLUTION = solve(None, DOMAINS / "cheese_burger.pddl")
TASK = SOLUTION.task
PLAN_TEXT = format_plan(SOLUTION.plan_names)
FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])

TOKENS = ["", "(", ")", ";", "\n", " ", "0:", "[1]", "1.5 :", "robot1", "table1", "patty1", "move", "stack", "pick-up",
          "unstack", "\x00", "\ufeff", "é", "\r", "\t", "PICK-UP", "(())", ":"]
EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 30), st.sampled_from(TOKENS)), min_size=1, max_size=8)


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, length to delete, insertion) edits to the text."""
    for position, length, insertion in edits:
        position %= len(text) + 1
        text = text[:position] + insertion + text[position + length:]
    return text


def _read_and_replay(path: Path) -> None:
    """The whole path a user's plan takes: read, resolve, replay; only one-line PlannerlErrors may escape."""
    try:
        steps = read_plan(path, TASK)
    except PlannerlError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert str(path) in str(exc)
        return
    result = replay(TASK, steps)
    assert 0 <= result.applied <= result.length == len(steps)
    assert result.message() and "\n" not in result.message()


@FUZZ
@given(edits=EDITS)
def test_mutated_plan_is_read_or_refused_cleanly(tmp_path, edits):
    path = tmp_path / "plan.txt"
    path.write_bytes(_mutate(PLAN_TEXT, edits).encode("utf-8", "surrogatepass"))
    _read_and_replay(path)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_are_refused_cleanly(tmp_path, data):
    path = tmp_path / "plan.txt"
    path.write_bytes(data)
    _read_and_replay(path)


@FUZZ
@given(text=st.text(alphabet="()[]:;0123456789. -\n\tabcdeikmnoprstuvy", max_size=400))
def test_random_plan_like_text_is_refused_cleanly(tmp_path, text):
    path = tmp_path / "plan.txt"
    path.write_text(text, encoding="utf-8")
    _read_and_replay(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_step_text_resolves_or_is_refused_cleanly(text):
    try:
        step = resolve_step(TASK, text, "plan.txt", 3)
    except PddlError as exc:
        assert str(exc).startswith("plan.txt:3: ") and "\n" not in str(exc)
        return
    assert step.action is None or TASK.actions[step.action].pddl == step.text


@FUZZ
@given(indices=st.lists(st.integers(0, len(TASK.actions) - 1), max_size=40))
def test_written_plans_read_back_and_replay_like_the_original(tmp_path, indices):
    """Round trip: any sequence of ground actions, written as a plan file, reads back to the same
    actions and replays to the same verdict as the action indices themselves."""
    names = [TASK.actions[i].pddl for i in indices]
    path = tmp_path / "plan.txt"
    path.write_text(format_plan(names), encoding="utf-8")
    steps = read_plan(path, TASK)
    assert [s.action for s in steps] == indices
    from_file, from_indices = replay(TASK, steps), replay(TASK, indices)
    assert (from_file.valid, from_file.applied, from_file.failed_step, from_file.unmet, from_file.final_state) == (
        from_indices.valid, from_indices.applied, from_indices.failed_step, from_indices.unmet, from_indices.final_state)
    if from_file.failed_step is not None:
        assert from_file.failed_line == from_file.failed_step  # one step per line, no comments before the last


@FUZZ
@given(names=st.lists(st.sampled_from(sorted(TASK.objects)), min_size=0, max_size=4),
       schema=st.sampled_from(sorted(a.name for a in TASK.domain.actions)))
def test_well_typed_or_not_any_grounding_is_judged_with_reasons(schema, names):
    """Steps built from real action and object names: either refused with a reason, or replayed
    to a verdict (pruned well-typed actions are invalid with their unmet preconditions)."""
    text = "(" + " ".join([schema, *names]) + ")"
    try:
        step = resolve_step(TASK, text)
    except PddlError as exc:
        assert "\n" not in str(exc)
        return
    result = replay(TASK, [step])
    if not result.valid and result.failed_step == 1:
        assert result.unmet, result.message()


def test_canonical_plan_file_is_valid():
    path = ROOT / "tests" / "fixtures" / "bad" / "ok.plan"
    task = load_task(BAD / "domain.pddl", BAD / "ok.pddl")
    assert replay(task, read_plan(path, task)).valid


def test_plan_text_parser_rejects_lines_without_an_action():
    with pytest.raises(PddlError, match=r"^p:2: expected one action"):
        parse_plan_text("(a b)\n()\n", "p")


def test_huge_plan_file_is_refused_before_reading(tmp_path):
    """A sparse file just over the cap: refused from its size alone (the test allocates nothing)."""
    path = tmp_path / "huge.plan"
    with open(path, "wb") as handle:
        handle.truncate(MAX_PLAN_BYTES + 1)
    with pytest.raises(PddlError, match="byte limit") as caught:
        read_plan_text(path)
    assert str(path) in str(caught.value)


def test_plan_file_that_is_a_folder_or_missing_is_refused(tmp_path):
    with pytest.raises(PddlError, match="is a directory"):
        read_plan_text(tmp_path)
    with pytest.raises(PddlError, match="no such file"):
        read_plan_text(tmp_path / "missing.plan")


def test_cli_validate_refuses_huge_and_binary_plans_with_one_line(tmp_path):
    huge = tmp_path / "huge.plan"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_PLAN_BYTES + 1)
    binary = tmp_path / "binary.plan"
    binary.write_bytes(b"(pick cup shelf)\n\x00\x01\x02")
    for plan_file, expected in ((huge, "byte limit"), (binary, "binary data")):
        done = subprocess.run([sys.executable, "-m", "plannerl.cli", "validate", str(BAD / "domain.pddl"), str(BAD / "ok.pddl"),
                               str(plan_file)], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and str(plan_file) in lines[0], done.stderr
        assert "Traceback" not in done.stderr
