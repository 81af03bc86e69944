"""Compiled state -> the text an LLM reads: instructions, goal, state, recent actions, valid actions.

Sentences come from a templates file beside the domain (`cooking.pddl` ->
`cooking.templates.toml`): "patty1 is directly on top of table3", "Pick up patty1 from table3
using robot1". A domain without one gets a generic rendering that needs no templates at all:
facts and actions as `on(a, b)` and `stack(a, b)`, objects as "a is a block".

Everything comes out in a fixed order (objects by type then natural name, facts by the
domain's predicate order, actions by index), so one state always renders to the same bytes.
The model answers with one line `Action: <sentence>`; `plannerl.tasks.actions` reads it back.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

from plannerl.domains import DOMAINS_DIR
from plannerl.errors import PlannerlError
from plannerl.pddl.reader import Domain, parse_domain
from plannerl.tasks.answers import ANSWER_PREFIX, DEFAULT_HISTORY_LEN

GENERIC_INSTRUCTIONS = (
    "You are solving a planning problem in the PDDL domain {domain}. Each turn you take exactly one action "
    "that applies in the current state. Reach the goal in as few actions as possible."
)
ANSWER_FORMAT = (
    "Answer format: you may reason first, then end with exactly one line\n"
    f"{ANSWER_PREFIX} <one valid action, written exactly as listed>"
)
_FIELDS = {"instructions", "block_order", "types", "predicates", "actions", "compact"}


@dataclass(frozen=True)
class Templates:
    """Sentence templates for one domain; empty when the domain has no templates file."""

    path: Path | None = None
    instructions: str | None = None
    block_order: tuple[str, ...] = ()
    types: dict[str, str] = field(default_factory=dict)
    predicates: dict[str, str] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    compact: dict[str, str] = field(default_factory=dict)
    compact_actions: dict[str, str] = field(default_factory=dict)
    compact_typed: dict[tuple[str, str], str] = field(default_factory=dict)


def templates_path(domain) -> Path | None:
    """The templates file for a domain: beside its file, else the shipped one if the domain matches it.

    The shipped fallback lets a problem folder that only copied `cooking.pddl` still render in
    sentences; it is used only when that folder's domain declares the same predicates and
    actions as the shipped domain of that name.
    """
    beside = Path(domain.path).with_suffix(".templates.toml")
    if beside.is_file():
        return beside
    shipped = DOMAINS_DIR / f"{domain.name}.templates.toml"
    shipped_domain = DOMAINS_DIR / f"{domain.name}.pddl"
    if shipped.is_file() and shipped_domain.is_file() and _same_signature(domain, _parse_domain(shipped_domain)):
        return shipped
    return None


@lru_cache(maxsize=8)
def _parse_domain(path: Path) -> Domain:
    """The shipped domain, parsed once per process (every task rendered checks against it)."""
    return parse_domain(path)


def _same_signature(a, b) -> bool:
    def signature(domain):
        return (dict(domain.predicates), sorted((s.name, tuple(t for _, t in s.params)) for s in domain.actions))

    return signature(a) == signature(b)


def load_templates(domain) -> Templates:
    """The domain's templates (checked against it), or empty templates for a generic rendering."""
    path = templates_path(domain)
    if path is None:
        return Templates()
    arity = {name: len(args) for name, args in domain.predicates.items()}
    action_arity = {schema.name: len(schema.params) for schema in domain.actions}
    signature = (tuple(sorted(arity.items())), tuple(sorted(action_arity.items())), tuple(domain.supertype))
    return _load_templates(path.resolve(), path.stat().st_mtime_ns, signature)


@lru_cache(maxsize=16)
def _load_templates(path: Path, stamp: int, signature) -> Templates:
    arity, action_arity, type_names = dict(signature[0]), dict(signature[1]), signature[2]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PlannerlError(f"{path}: cannot read templates: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlannerlError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise PlannerlError(f"{path}: {unknown[0]}: unknown field (known: {', '.join(sorted(_FIELDS))})")
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise PlannerlError(f"{path}: instructions: must be a string")
    block_order = data.get("block_order", [])
    if not isinstance(block_order, list) or not all(isinstance(t, str) and t in type_names for t in block_order):
        raise PlannerlError(f"{path}: block_order: must be a list of the domain's types")
    types = _section(path, data, "types", {t: 1 for t in type_names}, "type", type_field=True)
    predicates = _section(path, data, "predicates", arity, "predicate")
    actions = _section(path, data, "actions", action_arity, "action")
    compact = data.get("compact", {})
    if not isinstance(compact, dict) or set(compact) - {"predicates", "actions", "typed"}:
        raise PlannerlError(f"{path}: [compact] may only hold [compact.predicates], [compact.actions] and "
                            "[compact.typed] tables")
    compact_actions = _section(path, compact, "actions", action_arity, "action", relations=arity, where_prefix="compact.")
    compact_typed = _typed_section(path, compact, arity, type_names)
    compact = _section(path, compact, "predicates", arity, "predicate", relations=arity, where_prefix="compact.")
    return Templates(path, instructions, tuple(block_order), types, predicates, actions, compact, compact_actions,
                     compact_typed)


def _typed_section(path: Path, compact: dict, arity: dict[str, int], type_names) -> dict[tuple[str, str], str]:
    """[compact.typed]: `"predicate type" = "template"`, a fact shown only when its first argument
    has that type, and only by the styles that ask for it (the "free" style)."""
    section = compact.get("typed", {})
    if not isinstance(section, dict):
        raise PlannerlError(f"{path}: [compact.typed] must be a table of \"predicate type\" = \"template\"")
    typed = {}
    for key, template in section.items():
        words = key.split()
        if len(words) != 2 or words[0] not in arity or words[1] not in type_names:
            raise PlannerlError(f"{path}: compact.typed.{key}: expected \"predicate type\" naming one of the "
                                "domain's predicates and types")
        checked = _section(path, {"typed": {words[0]: template}}, "typed", arity, "predicate", where_prefix="compact.")
        typed[words[0], words[1]] = checked[words[0]]
    return typed


def _section(path: Path, data: dict, name: str, arity: dict[str, int], kind: str, type_field: bool = False,
             relations: dict[str, int] | None = None, where_prefix: str = "") -> dict[str, str]:
    """A table of `kind = "template"` checked against the domain: placeholders are plain `{N}`;
    with `relations` (the [compact] tables) also `{N:predicate}` for a two-argument predicate,
    which names what the state relates to argument N."""
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise PlannerlError(f"{path}: [{where_prefix}{name}] must be a table of {kind} = \"template\"")
    for key, template in section.items():
        where = f"{path}: {where_prefix}{name}.{key}"
        if key not in arity:
            raise PlannerlError(f"{where}: the domain has no {kind} {key}")
        if not isinstance(template, str):
            raise PlannerlError(f"{where}: must be a string")
        try:
            fields = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise PlannerlError(f"{where}: bad template: {exc}") from None
        for f, spec, conversion in fields:
            if conversion or (spec and relations is None):  # a spec such as {0:>300000000} would build gigabyte strings
                raise PlannerlError(f"{where}: placeholder {{{f}}} may not have a format spec or conversion")
            if type_field and f == "type":
                continue
            if not f.isdigit() or int(f) >= arity[key]:
                raise PlannerlError(f"{where}: placeholder {{{f}}} but {key} takes {arity[key]} argument(s)")
            if spec and relations.get(spec) != 2:
                raise PlannerlError(f"{where}: {{{f}:{spec}}} needs a two-argument predicate, and {spec!r} is not one")
    return dict(section)


@lru_cache(maxsize=65536)
def natural_key(name: str) -> tuple:
    """`table2` before `table10` (cached: every prompt sorts every object and fact by it)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


@dataclass
class _RenderData:
    """What rendering derives once per task (every prompt of a task needs all of it), kept in
    `Task.caches.render`: its templates, action sentences by index, the object order and the
    fact sort key."""

    templates: Templates
    sentences: dict[int, str] = field(default_factory=dict)
    object_order: list[str] | None = None
    fact_key: Callable[[tuple], tuple] | None = None


def _cache(task) -> _RenderData:
    caches = task.caches
    if caches.render is None:
        caches.render = _RenderData(load_templates(task.domain))
    return caches.render


def task_templates(task) -> Templates:
    """The templates this task renders with (loaded once per task)."""
    return _cache(task).templates


def fact_sentence(task, atom) -> str:
    """One fact as a sentence ('' when its template hides it)."""
    template = task_templates(task).predicates.get(atom[0])
    if template is None:
        return f"{atom[0]}({', '.join(atom[1:])})" if len(atom) > 1 else atom[0]
    return template.format(*atom[1:])


def action_sentence(task, action_index: int) -> str:
    """The natural sentence for a ground action, e.g. 'Pick up patty1 from table3 using robot1'."""
    known = _cache(task).sentences
    sentence = known.get(action_index)
    if sentence is None:
        sentence = known[action_index] = _action_text(task, task.actions[action_index])
    return sentence


def action_sentences(task) -> list[str]:
    """Every ground action's sentence, by action index (a large task has thousands: use sparingly)."""
    return [action_sentence(task, index) for index in range(len(task.actions))]


def _action_text(task, action) -> str:
    template = task_templates(task).actions.get(action.schema)
    if template is None:
        return f"{action.schema}({', '.join(action.args)})" if action.args else action.schema
    return template.format(*action.args)


def compact_action_sentences(task, state: int, actions: list[int]) -> list[str]:
    """The built-in model's answers for `actions` in `state`: [compact.actions] templates, where
    `{N:pred}` names the objects x with (pred x argN) in the state ("nothing" when none); an
    action without such a template keeps its ordinary sentence.

    Why: with 16-27 stations a move's sentence names only a station, so choosing the right one
    means finding in the state which station holds the item needed next. A 4M-parameter model
    trained from scratch did not learn that lookup on a CPU budget (its move scores stayed flat
    over the stations). "Move robot1 to patty1 at table25" names the item first, so the choice
    is made on the item, which the goal names, and the station is then a copy."""
    templates = task_templates(task).compact_actions
    if not any(task.actions[a].schema in templates for a in actions):
        return [action_sentence(task, a) for a in actions]
    related = _related(task, state)
    return [action_sentence(task, a) if task.actions[a].schema not in templates
            else _fill(templates[task.actions[a].schema], task.actions[a].args, related) for a in actions]


def _related(task, state: int) -> dict[tuple[str, str], list[str]]:
    """(predicate, y) -> the objects x with (predicate x y) in `state`: what `{N:predicate}` names."""
    related: dict[tuple[str, str], list[str]] = {}
    for atom in task.true_facts(state):
        if len(atom) == 3:
            related.setdefault((atom[0], atom[2]), []).append(atom[1])
    return related


def _fill(template: str, args: Sequence[str], related: dict[tuple[str, str], list[str]] | None) -> str:
    """A [compact] template with `{N}` as argument N and `{N:predicate}` as the objects the
    state relates to it ("a and b", or "nothing"); without a state (`related` None) as argument N."""
    parts = []
    for text, f, spec, _ in string.Formatter().parse(template):
        parts.append(text)
        if f is None:
            continue
        arg = args[int(f)]
        if spec and related is not None:
            objects = sorted(related.get((spec, arg), []), key=natural_key)
            parts.append(" and ".join(objects) if objects else "nothing")
        else:
            parts.append(arg)
    return "".join(parts)


def _type_sentence(task, obj: str, type_name: str) -> str:
    template = task_templates(task).types.get(type_name)
    if template is None:
        return f"{obj} is a {type_name}"
    return template.format(obj, type=type_name)


def _object_order(task) -> list[str]:
    """The objects in prompt order (computed once per task: every state lists them all)."""
    cache = _cache(task)
    if cache.object_order is None:
        cache.object_order = _sorted_objects(task)
    return cache.object_order


def _sorted_objects(task) -> list[str]:
    domain = task.domain
    declared = {t: i for i, t in enumerate(domain.supertype)}
    order = task_templates(task).block_order

    def key(obj: str):
        type_name = task.objects[obj]
        group = next((i for i, t in enumerate(order) if domain.is_subtype(type_name, t)), len(order))
        return (group, declared.get(type_name, len(declared)), natural_key(obj))

    return sorted(task.objects, key=key)


def _fact_key(task):
    """The sort key of facts in prompts, remembered per fact for the task (the static facts and
    most fluent ones recur in every state)."""
    cache = _cache(task)
    if cache.fact_key is None:
        cache.fact_key = partial(_remembered_fact_key, {p: i for i, p in enumerate(task.domain.predicates)}, {})
    return cache.fact_key


def _remembered_fact_key(predicate_order: dict[str, int], known: dict[tuple, tuple], atom: tuple) -> tuple:
    found = known.get(atom)
    if found is None:
        found = known[atom] = (predicate_order.get(atom[0], len(predicate_order)), tuple(natural_key(a) for a in atom[1:]))
    return found


def state_lines(task, state: int) -> list[str]:
    """One line per object (stations, items, robot for cooking): its type, then its facts."""
    facts = sorted([*task.true_facts(state), *task.static_facts], key=_fact_key(task))
    by_subject: dict[str, list[str]] = {}
    general: list[str] = []
    for atom in facts:
        sentence = fact_sentence(task, atom)
        if not sentence:
            continue
        if len(atom) > 1:
            by_subject.setdefault(atom[1], []).append(sentence)
        else:
            general.append(sentence)
    lines = []
    for obj in _object_order(task):
        sentences = [s for s in [_type_sentence(task, obj, task.objects[obj]), *by_subject.get(obj, [])] if s]
        if sentences:
            lines.append(". ".join(sentences) + ".")
    if general:
        lines.append(". ".join(general) + ".")
    return lines


def goal_lines(task) -> list[str]:
    """The goal's facts in the problem's own order (a recipe lists its stack bottom up)."""
    problem = task.problem
    lines = [fact_sentence(task, atom) or "(" + " ".join(atom) + ")" for atom in problem.goal_pos]
    lines += ["it is not the case that " + (fact_sentence(task, atom) or "(" + " ".join(atom) + ")") for atom in problem.goal_neg]
    return lines


def instructions(task) -> str:
    text = task_templates(task).instructions
    return text if text is not None else GENERIC_INSTRUCTIONS.format(domain=task.domain_name)


def user_text(task, state: int, *, history: list[int] | None = None, show_valid: bool = True,
              history_len: int = DEFAULT_HISTORY_LEN) -> str:
    sections = ["Goal:\n" + "\n".join(f"- {line}" for line in goal_lines(task)),
                "Current state:\n" + "\n".join(state_lines(task, state))]
    if history_len > 0:
        recent = list(history or [])[-history_len:]
        if recent:
            first = len(history) - len(recent) + 1
            listed = "\n".join(f"{first + i}. {action_sentence(task, a)}" for i, a in enumerate(recent))
            sections.append(f"Previous actions (the last {len(recent)}, oldest first):\n{listed}")
        else:
            sections.append("Previous actions: none yet.")
    if show_valid:
        valid = task.applicable(state)
        listed = "\n".join(f"- {action_sentence(task, a)}" for a in valid) if valid else "(none)"
        sections.append("Valid actions:\n" + listed)
    sections.append(ANSWER_FORMAT)
    return "\n\n".join(sections)


def render_messages(task, state: int, *, history: list[int] | None = None, show_valid: bool = True,
                    history_len: int = DEFAULT_HISTORY_LEN) -> list[dict]:
    """System message (instructions) and user message (goal, state, history, valid actions, format)."""
    return [{"role": "system", "content": instructions(task)},
            {"role": "user", "content": user_text(task, state, history=history, show_valid=show_valid, history_len=history_len)}]


def render_prompt(task, state: int, *, history: list[int] | None = None, show_valid: bool = True,
                  history_len: int = DEFAULT_HISTORY_LEN) -> str:
    """The same content as `render_messages`, as one plain string (system text, blank line, user text)."""
    messages = render_messages(task, state, history=history, show_valid=show_valid, history_len=history_len)
    return "\n\n".join(m["content"] for m in messages) + "\n"


def compact_fact(task, atom, related: dict[tuple[str, str], list[str]] | None = None) -> str:
    """One fact in the compact style ('' when hidden): the templates' [compact.predicates], else
    the fact in PDDL form. `related` (`_related` of the state) fills `{N:predicate}`; a goal
    fact has no state, so there such a placeholder is just argument N."""
    template = task_templates(task).compact.get(atom[0])
    if template is None:
        return "(" + " ".join(atom) + ")"
    return _fill(template, atom[1:], related)


def compact_prompt(task, state: int, *, history: list[int] | None = None, history_len: int = DEFAULT_HISTORY_LEN,
                   todo: bool = False, focus: bool = False, typed: bool = False) -> str:
    """The prompt of the built-in model: goal, state facts and recent actions, nothing else.

    Why: the full prompt spends most of its tokens on what does not change (the instructions,
    a line per empty station) or what constrained decoding already knows (the valid actions);
    on randomised layouts with up to 24 extra stations it is ~4.5k characters. A model trained
    from scratch learns the format from the rows, so it needs only the facts that differ
    between states, and training and evaluation cost scale with tokens. Hub models keep the
    full prompt (`render_prompt`), which explains the task in words.

    With `todo` (the "todo" style) the goal lists only its facts not yet true, in the goal's
    order: a recipe's goal is its stack bottom up, so the first one left names what to fetch
    next. The tiny model otherwise has to find its place in the goal by matching it against the
    state, and on double_cheese_burger it learned the common binding (cheese1 first) instead.

    With `focus` as well (the "focus" style) each goal fact left is followed by what the state
    says of its objects now: the facts whose first argument is one of them ("(at ball1 rooma),
    now (carry ball1 left)"; "cheese1 on bread2, now cheese1 on table7, bread2 on table8").
    Why: the model must otherwise find, among all the state's facts, the ones that tie the
    objects the goal names to where they are, which the tiny model fails to do with more than
    a few names (Gripper's balls; which of two breads is the base). A fact is written once:
    beside the first goal fact about it, or in the state line.

    With `typed` (the "free" style) the templates' [compact.typed] table shows the facts whose
    first argument has a given type, even where [compact.predicates] hides them: in the
    kitchen, which stoves and boards are free. Why: the todo prompt names no empty station, so
    with every stove it can see taken the model cannot tell whether another stove is free,
    and walks to the patty where it must first clear the stove (docs/training.md, session 16).
    When no object of a type the task has holds such a fact, the template says so with "no
    <type>" as its argument ("no stove free"), since a tiny model learns little from a fact
    that is missing."""
    facts = sorted([*task.true_facts(state), *task.static_facts], key=_fact_key(task))
    related = _related(task, state)
    goal_pos, goal_neg = task.problem.goal_pos, task.problem.goal_neg
    if todo:
        true = set(task.true_facts(state)) | set(task.static_facts)
        goal_pos = [atom for atom in goal_pos if atom not in true]
        goal_neg = [atom for atom in goal_neg if atom in true]
    shown: set = set()  # with focus: state facts already written beside a goal fact
    about = _facts_by_subject(task, facts) if focus else {}
    goal = [text for text in (_focused_goal(task, atom, about, related, shown) if focus else compact_fact(task, atom)
                              for atom in goal_pos) if text]
    goal += ["not " + text for text in (compact_fact(task, atom) for atom in goal_neg) if text]
    shown_typed = task_templates(task).compact_typed if typed else {}
    typed_held: set[tuple[str, str]] = set()  # the [compact.typed] keys some fact of this state matched

    def state_fact(atom) -> str:
        key = (atom[0], task.objects.get(atom[1])) if shown_typed and len(atom) > 1 else None
        template = shown_typed.get(key) if key else None
        if template is None:
            return compact_fact(task, atom, related)
        typed_held.add(key)
        return _fill(template, atom[1:], related)

    state_texts = [state_fact(atom) for atom in facts if atom not in shown]
    if shown_typed:  # "no stove free": the absence, said outright, for a type the task has
        present = set(task.objects.values())
        state_texts += [_fill(template, [f"no {type_name}"], None) for (predicate, type_name), template in shown_typed.items()
                        if type_name in present and (predicate, type_name) not in typed_held]
    lines = ["Goal: " + (". ".join(goal) + "." if goal else "reached."),
             "State: " + ". ".join(text for text in state_texts if text) + "."]
    recent = list(history or [])[-history_len:] if history_len > 0 else []
    if history_len > 0:
        lines.append("Last: " + (". ".join(action_sentence(task, a) for a in recent) + "." if recent else "none."))
    return "\n".join(lines) + "\n"


FOCUS_FACTS = 3  # state facts shown per object of a goal fact at most: its place and a state or two


def _facts_by_subject(task, facts: list) -> dict[str, list]:
    """The fluent facts (static ones left out) by their first argument, in `facts`' order."""
    about: dict[str, list] = {}
    for fact in facts:
        if len(fact) > 1 and fact not in task.static_facts:
            about.setdefault(fact[1], []).append(fact)
    return about


def _focused_goal(task, atom, about: dict[str, list], related: dict[tuple[str, str], list[str]], shown: set) -> str:
    """A goal fact, then, for each of its objects, the facts about it (`about`: it is their first
    argument) not written already, at most FOCUS_FACTS; those go to `shown`."""
    text = compact_fact(task, atom)
    if not text:
        return text
    written = []
    for obj in dict.fromkeys(atom[1:]):
        kept = 0
        for fact in about.get(obj, ()):
            if kept == FOCUS_FACTS:
                break
            phrase = compact_fact(task, fact, related) if fact not in shown else ""
            if phrase:
                shown.add(fact)
                written.append(phrase)
                kept += 1
    return text + (", now " + ", ".join(written) if written else "")
