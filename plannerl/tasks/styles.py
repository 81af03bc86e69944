"""The prompt styles: how a state is shown to a model and how its answers are written.

One registry, so that rows (`plannerl.train.rows`), constrained decoding
(`plannerl.agents.policies`) and the evaluator all render a style the same way. A trained
model records its style in its config.json; everything that plays it reads that name here.

- full: instructions, goal, every state fact, history and the valid actions, in sentences,
  as chat messages; for hub models, which read words.
- compact: goal, state facts and recent actions only, short sentences; answers name some
  actions by what the state holds (`compact_action_sentences`).
- todo: compact, with the goal cut to the facts not yet true (the next item comes first);
  what the built-in model trains on.
- focus: todo, each goal fact followed by the state's facts about its objects (they are
  their first argument); what the built-in model trains on in a user's domain.
- free: todo, plus the facts the templates' [compact.typed] table shows for given types (in
  the kitchen: which stoves and boards are free).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plannerl.errors import PlannerlError
from plannerl.tasks.answers import DEFAULT_HISTORY_LEN
from plannerl.tasks.render import action_sentence, compact_action_sentences, compact_prompt, render_prompt


@dataclass(frozen=True)
class PromptStyle:
    """A style: its prompt text and its answer sentences for a state."""

    name: str
    chat: bool   # rows keep chat messages (a hub model's chat template applies to them)
    render: Callable[..., str]
    sentences: Callable[[object, int, list[int]], list[str]]

    def prompt(self, task, state: int, *, history: list[int] | None = None,
               history_len: int = DEFAULT_HISTORY_LEN) -> str:
        return self.render(task, state, history=history, history_len=history_len)

    def action_sentences(self, task, state: int, actions: list[int]) -> list[str]:
        """The answers a model trained on this style gives for `actions` in `state`."""
        return self.sentences(task, state, actions)


def _full_sentences(task, state: int, actions: list[int]) -> list[str]:
    return [action_sentence(task, a) for a in actions]


def _todo_prompt(task, state: int, **kwargs) -> str:
    return compact_prompt(task, state, todo=True, **kwargs)


def _focus_prompt(task, state: int, **kwargs) -> str:
    return compact_prompt(task, state, todo=True, focus=True, **kwargs)


def _free_prompt(task, state: int, **kwargs) -> str:
    return compact_prompt(task, state, todo=True, typed=True, **kwargs)


PROMPT_STYLES: dict[str, PromptStyle] = {
    "full": PromptStyle("full", True, render_prompt, _full_sentences),
    "compact": PromptStyle("compact", False, compact_prompt, compact_action_sentences),
    "todo": PromptStyle("todo", False, _todo_prompt, compact_action_sentences),
    "focus": PromptStyle("focus", False, _focus_prompt, compact_action_sentences),
    "free": PromptStyle("free", False, _free_prompt, compact_action_sentences),
}


def get_style(name: str) -> PromptStyle:
    """The style called `name`; a clear error naming the known ones otherwise."""
    if name not in PROMPT_STYLES:
        raise PlannerlError(f"unknown prompt style {name!r} (choose from {', '.join(PROMPT_STYLES)})")
    return PROMPT_STYLES[name]


def resolve_style(name: str, model: str, *, domain_run: bool = False) -> str:
    """`auto` -> for the built-in model, todo on the cooking recipes and focus on a user's domain
    (`domain_run`); full for hub models (they read the words). Why: the built-in model learns
    the format from the rows and tokens are its cost; todo's goal facts left name the next item
    (double_cheese_burger SFT SR 0.80 / 0.60 with compact, 1.00 / 0.85 with todo); in domains
    whose goals are parallel focus ties each goal to where its objects are (SR on fresh
    problems, todo -> focus: Gripper 0.17 -> 0.86, Blocksworld 0.33 -> 0.65; docs/training.md,
    session 8)."""
    if name == "auto":
        if model != "builtin":
            return "full"
        return "focus" if domain_run else "todo"
    return get_style(name).name
