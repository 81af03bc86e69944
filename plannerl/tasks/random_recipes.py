"""The "random" task family: a fresh recipe per seed, so an agent must read the goal.

A shipped recipe is one fixed goal; a model trained on it can memorise the action sequence.
`random_recipe(seed)` draws a recipe from the cooking domain instead, shaped like the shipped
ones so that they lie inside the family:

- a stack of `layers` items (2-7, default the whole range), bottom first: a base (bottom bun or
  bread), fillings drawn with repetition from the other ingredient types, and with three or
  more layers the matching cap (top bun on a bottom bun, bread on bread);
- cooked and cut requirements where the type allows them: a patty is always cooked, as in
  every shipped recipe, and needs the stove (as in cooked_burger) with probability 3/4, else
  starts cooked (as in the paper's tasks); each cuttable type (lettuce, tomato, onion) is cut with
  probability 1/2, as long as at most `MAX_PREPARED` items need the stove or the board; the goal
  asks the top item to be clear with probability 1/4;
- a random base layout: the items shuffled into stacks on tables with one table left empty,
  a stove and a board where the recipe needs them, the robot at a random station.

The domain itself says nothing about which types cook or cut (any item can be made cookable
in a problem), so `COOKABLE` and `CUTTABLE` follow Robotouille's ingredients and the shipped
recipes (patties cook, lettuce and tomato cut; onion cuts in Robotouille too).

Exclusion: `exclude` names recipes (shipped or in $PLANNERL_RECIPES) whose goal a drawn recipe
must never equal. Goals compare by `goal_signature`: the layers in order, the cooked types and
the cut types (not the layout, start_cooked or clear_top, which do not change what must be
built). A drawn recipe with an excluded signature is redrawn from the same random stream, so
the same seed and the same exclusions always give the same recipe.

The step limit is not a recipe field here: the paper's fixed limits exist only for its four
tasks, so a random instance gets the rule of every other task, ceil(1.5 x its optimal length)
(`plannerl.tasks.generate.step_limit`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from plannerl.errors import PlannerlError
from plannerl.tasks.recipes import Recipe, cooking_types, int_range, list_recipes, load_recipe, parse_recipe

RANDOM_TASK = "random"
LAYER_RANGE = (2, 7)
# Base type -> the cap that closes a stack of three or more layers.
BASES = {"bottombun": "topbun", "bread": "bread"}
COOKABLE = ("patty",)
CUTTABLE = ("lettuce", "tomato", "onion")
# A quarter of patties start cooked: with even odds only 15% of recipes needed the stove, 87
# of a generalist's 18,804 rows were a cook step, and it stacked cooked_burger's raw patty
# (SR 0.05; docs/training.md, session 10).
START_COOKED_PROBABILITY = 0.25
CUT_PROBABILITY = 0.5
CLEAR_TOP_PROBABILITY = 0.25
# At most this many items to cook on a stove or cut on a board (as many as a shipped recipe
# has): with three or more, the optimal search at Robotouille's ranges often runs past 20 s.
MAX_PREPARED = 2
# Draws that may be redrawn because their goal is excluded; far more than six shipped goals need.
MAX_REDRAWS = 1000
_WORDS = {"bottombun": "bottom bun", "topbun": "top bun"}

GoalSignature = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def goal_signature(recipe: Recipe) -> GoalSignature:
    """What a recipe asks to be built: (layers bottom first, sorted cooked types, sorted cut types).

    Two recipes with equal signatures have the same goal whatever their layouts, so a held-out
    recipe is held out exactly when no training recipe shares its signature.
    """
    return recipe.layers, tuple(sorted(recipe.cooked)), tuple(sorted(recipe.cut))


def layer_range(layers: int | tuple[int, int] | list[int] | None = None) -> tuple[int, int]:
    """(low, high) from `None` (2-7), an int n (n-n) or a pair; anything outside 2-7 is an error."""
    return int_range("layers", layers, LAYER_RANGE, LAYER_RANGE)


def excluded_signatures(names: Iterable[str]) -> frozenset[GoalSignature]:
    """The goals of the named recipes; a name that is no known recipe is an error naming it."""
    if isinstance(names, str):
        names = [names]
    known = list_recipes()
    signatures = set()
    for name in names:
        if name not in known:
            raise PlannerlError(f"exclude: {name!r} is not a known recipe (known: {', '.join(known)})")
        signatures.add(goal_signature(load_recipe(name)))
    return frozenset(signatures)


def random_recipe(seed: int, *, exclude: Iterable[str] = (), layers: int | tuple[int, int] | None = None,
                  rng: random.Random | None = None) -> Recipe:
    """The recipe `random_s<seed>`: drawn from `rng` (default `random.Random(seed)`), redrawn while excluded.

    Pass `rng` to keep drawing from the same stream afterwards (the generator draws the
    instance's layout from it next), so one seed fixes recipe and layout together.
    """
    low, high = layer_range(layers)
    forbidden = excluded_signatures(exclude)
    rng = random.Random(seed) if rng is None else rng
    for _ in range(MAX_REDRAWS):
        recipe = _draw(rng, f"{RANDOM_TASK}_s{seed}", rng.randint(low, high))
        if goal_signature(recipe) not in forbidden:
            return replace(recipe, seed=seed)
    raise PlannerlError(f"exclude: no random recipe with {low}-{high} layers avoids the excluded goals "
                        f"after {MAX_REDRAWS} draws (seed {seed})")


def subgoal_recipe(parent: Recipe, rng: random.Random) -> Recipe | None:
    """A sub-goal of `parent` drawn from `rng`, never another known recipe's goal (None if the draws find none).

    Why: a model trained on one recipe sees one goal, so it learns that recipe's action
    sequence and ignores the goal in its prompt (a double_cheese_burger model scored 0.00 on
    burger). A sub-goal keeps the parent's base-and-cap shape and a random non-empty
    subsequence of its fillings, on either base (bottom bun or bread), with the parent's
    cooked and cut requirements for the types it keeps: the sub-tasks the paper's transfer
    claim is about. Every other known recipe's goal is excluded, so recipes not trained on
    stay held out; a draw of the parent's own goal gives the parent. The layout is drawn like a random
    recipe's (`_base`).
    """
    has_cap = len(parent.layers) > 2
    fillings = list(parent.layers[1:-1] if has_cap else parent.layers[1:])
    forbidden = excluded_signatures([name for name in list_recipes() if name != parent.name])
    for _ in range(MAX_REDRAWS):
        base = rng.choice(sorted(BASES))
        kept = [t for t in fillings if rng.random() < 0.5] or [rng.choice(fillings)]
        stack = [base, *kept, *([BASES[base]] if has_cap else [])]
        present = set(stack)
        cooked = [t for t in parent.cooked if t in present]
        start_cooked = [t for t in parent.start_cooked if t in present]
        cut = [t for t in parent.cut if t in present]
        data = {"description": describe(stack, cooked, cut), "layers": stack, "cooked": cooked,
                "start_cooked": start_cooked, "cut": cut, "clear_top": parent.clear_top,
                "base": _base(rng, stack, needs_stove=len(start_cooked) < len(cooked), needs_board=bool(cut))}
        recipe = parse_recipe(data, Path(f"{parent.name}_subgoal.toml"))
        if goal_signature(recipe) == goal_signature(parent):
            return parent
        if goal_signature(recipe) not in forbidden:
            return recipe
    return None


def _draw(rng: random.Random, name: str, size: int) -> Recipe:
    """One recipe of `size` layers; the order of the draws is part of the format (it fixes every seed's recipe)."""
    base = rng.choice(sorted(BASES))
    fillings = [t for t in cooking_types().items if t not in BASES and t not in BASES.values()]
    stack = [base] + [rng.choice(fillings) for _ in range(size - 1 if size == 2 else size - 2)]
    if size > 2:
        stack.append(BASES[base])
    present = list(dict.fromkeys(stack))
    cooked = [t for t in present if t in COOKABLE]
    # every draw is made whatever the cap decides, so the cap changes no later draw
    start_cooked = [t for t in cooked if rng.random() < START_COOKED_PROBABILITY or stack.count(t) > MAX_PREPARED]
    prepared = sum(stack.count(t) for t in cooked if t not in start_cooked)
    cut = []
    for type_name in (t for t in present if t in CUTTABLE):
        if rng.random() < CUT_PROBABILITY and prepared + stack.count(type_name) <= MAX_PREPARED:
            cut.append(type_name)
            prepared += stack.count(type_name)
    clear_top = rng.random() < CLEAR_TOP_PROBABILITY
    data = {"description": describe(stack, cooked, cut), "layers": stack, "cooked": cooked,
            "start_cooked": start_cooked, "cut": cut, "clear_top": clear_top,
            "base": _base(rng, stack, needs_stove=len(start_cooked) < len(cooked), needs_board=bool(cut))}
    return parse_recipe(data, Path(f"{name}.toml"))  # checked like a recipe file


def _base(rng: random.Random, stack: list[str], *, needs_stove: bool, needs_board: bool) -> dict:
    """An unrandomised layout: the items shuffled into 1..n stacks on tables, one empty table, a stove and a board if needed."""
    items = rng.sample(stack, len(stack))
    piles = rng.randint(1, len(items))
    cuts = sorted(rng.sample(range(1, len(items)), piles - 1))
    stacks = [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)])]
    stations = ["table"] * (piles + 1) + ["stove"] * needs_stove + ["board"] * needs_board
    stacks.append([])
    return {"stations": stations, "stacks": stacks, "robot": rng.randint(1, len(stations))}


def describe(stack: list[str], cooked: list[str], cut: list[str]) -> str:
    """`bottom bun, cooked patty, top bun`: the layers as the shipped recipes' descriptions say them."""
    words = []
    for type_name in stack:
        word = _WORDS.get(type_name, type_name)
        prefix = "cooked " if type_name in cooked else "cut " if type_name in cut else ""
        words.append(prefix + word)
    return ", ".join(words)


def recipe_data(recipe: Recipe) -> dict:
    """A recipe as the fields of a recipe file: `parse_recipe` reads it back, and instances.json records it."""
    return {"description": recipe.description, "layers": list(recipe.layers),
            "cooked": list(recipe.cooked), "start_cooked": list(recipe.start_cooked), "cut": list(recipe.cut),
            "clear_top": recipe.clear_top, "distractors": list(recipe.distractors),
            "base": {"stations": list(recipe.base_stations), "stacks": [list(s) for s in recipe.base_stacks],
                     "robot": recipe.base_robot + 1}}
