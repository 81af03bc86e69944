"""The action parser: round trips in both styles on every cooking problem and a non-cooking domain."""

from __future__ import annotations

import random

import pytest
from conftest import COOKING_PROBLEMS, FIXTURES

from plannerl.planning.planner import load_task
from plannerl.tasks.actions import (
    NOT_APPLICABLE,
    UNPARSEABLE,
    VALID,
    _is_normal_template,
    _normalized_sentences,
    match_answer,
    normalize,
    parse_action,
)
from plannerl.tasks.answers import extract_answer
from plannerl.tasks.generate import generate_instance
from plannerl.tasks.render import action_sentence, task_templates

BLOCKS = [FIXTURES / "data" / "blocks" / "tower3.pddl", FIXTURES / "data" / "blocks" / "swap4.pddl"]


def variants(text: str) -> list[str]:
    """The same answer as a model might write it."""
    bare = text.strip("()")
    return [text, text.upper(), f"Action: {text}", f"Action:   {text}.", f"Reasoning: I need this next. Action: {text}",
            f"Reasoning: first think.\nMore thoughts.\nAction: {text}\n", f"  {text.lower()}  ", f"[{bare}]", f"({bare})",
            f"**Action:** `{text}`", f"Thinking about it\n{text}", f"Action: - {text}", "Action:  " + "  ".join(text.split())]


def walk_states(task, steps: int = 12, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    state, states = task.init, [task.init]
    for _ in range(steps):
        valid = task.applicable(state)
        if not valid:
            break
        state = task.apply(state, rng.choice(valid))
        states.append(state)
    return states


PROBLEMS = COOKING_PROBLEMS + BLOCKS


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.stem)
def test_every_valid_action_round_trips_in_both_styles(problem):
    task = load_task(None, problem)
    for state in walk_states(task):
        for action in task.applicable(state):
            pddl = task.actions[action].pddl
            for text in variants(action_sentence(task, action)) + variants(pddl) + variants(pddl.strip("()")):
                parsed = parse_action(task, state, text)
                assert (parsed.kind, parsed.action) == (VALID, action), (text, parsed)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.stem)
def test_every_action_in_pddl_form_is_recognised_even_when_it_does_not_apply(problem):
    task = load_task(None, problem)
    for action in range(len(task.actions)):
        parsed = parse_action(task, task.init, f"Action: {task.actions[action].pddl}")
        assert parsed.action == action
        if task.is_applicable(task.init, action):
            assert parsed.kind == VALID
        else:
            assert parsed.kind == NOT_APPLICABLE
            assert parsed.unmet == task.unmet_preconditions(task.init, action) and parsed.unmet
            assert task.actions[action].pddl in parsed.reason


def test_generated_instance_round_trip():
    task = generate_instance("cheese_burger", 11, extra_stations=3, distractors=2).load_task()
    for state in walk_states(task, 20, seed=3):
        for action in task.applicable(state):
            assert parse_action(task, state, "Action: " + action_sentence(task, action)).action == action


def test_not_applicable_sentence_reports_the_unmet_preconditions():
    task = load_task(None, COOKING_PROBLEMS[0].parent / "burger.pddl")
    parsed = parse_action(task, task.init, "Reasoning: grab it. Action: Pick up patty1 from table3 using robot1")
    assert parsed.kind == NOT_APPLICABLE
    assert parsed.action == task.find_action("(pick-up robot1 patty1 table3)")
    assert parsed.unmet == ["(at robot1 table3)"]
    assert "(at robot1 table3)" in parsed.reason


def test_sentences_without_some_arguments_pick_the_variant_that_applies():
    """The cooking `cut` sentence leaves out the counts: the parser takes the applicable variant."""
    task = load_task(None, COOKING_PROBLEMS[0].parent / "lettuce_tomato_sandwich.pddl")
    cuts = [a for a in range(len(task.actions)) if task.actions[a].schema == "cut" and task.actions[a].args[1] == "lettuce1"
            and task.actions[a].args[2] == "board1"]
    assert len({action_sentence(task, a) for a in cuts}) == 1 and len(cuts) == 3
    state = task.init
    for line in ["(move robot1 table1 table3)", "(pick-up robot1 lettuce1 table3)", "(move robot1 table3 board1)",
                 "(place robot1 lettuce1 board1)"]:
        state = task.apply(state, task.find_action(line))
    for step in ("zero one", "one two", "two three"):
        parsed = parse_action(task, state, "Action: Cut lettuce1 on board1 using robot1")
        assert parsed.kind == VALID and task.actions[parsed.action].pddl == f"(cut robot1 lettuce1 board1 {step})"
        state = task.apply(state, parsed.action)
    parsed = parse_action(task, state, "Cut lettuce1 on board1 using robot1")
    assert parsed.kind == NOT_APPLICABLE and parsed.unmet


def reference_parse(task, state: int, named: list[int]) -> tuple[str, int]:
    """What an answer naming the actions `named` (those sharing its sentence) must mean, from the
    definition: the smallest one among the state's applicable actions, else the one with the
    fewest unmet preconditions (then the smallest index)."""
    applicable = sorted(set(named) & set(task.applicable(state)))
    if applicable:
        return VALID, applicable[0]
    return NOT_APPLICABLE, min(named, key=lambda a: (len(task.unmet_preconditions(state, a)), a))


@pytest.mark.parametrize("problem", [COOKING_PROBLEMS[0].parent / "lettuce_tomato_sandwich.pddl", "generated"],
                         ids=["lettuce_tomato_sandwich", "generated"])
def test_every_sentence_in_every_walked_state_matches_the_definition(problem):
    """The parser looks answers up in a per-task index and tests only the actions they name;
    over every sentence of the task (applicable or not) in states of a random walk, including
    cut variants sharing one sentence and interchangeable stations, it must agree with the
    definition computed from the state's full list of applicable actions."""
    if problem == "generated":
        task = generate_instance("lettuce_tomato_sandwich", 4, extra_stations=6, distractors=3).load_task()
    else:
        task = load_task(None, problem)
    named: dict[str, list[int]] = {}
    for action in range(len(task.actions)):
        named.setdefault(action_sentence(task, action), []).append(action)
    for state in walk_states(task, 25, seed=1)[::5]:
        for sentence, actions in named.items():
            parsed = parse_action(task, state, f"Action: {sentence}")
            assert (parsed.kind, parsed.action) == reference_parse(task, state, actions), sentence
            if parsed.kind == NOT_APPLICABLE:
                assert parsed.unmet == task.unmet_preconditions(state, parsed.action) and parsed.unmet


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty answer"),
    ("Action:", "empty answer"),
    ("Action: dance with robot1", "'dance with robot1' matches no action"),
    ("Action: (pick-up robot1 patty1)", "pick-up takes 3 arguments, got 2"),
    ("Action: (pick-up robot1 patty7 table3)", "unknown object 'patty7'"),
    ("Action: (pick-up robot1 table3 patty1)", "is not an action of this task"),
    ("Action: " + "move " * 200, "characters long"),
])
def test_unparseable_answers_say_why(text, reason):
    task = load_task(None, COOKING_PROBLEMS[0].parent / "burger.pddl")
    parsed = parse_action(task, task.init, text)
    assert parsed.kind == UNPARSEABLE and parsed.action is None
    assert reason in parsed.reason


def test_extract_answer_uses_the_last_action_marker_or_the_last_line():
    assert extract_answer("Action: a\nReasoning: no wait.\nAction: b") == "b"
    assert extract_answer("Reasoning: x Action: c") == "c"
    assert extract_answer("first line\n\nlast line\n") == "last line"


def test_match_answer_against_candidate_lists():
    sentences = ["Move robot1 from table1 to table3", "Pick up patty1 from table3 using robot1"]
    pddl = ["(move robot1 table1 table3)", "(pick-up robot1 patty1 table3)"]
    assert match_answer("Reasoning: go. Action: move robot1 from TABLE1 to table3.", sentences, pddl) == 0
    assert match_answer("Action: (pick-up robot1 patty1 table3)", sentences, pddl) == 1
    assert match_answer("pick-up robot1 patty1 table3", sentences, pddl) == 1
    assert match_answer("Action: Move robot1 from table1 to table2", sentences, pddl) is None
    assert match_answer("Action: Pick up patty1 from table3 using robot1", sentences, []) == 1
    assert match_answer("", sentences, pddl) is None


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.stem)
def test_sentence_index_holds_each_actions_normalised_sentence(problem):
    """The index fills lowered templates directly where that equals normalising the sentence;
    it must hold exactly what normalising each action's sentence gives."""
    task = load_task(None, problem)
    assert _normalized_sentences(task) == [normalize(action_sentence(task, a)) for a in range(len(task.actions))]


def test_templates_that_normalising_would_change_take_the_long_way():
    """Brackets, capitals kept by lowering only, doubled spaces, a trailing stop, a leading
    bullet, a placeholder glued to a word or with a format spec: each changes under `normalize`
    (or could), so those actions' index keys must still be their normalised sentences."""
    assert _is_normal_template("Pick up {1} from {2} using {0}")
    assert _is_normal_template("{0} {} stack")
    odd = ["Pick UP {0}.", "put  {0} down", "({0}) on {1}", "{0}s off {1}", "- {0} on {1}", "{0:>3} x", "{{}} {0}",
           "{0.real} y", "1. {0} z", "x {0}!"]
    assert not any(_is_normal_template(template) for template in odd)
    task = load_task(None, BLOCKS[1])
    actions = task_templates(task).actions
    actions.update({"pick_up": "Pick UP {0}.", "put-down": "- {0} down", "stack": "({0}) on {1}", "unstack": "x {0}  {1}!"})
    assert {a.schema for a in task.actions} == {"pick_up", "put-down", "stack", "unstack"}
    assert _normalized_sentences(task) == [normalize(action_sentence(task, a)) for a in range(len(task.actions))]
