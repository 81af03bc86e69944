"""GRPO rewards on real oracle labels: optimal, expert-only, invalid and unparseable answers."""

from __future__ import annotations

import random

import pytest
from plannerl.domains import DOMAINS_DIR

from plannerl.errors import PlannerlError
from plannerl.planning.oracle import Oracle
from plannerl.planning.planner import load_task
from plannerl.tasks.answers import marked_answer
from plannerl.tasks.rewards import expert_reward, format_reward, optimal_reward, reward_functions


def _sentence(task, action: int) -> str:
    try:
        from plannerl.tasks.render import action_sentence
    except ImportError:
        return task.actions[action].pddl
    return action_sentence(task, action)


@pytest.fixture(scope="module")
def tie_state():
    """A real state with at least two optimal actions, its oracle label and an invalid action."""
    task = load_task(None, DOMAINS_DIR / "cheese_burger.pddl")
    oracle = Oracle(task)
    rng = random.Random(0)
    state = task.init
    for _ in range(200):
        label = oracle.label(state)
        if label.h_star and len(label.optimal_actions) >= 2:
            applicable = set(task.applicable(state))
            invalid = next(a for a in range(len(task.actions)) if a not in applicable)
            suboptimal = next(a for a in sorted(applicable) if a not in label.optimal_actions)
            return task, label, invalid, suboptimal
        state = task.apply(state, rng.choice(task.applicable(state)))
    raise AssertionError("no state with tied optimal actions found")


def _columns(task, label):
    optimal = list(label.optimal_actions)
    return {
        "optimal_actions": [[_sentence(task, a) for a in optimal]],
        "optimal_actions_pddl": [[task.actions[a].pddl for a in optimal]],
        "expert_action": [_sentence(task, label.canonical_action)],
        "expert_action_pddl": [task.actions[label.canonical_action].pddl],
    }


def _score(fn, task, label, text):
    return fn(prompts=["p"], completions=[text], completion_ids=[[1]], **_columns(task, label))[0]


def test_expert_action_earns_both_rewards(tie_state):
    task, label, _, _ = tie_state
    text = "Action: " + _sentence(task, label.canonical_action)
    assert _score(optimal_reward, task, label, text) == 1.0
    assert _score(expert_reward, task, label, text) == 1.0


def test_other_optimal_action_earns_only_the_optimal_reward(tie_state):
    task, label, _, _ = tie_state
    other = label.optimal_actions[1]
    assert other != label.canonical_action
    for text in ("Action: " + _sentence(task, other), "Reasoning: go.\nAction: " + task.actions[other].pddl.upper()):
        assert _score(optimal_reward, task, label, text) == 1.0
        assert _score(expert_reward, task, label, text) == 0.0


def test_valid_but_suboptimal_and_invalid_actions_earn_nothing(tie_state):
    task, label, invalid, suboptimal = tie_state
    assert not task.is_applicable(task.init, invalid) or invalid not in label.optimal_actions
    for action in (invalid, suboptimal):
        text = "Action: " + _sentence(task, action)
        assert _score(optimal_reward, task, label, text) == 0.0
        assert _score(expert_reward, task, label, text) == 0.0


def test_unparseable_answers_earn_nothing(tie_state):
    task, label, _, _ = tie_state
    right = _sentence(task, label.canonical_action)
    for text in ("", "I would " + right.lower(), "Action:", "Action: " + right + " and then more", "Action " + right):
        assert _score(optimal_reward, task, label, text) == 0.0, text


def test_chat_completions_are_read_too(tie_state):
    task, label, _, _ = tie_state
    message = [{"role": "assistant", "content": "Action: " + _sentence(task, label.canonical_action)}]
    assert optimal_reward(prompts=[[]], completions=[message], **_columns(task, label)) == [1.0]


def test_format_reward_wants_one_action_line():
    assert format_reward(completions=["Action: Move robot1 from table1 to table2", "Action: a\nAction: b", "hello", "Action: "]) == [
        1.0, 0.0, 0.0, 0.0]
    assert marked_answer("Reasoning: x. Action: move  a b.\nmore") == "move  a b."


def test_reward_choice():
    funcs, weights = reward_functions("expert", format_weight=0.1)
    assert funcs == [expert_reward, format_reward] and weights == [1.0, 0.1]
    with pytest.raises(PlannerlError, match="unknown reward"):
        reward_functions("dense")
