"""Model text -> ground action, with a typed answer saying what went wrong.

The answer is the text after the last `Action:` (the model may reason before it); without
that marker, the last non-empty line. It may be the natural sentence the prompt listed
("Pick up patty1 from table3 using robot1"), the built-in model's compact sentence of an action
that applies ("Move robot1 to patty1 at table3", `plannerl.tasks.render.compact_action_sentences`) or the PDDL
form, with or without brackets (`(pick-up robot1 patty1 table3)`, `pick-up robot1 patty1 table3`). Matching ignores case,
spacing, brackets, commas, quotes, markdown emphasis, a leading list bullet and a trailing
full stop.

Three outcomes: `valid` (the action applies), `not_applicable` (a real action of the task whose
preconditions fail; `unmet` lists them, for error feedback), `unparseable` (`reason` says why).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from plannerl.tasks.answers import extract_answer
from plannerl.tasks.render import action_sentence, compact_action_sentences, task_templates

VALID = "valid"
NOT_APPLICABLE = "not_applicable"
UNPARSEABLE = "unparseable"

_NOISE = re.compile(r"[()\[\]{}<>,;\"'`*]")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
MAX_ANSWER_CHARS = 500
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class ParsedAction:
    """What a model's answer means in a state."""

    kind: str
    action: int | None
    reason: str
    unmet: list[str] = field(default_factory=list)
    answer: str = ""


def normalize(text: str) -> str:
    """Lower case, brackets/commas/quotes/emphasis gone, spaces collapsed, no trailing full stop."""
    text = _BULLET.sub("", " ".join(_NOISE.sub(" ", text.lower()).split()))
    while text.endswith((".", "!")):
        text = text[:-1].rstrip()
    return text


def _sentence_index(task) -> dict[str, list[int]]:
    """Normalised sentence -> action indices (ascending) over the whole task, built once per task.

    Looking an answer up here and testing only the few actions it names keeps parsing O(1) per
    answer; listing the state's applicable actions for every answer cost a policy step about as
    much as the simulator step itself. The price is paid once per task, one template fill per
    ground action (`_normalized_sentences`): 2,600-6,500 actions on a double_cheese_burger
    kitchen, a few ms.
    """
    index = task.caches.sentence_index
    if index is None:
        index = {}
        for action, sentence in enumerate(_normalized_sentences(task)):
            index.setdefault(sentence, []).append(action)
        task.caches.sentence_index = index
    return index


def _normalized_sentences(task) -> list[str]:
    """`normalize(action_sentence(task, a))` for every action, by index.

    Why not that expression itself: it cost 23 ms per double_cheese_burger instance, a tenth of
    a warm `plannerl eval`'s set-up. When a schema's template is already in normal form (lower
    case once lowered, single spaces, no brackets, quotes or trailing stop) and the action's
    arguments are plain names, normalising the filled template is the same as filling the
    lowered template with the lowered names, so only the other actions take the long way."""
    templates = task_templates(task).actions
    plain = {schema: template.lower() for schema, template in templates.items() if _is_normal_template(template)}
    lowered = {}  # each argument's lowered name, or None when it is not a plain name
    for action in task.actions:
        for arg in action.args:
            if arg not in lowered:
                lowered[arg] = arg.lower() if _PLAIN_NAME.fullmatch(arg.lower()) else None
    sentences = []
    for index, action in enumerate(task.actions):
        template = plain.get(action.schema)
        args = [lowered[arg] for arg in action.args]
        if template is not None and None not in args:
            sentences.append(template.format(*args))
        else:
            sentences.append(normalize(action_sentence(task, index)))
    return sentences


def _is_normal_template(template: str) -> bool:
    """Whether `normalize` leaves this template unchanged once lowered, whatever plain names fill
    it: words of letters and digits and numbered placeholders (`{0}`, `{}`), separated by single
    spaces, nothing else."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return False
    if any(field is not None and (spec or conversion or not (field == "" or field.isdigit()))
           for _, field, spec, conversion in parts):
        return False
    text = "".join(literal + ("\0" if field is not None else "") for literal, field, _, _ in parts)
    return bool(_NORMAL_TEMPLATE.fullmatch(text.lower()))


_NORMAL_TEMPLATE = re.compile(r"(?:[a-z][a-z0-9]*|\0)(?: (?:[a-z][a-z0-9]*|\0))*")


def parse_action(task, state: int, text: str) -> ParsedAction:
    """Read a model's answer in `state` (see the module docstring for what is accepted).

    Several actions may share a sentence (the cooking domain's cut leaves out the counts): the
    smallest-index one that applies is taken, else the closest one is reported as not applicable."""
    answer = extract_answer(text)
    if not answer:
        return ParsedAction(UNPARSEABLE, None, "empty answer: expected a line 'Action: <one valid action>'", [], answer)
    if len(answer) > MAX_ANSWER_CHARS:
        return ParsedAction(UNPARSEABLE, None, f"answer is {len(answer)} characters long, not one action", [], answer[:MAX_ANSWER_CHARS])
    key = normalize(answer)
    candidates = _sentence_index(task).get(key, [])
    by_pddl = task.find_action("(" + key + ")")
    if by_pddl is not None and by_pddl not in candidates:
        candidates = sorted([*candidates, by_pddl])
    if not candidates:
        compact = _compact_match(task, state, key)
        if compact is not None:
            return ParsedAction(VALID, compact, "", [], answer)
        return ParsedAction(UNPARSEABLE, None, _why_unknown(task, key), [], answer)
    for action in candidates:
        if task.is_applicable(state, action):
            return ParsedAction(VALID, action, "", [], answer)
    best = min(candidates, key=lambda a: (len(task.unmet_preconditions(state, a)), a))
    unmet = task.unmet_preconditions(state, best)
    reason = f"{task.actions[best].pddl} does not apply here: unmet {' '.join(unmet)}"
    return ParsedAction(NOT_APPLICABLE, best, reason, unmet, answer)


def _compact_match(task, state: int, key: str) -> int | None:
    """The applicable action whose compact sentence (`plannerl.tasks.render.compact_action_sentences`,
    the built-in model's answers) is `key`, or None. Such a sentence depends on the state, so
    only the state's own actions are tried, and only when the domain has compact action templates."""
    if not task_templates(task).compact_actions:
        return None
    valid = task.applicable(state)
    for action, sentence in zip(valid, compact_action_sentences(task, state, valid)):
        if normalize(sentence) == key:
            return action
    return None


def _why_unknown(task, key: str) -> str:
    words = key.split()
    arity = {schema.name: len(schema.params) for schema in task.domain.actions}
    if words and words[0] in arity:
        if len(words) - 1 != arity[words[0]]:
            return f"{words[0]} takes {arity[words[0]]} arguments, got {len(words) - 1}"
        unknown = [w for w in words[1:] if w not in task.objects]
        if unknown:
            return f"unknown object {unknown[0]!r}"
        return f"({' '.join(words)}) is not an action of this task (wrong argument types?)"
    return f"{key!r} matches no action of this task"


def match_answer(text: str, sentences: list[str], pddl_forms: list[str] | None = None) -> int | None:
    """The position in the candidate list that the answer names, or None.

    `sentences[i]` and `pddl_forms[i]` describe the same candidate (as in a dataset row's
    `optimal_actions` and `optimal_actions_pddl`); either list may be empty.
    """
    answer = extract_answer(text)
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    key = normalize(answer)
    for options in (sentences, pddl_forms or []):
        for position, option in enumerate(options):
            if normalize(option) == key:
                return position
    return None
