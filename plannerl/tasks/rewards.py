"""Verifiable single-turn rewards for GRPO, with TRL's reward-function signature.

TRL calls each function as `f(prompts=, completions=, completion_ids=, **columns)`, where the
columns are the dataset row's fields, one list entry per completion. A completion is a string
(plain prompts) or a one-message list `[{"role": "assistant", "content": ...}]` (chat prompts).

- `optimal_reward` (default): 1 when the answer is one of the state's optimal actions (any
  action on some shortest plan). The paper's recursion holds for it too, and it does not punish
  a correct answer for differing from an arbitrary tie-break.
- `expert_reward` (`--reward expert`, the paper's): 1 only for the expert (canonical) action.
- `format_reward` (optional, small weight): 1 when the completion is exactly one
  `Action: ...` line, so the model learns to stop after its answer.

An answer is the text after the last `Action:` (first line only), compared with the row's
candidate actions as sentences or PDDL forms, ignoring case, repeated spaces and a final
period. Nothing else is guessed: an answer that is not exactly a candidate earns 0.
"""

from __future__ import annotations

from plannerl.errors import PlannerlError
from plannerl.tasks.answers import count_markers, marked_answer, starts_with_marker


def completion_text(completion) -> str:
    """The text of a TRL completion (string, or chat messages whose last one is the answer)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return ""


def normalize_action(text: str) -> str:
    """Case, spacing, a trailing period and spaces just inside parentheses do not matter."""
    text = " ".join(text.strip().lower().split()).rstrip(".").strip()
    return text.replace("( ", "(").replace(" )", ")")


def answer_index(text: str, sentences, pddl_forms=None) -> int | None:
    """Index of the candidate (as a sentence or a PDDL form) that the answer names, else None."""
    answer = marked_answer(text)
    if answer is None:
        return None
    wanted = normalize_action(answer)
    for index, sentence in enumerate(sentences or ()):
        if normalize_action(sentence) == wanted:
            return index
    for index, form in enumerate(pddl_forms or ()):
        if normalize_action(form) == wanted:
            return index
    return None


def optimal_reward(prompts=None, completions=None, completion_ids=None, *, optimal_actions, optimal_actions_pddl=None,
                   **columns) -> list[float]:
    """1.0 when the completion names one of the row's optimal actions, else 0.0."""
    pddl_lists = optimal_actions_pddl or [None] * len(completions)
    return [float(answer_index(completion_text(c), sentences, forms) is not None)
            for c, sentences, forms in zip(completions, optimal_actions, pddl_lists)]


def expert_reward(prompts=None, completions=None, completion_ids=None, *, expert_action, expert_action_pddl=None,
                  **columns) -> list[float]:
    """1.0 when the completion names exactly the row's expert action (the paper's reward)."""
    pddl = expert_action_pddl or [None] * len(completions)
    return [float(answer_index(completion_text(c), [sentence], [form] if form else None) is not None)
            for c, sentence, form in zip(completions, expert_action, pddl)]


def format_reward(prompts=None, completions=None, completion_ids=None, **columns) -> list[float]:
    """1.0 for a completion that is one `Action: <text>` line and nothing more."""
    out = []
    for completion in completions:
        text = completion_text(completion).strip()
        one_line = "\n" not in text and count_markers(text) == 1
        out.append(float(one_line and starts_with_marker(text) and marked_answer(text) is not None))
    return out


REWARDS = {"optimal": optimal_reward, "expert": expert_reward}


def reward_functions(kind: str = "optimal", format_weight: float = 0.0) -> tuple[list, list[float]]:
    """The reward functions and weights GRPO is given for `--reward KIND`."""
    if kind not in REWARDS:
        raise PlannerlError(f"unknown reward {kind!r} (choose from {', '.join(REWARDS)})")
    if format_weight > 0:
        return [REWARDS[kind], format_reward], [1.0, float(format_weight)]
    return [REWARDS[kind]], [1.0]
