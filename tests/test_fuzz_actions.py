"""Hostile model answers: `parse_action` and `match_answer` never raise, finish fast, and never
call an action valid unless it applies.

A model's answer is arbitrary text (the model is small, sampling is random, and `plannerl eval`
also takes answers typed by people). Whatever arrives, `parse_action` returns one of three
typed outcomes; `valid` always names an applicable action, `not_applicable` always names the
real action with its unmet preconditions, and the text of every listed action, in either
style and with the noise models add, is read back as that action.
"""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from plannerl.tasks.actions import MAX_ANSWER_CHARS, NOT_APPLICABLE, UNPARSEABLE, VALID, match_answer, normalize, parse_action
from plannerl.tasks.generate import generate_instance
from plannerl.tasks.render import action_sentence, action_sentences

FUZZ = settings(max_examples=300, deadline=1000)
INSTANCE = generate_instance("cheese_burger", 11, extra_stations=(0, 3), distractors=(0, 2))
TASK = INSTANCE.load_task()
SENTENCES = action_sentences(TASK)


def _reachable_states(count: int, seed: int = 0) -> list[int]:
    """States along random walks from the initial state (dead ends included)."""
    rng = random.Random(seed)
    states, state = [TASK.init], TASK.init
    while len(states) < count:
        applicable = TASK.applicable(state)
        state = TASK.apply(state, rng.choice(applicable)) if applicable and rng.random() > 0.1 else TASK.init
        states.append(state)
    return states


STATES = _reachable_states(60)
WORDS = sorted({word for sentence in SENTENCES for word in sentence.split()} | {a.schema for a in TASK.actions} | set(TASK.objects))
NOISE = ["", "Action:", "action :", "ACTION:", "Reasoning:", "(", ")", "[", "]", ",", ".", "!", "*", "**", "`", '"', "'", "- ", "1. ",
         "\n", "\r\n", "\t", " ", "\x00", "é", "\u2022 ", ";", ":", "<", ">", "{", "}"]


def _check(parsed, state: int) -> None:
    assert parsed.kind in (VALID, NOT_APPLICABLE, UNPARSEABLE)
    assert "\n" not in parsed.reason
    if parsed.kind == VALID:
        assert TASK.is_applicable(state, parsed.action) and parsed.reason == "" and parsed.unmet == []
    elif parsed.kind == NOT_APPLICABLE:
        assert not TASK.is_applicable(state, parsed.action)
        assert parsed.unmet == TASK.unmet_preconditions(state, parsed.action) and parsed.unmet
    else:
        assert parsed.action is None and parsed.reason


@FUZZ
@given(text=st.text(max_size=600), state=st.sampled_from(STATES))
def test_any_text_gets_a_typed_answer(text, state):
    _check(parse_action(TASK, state, text), state)


@FUZZ
@given(pieces=st.lists(st.sampled_from(WORDS + NOISE), max_size=30), state=st.sampled_from(STATES))
def test_answers_built_from_real_words_and_noise_get_a_typed_answer(pieces, state):
    _check(parse_action(TASK, state, " ".join(pieces)), state)


def _noisy(text: str, style: int, reasoning: str) -> str:
    """The ways models dress up an action: case, brackets, emphasis, bullets, full stops, reasoning first."""
    dressed = [text, text.upper(), f"**{text}**", f"- {text}.", f"`{text}`", f"  {text.replace(' ', '   ')}  ", f"1. {text}!",
               f'"{text}"'][style % 8]
    return f"Reasoning: {reasoning}\nAction: {dressed}\n" if style % 2 else f"{reasoning}\n{dressed}"


@FUZZ
@given(state=st.sampled_from(STATES), pick=st.integers(0, 10_000), style=st.integers(0, 15),
       reasoning=st.text(alphabet="abcdefghij ().,", max_size=80))
def test_every_listed_action_is_read_back_in_either_style(state, pick, style, reasoning):
    applicable = TASK.applicable(state)
    if not applicable:
        return
    action = applicable[pick % len(applicable)]
    for text in (action_sentence(TASK, action), TASK.actions[action].pddl, TASK.actions[action].pddl.strip("()")):
        parsed = parse_action(TASK, state, _noisy(text, style, reasoning))
        assert parsed.kind == VALID, (text, parsed)
        # a sentence may stand for several ground actions (arguments it does not mention): the first applicable one
        same_text = [a for a in applicable if normalize(action_sentence(TASK, a)) == normalize(action_sentence(TASK, parsed.action))]
        assert parsed.action == action or parsed.action == min(same_text)


@FUZZ
@given(state=st.sampled_from(STATES), pick=st.integers(0, 10_000))
def test_an_inapplicable_action_is_named_with_its_unmet_preconditions(state, pick):
    inapplicable = [a for a in range(len(TASK.actions)) if not TASK.is_applicable(state, a)]
    action = inapplicable[pick % len(inapplicable)]
    parsed = parse_action(TASK, state, f"Action: {TASK.actions[action].pddl}")
    assert parsed.kind == NOT_APPLICABLE and parsed.action == action
    assert parsed.unmet == TASK.unmet_preconditions(state, action)


@FUZZ
@given(text=st.text(max_size=300), options=st.lists(st.sampled_from(SENTENCES), max_size=6),
       pddl=st.lists(st.sampled_from([a.pddl for a in TASK.actions]), max_size=6))
def test_match_answer_never_raises_and_points_into_the_lists(text, options, pddl):
    position = match_answer(text, options, pddl)
    assert position is None or 0 <= position < max(len(options), len(pddl))


@FUZZ
@given(options=st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=6, unique=True), pick=st.integers(0, 5),
       style=st.integers(0, 15))
def test_match_answer_finds_each_listed_option(options, pick, style):
    chosen = pick % len(options)
    position = match_answer(_noisy(options[chosen], style, "thinking"), options)
    assert position is not None and normalize(options[position]) == normalize(options[chosen])


def test_huge_and_adversarial_answers_are_refused_quickly():
    """Megabyte answers, and patterns that make naive regular expressions backtrack, parse in bounded time."""
    state = TASK.init
    listed = action_sentence(TASK, TASK.applicable(state)[0])
    answers = [
        "x" * 1_000_000,
        "Action: " + "(" * 200_000 + ")" * 200_000,
        "action" + " " * 500_000,
        "Action:" * 100_000,
        ("action " * 100_000) + ":",
        "\n" * 1_000_000,
        "- " * 300_000 + listed,
        listed + "." * 300_000,
        f"Action: {listed}" + " " * 1_000_000 + "\n",
        "Reasoning: " + "a" * 1_000_000 + f"\nAction: {listed}",
    ]
    for answer in answers:
        start = time.perf_counter()
        parsed = parse_action(TASK, state, answer)
        match_answer(answer, SENTENCES)
        assert time.perf_counter() - start < 2.0, answer[:40]
        _check(parsed, state)
        assert len(parsed.answer) <= MAX_ANSWER_CHARS
    assert parse_action(TASK, state, answers[-1]).kind == VALID  # long reasoning before a good action is fine
