"""Seeded cooking instances in the spirit of Robotouille's randomiser.

From a recipe (`plannerl.tasks.recipes`) and a seed, `generate_instance` builds one PDDL problem:
the recipe's base stations plus extra ones (tables, and stoves or boards where the recipe
needs them), distractor items of types the recipe does not use, every item alone on a random
station (items of the base layer's type on tables), the robot at a random station and
sometimes already holding one of the items. Everything random comes from one
`random.Random(seed)`, drawn in a fixed order, so a seed always gives the same problem text.

How much randomisation: `DEFAULT_RANGES` follows Robotouille's randomiser (0-24 extra
stations, 0-8 distractor items); every range is a keyword argument of `generate_instance` and
`write_instances`, so a quick experiment can ask for less.

The task "random" takes its recipe from the seed too (`plannerl.tasks.random_recipes`): the
recipe is drawn first, then the layout, from the same stream; `exclude` keeps held-out goals out.

Goal binding. Robotouille's goals say "a patty", "a table"; a PDDL goal names objects, and
the names must be chosen as the best assignment would or the optimal length changes. The rule,
per item type, gives the lowest layers of that type to the items that are cheapest to reach
first, ordered by: held by the robot, then fewest items stacked above it, then standing at the
robot's station, then name. The stack is built on the table the base item stands on (when the
robot holds the base item: the robot's station if it is an empty table, else the first empty
table). tests/test_generate.py checks the rule against a brute force over all bindings.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from itertools import permutations, product
from pathlib import Path

from plannerl.atomic import check_writable
from plannerl.errors import LimitError, NoPlanError, PlannerlError, StateLimitError
from plannerl.parallel import check_jobs, map_seeds
from plannerl.tasks.random_recipes import RANDOM_TASK, layer_range, random_recipe, recipe_data, subgoal_recipe
from plannerl.tasks.recipes import (
    COOKING_DOMAIN,
    COOKING_TEMPLATES,
    Recipe,
    RecipeError,
    int_range,
    list_recipes,
    load_recipe,
)
from plannerl.tasks.render import natural_key


@dataclass(frozen=True)
class Ranges:
    """How much a seed may change the layout. Ranges are inclusive (low, high)."""

    extra_stations: tuple[int, int] = (0, 24)
    distractors: tuple[int, int] = (0, 8)
    hold_probability: float = 0.25
    blocked: float = 0.0  # chance every empty stove and board the recipe needs starts occupied (`block_stations`)
    # the goal binding breaks ties between interchangeable items at random, not by name (`candidate_bindings`)
    random_ties: bool = False


# Robotouille's randomiser: up to 24 extra stations and 8 distractor items (docs/data.md).
DEFAULT_RANGES = Ranges()
MAX_RANGE = 64
COUNTS = ("zero", "one", "two", "three")
# A random draw whose optimal search stores more states than this is redrawn (`_random_instance`).
# Measured on seeds 1050-1089 at the training hold probability (0.6): budgets of 50k and 150k
# states redraw the same 11 first draws (each needs more than 150k), and 50k reaches each
# verdict sooner (60 s for the 40 seeds against 124 s at 150k; 0.5M took about 30 s per redraw).
RANDOM_MAX_STATES = 50_000
MAX_HARD_REDRAWS = 100


@dataclass
class Layout:
    """Where everything starts: stations, stacks (bottom first), the robot and its hand."""

    stations: list[tuple[str, str]]
    stacks: dict[str, list[str]]
    items: list[tuple[str, str]]
    robot_station: str
    held: str | None
    distractors: list[str] = field(default_factory=list)

    def station_type(self, name: str) -> str:
        return dict(self.stations)[name]


@dataclass(frozen=True)
class Instance:
    """One generated problem: its text, the goal binding chosen, and (once solved) its optimal length."""

    task_name: str
    seed: int | None
    name: str
    problem_text: str
    domain_path: Path
    layers: tuple[str, ...]
    build_table: str
    stations: int
    distractors: int
    holding: str | None
    bindings_tried: int = 1
    optimal_length: int | None = None
    # (task, oracle, plan) of the search that chose the binding, reused by `solve_instance`
    solved: tuple | None = field(default=None, compare=False, repr=False)
    # the recipe it was generated from: for the random family the only record of its goal's source
    recipe: Recipe | None = field(default=None, compare=False, repr=False)

    @property
    def file_name(self) -> str:
        return f"{self.name}.pddl"

    def load_task(self):
        """The compiled task (`plannerl.pddl.task.Task`) of this problem."""
        from plannerl.pddl.reader import parse_problem
        from plannerl.pddl.task import compile_task

        domain = _domain(self.domain_path)
        return compile_task(domain, parse_problem(self.file_name, domain, self.problem_text))


@lru_cache(maxsize=4)
def _domain(path: Path):
    from plannerl.pddl.reader import parse_domain

    return parse_domain(path)


def list_tasks() -> list[str]:
    """Every task a recipe file defines: the shipped ones and those in $PLANNERL_RECIPES."""
    return list_recipes()


def known_tasks() -> list[str]:
    """Every task name `generate_instance` takes: the recipe tasks, then the random family."""
    return [*list_recipes(), RANDOM_TASK]


def is_random(task_name: str) -> bool:
    """True for the random family (a fresh recipe per seed, `plannerl.tasks.random_recipes`)."""
    return task_name == RANDOM_TASK


def paper_step_limit(task_name: str) -> int | None:
    """The paper's multi-turn step limit (1.5x the unrandomised optimum), None for other tasks."""
    return None if is_random(task_name) else load_recipe(task_name).step_limit


def step_limit(task_name: str, optimal_length: int) -> int:
    """An episode's step limit: the paper's fixed one for its four tasks, else ceil(1.5 x the optimal length)."""
    paper = paper_step_limit(task_name)
    return paper if paper is not None else math.ceil(1.5 * optimal_length)


def make_ranges(extra_stations=None, distractors=None, hold_probability=None, blocked=None, random_ties=None) -> Ranges:
    """Ranges from keyword values: an int n means (n, n); None keeps the default."""
    default = DEFAULT_RANGES
    return Ranges(check_count_range("extra_stations", extra_stations, default.extra_stations),
                  check_count_range("distractors", distractors, default.distractors),
                  _probability("hold_probability", hold_probability, default.hold_probability),
                  _probability("blocked", blocked, default.blocked),
                  default.random_ties if random_ties is None else bool(random_ties))


def check_count_range(option: str, value, default: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """A station or item count range (None: `default`), or one error naming `option` as the
    user wrote it (`distractors`, `--distractors`, `runs/x.toml: data.distractors`)."""
    return int_range(option, value, default, (0, MAX_RANGE))


def parse_range(option: str, text: str | int | None) -> tuple[int, int] | None:
    """A range as users write it: `3` -> (3, 3), `0-3` -> (0, 3), None or "" -> None (the default);
    anything else is an error naming `option`."""
    if text is None or text == "":
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    parts = text.split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise PlannerlError(f"{option} {text!r}: expected N or LOW-HIGH, e.g. 0-3")
    return (int(parts[0]), int(parts[-1]))  # the ranges' own checks (`int_range`) refuse LOW > HIGH


def _probability(option: str, value, default: float) -> float:
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise PlannerlError(f"{option}: expected a number from 0 to 1, got {value!r}")
    return float(value)


def generate_instance(task_name: str, seed: int, *, best_binding: bool = True, time_limit: float | None = None,
                      exclude: Iterable[str] = (), layers: int | tuple[int, int] | None = None, subgoals: float = 0.0,
                      max_states: int | None = None, **ranges) -> Instance:
    """The randomised instance of `task_name` for `seed` (same seed, same text).

    With `best_binding` (the default) every goal binding that could change the optimal length
    is solved and the shortest kept (ties: the rule's order); the instance then carries its
    optimal length and the search, so `solve_instance` costs nothing more. Without it, the
    rule's binding is taken unsolved (fast, but a corner case may be one step longer).

    `task_name` "random" draws the recipe from the seed first (`random_recipe`, with `layers`
    its stack height range and `exclude` the recipes whose goals it must avoid), then the
    layout from the same stream: the instance `random_s<seed>` carries that recipe.

    `subgoals` (a recipe task, training data): the chance that the seed builds a sub-goal of
    the recipe instead (`subgoal_recipe`, instance `<recipe>_subgoal_<seed>`). The choice and
    the sub-goal come from a stream of their own, so a seed that keeps the recipe gives the
    same instance as with `subgoals` 0.

    `max_states` bounds each optimal search of a recipe's goal bindings (a `StateLimitError`
    past it); the random family always uses its own `RANDOM_MAX_STATES`.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise PlannerlError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(seed)
    resolved = make_ranges(**ranges)
    if is_random(task_name):
        return _random_instance(seed, rng, resolved, best_binding, time_limit, exclude=exclude, layers=layers)
    recipe = task_recipe(task_name, seed, rng, exclude=exclude, layers=layers)
    if subgoals:
        subgoal_rng = random.Random(f"subgoal:{seed}")
        if subgoal_rng.random() < subgoals:
            recipe = subgoal_recipe(recipe, subgoal_rng) or recipe
    layout = random_layout(recipe, rng, resolved)
    return _instance(recipe, seed, f"{recipe.name}_{seed}", layout, best_binding, time_limit, task_name=task_name,
                     max_states=max_states, ties=_tie_stream(seed, resolved))


def _random_instance(seed: int, rng: random.Random, ranges: Ranges, best_binding: bool, time_limit: float | None, *,
                     exclude: Iterable[str], layers: int | tuple[int, int] | None) -> Instance:
    """The random family's instance for `seed`: recipe and layout redrawn from `rng` while too hard to solve.

    A few draws (about 1 in 50) need millions of states to solve optimally: they would stall
    data generation, or stop it at the planner's limit. A draw whose search exceeds
    `RANDOM_MAX_STATES` is therefore not a member of the family. A state count, unlike a time
    limit, does not depend on the machine, so the same seed always gives the same instance. The
    instance is always solved here (it must be, to know it is a member), under that budget; its
    oracle then labels further states without it.
    """
    for _ in range(MAX_HARD_REDRAWS):
        recipe = random_recipe(seed, exclude=exclude, layers=layers, rng=rng)
        layout = random_layout(recipe, rng, ranges)
        try:
            instance = _instance(recipe, seed, recipe.name, layout, best_binding, time_limit, task_name=RANDOM_TASK,
                                 max_states=RANDOM_MAX_STATES, ties=_tie_stream(seed, ranges))
            solved = solve_instance(instance, time_limit=time_limit, max_states=RANDOM_MAX_STATES)  # kept if _instance solved it
            instance = replace(instance, optimal_length=len(solved[2]), solved=solved)
        except StateLimitError:
            continue
        instance.solved[1].max_states = None
        return instance
    raise LimitError(f"random seed {seed}: {MAX_HARD_REDRAWS} draws in a row needed more than "
                     f"{RANDOM_MAX_STATES} states to solve")


def task_recipe(task_name: str, seed: int, rng: random.Random, *, exclude: Iterable[str] = (),
                layers: int | tuple[int, int] | None = None) -> Recipe:
    """The recipe a seed of `task_name` builds: the recipe file, or for "random" one drawn from `rng`.

    `exclude` and `layers` shape only the random family, so giving them for a recipe task is
    an error rather than silently ignored.
    """
    if is_random(task_name):
        return random_recipe(seed, exclude=exclude, layers=layers, rng=rng)
    recipe = load_recipe(task_name)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    if exclude or layers is not None:
        option = "exclude" if exclude else "layers"
        raise PlannerlError(f"{option}: applies only to the {RANDOM_TASK!r} task, not to {task_name!r}")
    return recipe


def check_task(task_name: str, *, exclude: Iterable[str] = (), layers: int | tuple[int, int] | None = None) -> str:
    """The name instances of `task_name` are filed under, once the task and its options are checked.

    Called before any folder is made or search started, so a typo costs nothing.
    """
    recipe = task_recipe(task_name, 0, random.Random(0), exclude=exclude, layers=layers)
    return RANDOM_TASK if is_random(task_name) else recipe.name


def base_instance(task_name: str, *, best_binding: bool = True, time_limit: float | None = None) -> Instance:
    """Robotouille's unrandomised layout of `task_name`, as the recipe's [base] describes it."""
    if is_random(task_name):
        raise PlannerlError(f"task {RANDOM_TASK!r} has no unrandomised layout (its recipe comes from the seed): give seeds")
    recipe = load_recipe(task_name)
    return _instance(recipe, None, f"{recipe.name}_base", base_layout(recipe), best_binding, time_limit)


def _tie_stream(seed: int, ranges: Ranges) -> random.Random | None:
    """The draws that break binding ties when `ranges.random_ties`: a stream of their own, so
    the seed's other draws (recipe, layout) stay the same."""
    return random.Random(f"ties:{seed}") if ranges.random_ties else None


def _instance(recipe: Recipe, seed: int | None, name: str, layout: Layout, best_binding: bool,
              time_limit: float | None, *, task_name: str | None = None, max_states: int | None = None,
              ties: random.Random | None = None) -> Instance:
    """The instance of the best binding (`task_name` defaults to the recipe's name; `ties`:
    `candidate_bindings`)."""
    bindings = candidate_bindings(recipe, layout, ties)
    if not best_binding:
        bindings = bindings[:1]
    best = None
    for layers, table in bindings:
        text = problem_text(recipe, layout, name, layers, table, seed)
        instance = Instance(task_name or recipe.name, seed, name, text, COOKING_DOMAIN, tuple(layers), table,
                            len(layout.stations), len(layout.distractors), layout.held, len(bindings),
                            recipe=recipe)
        if len(bindings) == 1:
            return instance
        solved = solve_instance(instance, time_limit=time_limit, max_states=max_states)
        if best is None or len(solved[2]) < best.optimal_length:
            best = replace(instance, optimal_length=len(solved[2]), solved=solved)
    return best


def _name_stations(types: list[str]) -> list[tuple[str, str]]:
    counter: dict[str, int] = {}
    named = []
    for type_name in types:
        counter[type_name] = counter.get(type_name, 0) + 1
        named.append((f"{type_name}{counter[type_name]}", type_name))
    return named


def _name_items(types: Iterable[str], counter: dict[str, int]) -> list[tuple[str, str]]:
    named = []
    for type_name in types:
        counter[type_name] = counter.get(type_name, 0) + 1
        named.append((f"{type_name}{counter[type_name]}", type_name))
    return named


def base_layout(recipe: Recipe) -> Layout:
    stations = _name_stations(list(recipe.base_stations))
    counter: dict[str, int] = {}
    stacks: dict[str, list[str]] = {}
    items: list[tuple[str, str]] = []
    for (station, _), stack in zip(stations, recipe.base_stacks):
        named = _name_items(stack, counter)
        items += named
        if named:
            stacks[station] = [item for item, _ in named]
    return Layout(stations, stacks, items, stations[recipe.base_robot][0], None)


def random_layout(recipe: Recipe, rng: random.Random, ranges: Ranges) -> Layout:
    """Draw a layout. The order of the draws is part of the format: changing it changes every instance."""
    station_types = list(recipe.base_stations)
    extra = rng.randint(*ranges.extra_stations)
    station_types += [rng.choice(recipe.station_types) for _ in range(extra)]
    n_distractors = rng.randint(*ranges.distractors) if recipe.distractors else 0
    distractor_types = [rng.choice(recipe.distractors) for _ in range(n_distractors)]
    counter: dict[str, int] = {}
    required = _name_items(recipe.layers, counter)
    distractors = _name_items(distractor_types, counter)
    items = required + distractors
    held = rng.choice(items)[0] if rng.random() < ranges.hold_probability else None
    placed = [(item, type_name) for item, type_name in items if item != held]
    on_tables = [item for item, type_name in placed if type_name == recipe.layers[0]]
    elsewhere = [item for item, type_name in placed if type_name != recipe.layers[0]]
    # capacity: one item per station, base-layer items on tables, and one table left empty
    while station_types.count("table") < len(on_tables) + 1:
        station_types.append("table")
    while len(station_types) < len(placed) + 1:
        station_types.append("table")
    stations = _name_stations(station_types)
    tables = [name for name, type_name in stations if type_name == "table"]
    stacks: dict[str, list[str]] = {}
    for item, station in zip(on_tables, rng.sample(tables, len(on_tables))):
        stacks[station] = [item]
    free_tables = [t for t in tables if t not in stacks]
    spare = rng.choice(free_tables)
    free = [name for name, _ in stations if name not in stacks and name != spare]
    for item, station in zip(elsewhere, rng.sample(free, len(elsewhere))):
        stacks[station] = [item]
    robot_station = rng.choice(stations)[0]
    layout = Layout(stations, stacks, items, robot_station, held, [item for item, _ in distractors])
    if ranges.blocked and rng.random() < ranges.blocked:
        block_stations(recipe, layout, rng)
    return layout


def block_stations(recipe: Recipe, layout: Layout, rng: random.Random) -> None:
    """Occupy every empty stove (board) the recipe needs, in place: the robot must clear one first.

    Why: that start is where generalists failed most (docs/training.md, session 17).
    Robotouille's layouts make it common in cooked_burger (23% of its instances need to clear
    the stove) but rare in random recipes, few of which cook: of a generalist's 52,138 rows, 22
    picked an item off a stove to free it. Each empty station takes an item that stands alone on
    a station of a type not being blocked, is not of the base layer's type (those stay on tables) and is not
    prepared on this station type (a patty on the stove would just cook); where none is left, a
    new distractor item of a type outside the recipe. Each station still holds one item.
    """
    needed = {"stove": set(recipe.cooked) - set(recipe.start_cooked), "board": set(recipe.cut)}
    blocked_types = {station_type for station_type, prepared in needed.items() if prepared}
    types = dict(layout.items)
    counter = Counter(types.values())  # items per type, so a new distractor takes the next free number
    for station_type, prepared in needed.items():
        if not prepared:
            continue
        empty = [name for name, kind in layout.stations if kind == station_type and not layout.stacks.get(name)]
        movable = [name for name, items in sorted(layout.stacks.items(), key=lambda pair: natural_key(pair[0]))
                   if len(items) == 1 and layout.station_type(name) not in blocked_types
                   and types[items[0]] != recipe.layers[0] and types[items[0]] not in prepared]
        moved = rng.sample(movable, min(len(empty), len(movable)))
        for target, source in zip(empty, moved):
            layout.stacks[target] = layout.stacks.pop(source)
        if recipe.distractors:
            for target in empty[len(moved):]:
                item, type_name = _name_items([rng.choice(recipe.distractors)], counter)[0]
                layout.items.append((item, type_name))
                layout.distractors.append(item)
                types[item] = type_name
                layout.stacks[target] = [item]


def candidate_bindings(recipe: Recipe, layout: Layout, ties: random.Random | None = None) -> list[tuple[list[str], str]]:
    """Every goal binding that can differ in optimal length, the rule's choice first.

    A binding is the item for each layer (bottom first) and the table the stack is built on.
    Items of one type that each stand alone on a table away from the robot are interchangeable
    (swapping two of them, with their tables, maps the problem onto itself), so only the
    placement of the other, "special" items among a type's layers needs trying: the held item,
    items in a stack, items on a stove or board, and the item at the robot's station when the
    robot holds something. With an empty hand, the item at the robot's station takes its type's
    lowest layer (picking it up at once is never worse); the brute-force test checks this.

    The rule order ranks a type's items for its lowest layers: held, then fewest items above it,
    then at the robot's station, then name; with `ties` (training instances, `data.random_ties`)
    a random rank drawn from it instead of the name. Why: by name, a goal whose breads are
    equally placed always builds on bread1, and a model trained on such goals builds on bread1
    even where the goal names bread2 (docs/training.md, session 20); at random, only the goal
    says which bread is the base.
    """
    station_of: dict[str, str] = {}
    depth: dict[str, int] = {}
    for station, stack in layout.stacks.items():
        for height, item in enumerate(stack):
            station_of[item] = station
            depth[item] = len(stack) - 1 - height
    station_types = dict(layout.stations)

    if ties is None:
        last = {item: natural_key(item) for item, _ in layout.items}
    else:
        names = sorted((item for item, _ in layout.items), key=natural_key)
        last = dict(zip(ties.sample(names, len(names)), range(len(names))))

    def rule_key(item: str) -> tuple:
        if item == layout.held:
            return (0, 0, 0, last[item])
        return (1, depth[item], 0 if station_of[item] == layout.robot_station else 1, last[item])

    def special(item: str) -> bool:
        if item == layout.held:
            return True
        station = station_of[item]
        if len(layout.stacks[station]) > 1 or station_types[station] != "table":
            return True
        # with an empty hand the item at the robot's station simply comes first (the rule);
        # with a full hand the robot may put its load down on it, which can favour a higher layer
        return station == layout.robot_station and layout.held is not None

    groups: dict[str, list[str]] = {}
    for type_name in recipe.layers:
        groups.setdefault(type_name, [])
    for item, type_name in layout.items:
        if item not in layout.distractors:
            groups[type_name].append(item)
    options: dict[str, list[list[str]]] = {}
    for type_name, items in groups.items():
        ranked = sorted(items, key=rule_key)
        options[type_name] = _layer_orders(ranked, [item for item in ranked if special(item)])

    bindings = []
    for choice in product(*options.values()):
        by_type = {type_name: iter(order) for type_name, order in zip(options, choice)}
        layers = [next(by_type[type_name]) for type_name in recipe.layers]
        bindings.append((layers, _build_table(recipe, layout, layers[0], station_of)))
    return bindings



def _layer_orders(ranked: list[str], specials: list[str]) -> list[list[str]]:
    """A type's items in every order that places its special items differently among its
    layers (the plain items keep their rule order), the rule's own order first."""
    plain = [item for item in ranked if item not in specials]
    orders = [ranked]
    for positions in permutations(range(len(ranked)), len(specials)):
        order: list[str | None] = [None] * len(ranked)
        for item, position in zip(specials, positions):
            order[position] = item
        rest = iter(plain)
        filled = [item if item is not None else next(rest) for item in order]
        if filled not in orders:
            orders.append(filled)
    return orders

def _build_table(recipe: Recipe, layout: Layout, base: str, station_of: dict[str, str]) -> str:
    """The base's own table; a held base goes on the robot's station if it is an empty table, else the first empty table."""
    station_types = dict(layout.stations)
    if base == layout.held:
        if station_types[layout.robot_station] == "table" and layout.robot_station not in layout.stacks:
            return layout.robot_station
        empty = sorted((s for s, t in layout.stations if t == "table" and s not in layout.stacks), key=natural_key)
        if not empty:
            raise RecipeError(recipe.path, "base", "no empty table to build on")
        return empty[0]
    table = station_of[base]
    if station_types[table] != "table":
        raise RecipeError(recipe.path, "base.stacks", f"the base item {base} must start on a table, not on {table}")
    return table


def _header(recipe: Recipe, layout: Layout, seed: int | None) -> list[str]:
    """Comment lines saying where the problem came from: a recipe file, or the random recipe it spells out."""
    origin = "unrandomised layout" if seed is None else f"seed {seed}"
    source = f"a random recipe ({recipe.description})" if recipe.seed is not None else recipe.path.name
    held = f", robot holding {layout.held}" if layout.held else ""
    return [f"; {recipe.name} ({origin}): generated by plannerl from {source}.",
            f"; {len(layout.stations)} stations, {len(layout.distractors)} distractor items{held}."]


def problem_text(recipe: Recipe, layout: Layout, name: str, layers: list[str], table: str, seed: int | None) -> str:
    """The PDDL problem, facts in a fixed order (robot, stations, stacks, properties)."""
    robot = "robot1"
    types = dict(layout.items)
    cookable = [item for item, t in layout.items if t in recipe.cooked]
    cuttable = [item for item, t in layout.items if t in recipe.cut]
    objects: dict[str, list[str]] = {"robot": [robot]}
    for station, type_name in layout.stations:
        objects.setdefault(type_name, []).append(station)
    for item, type_name in layout.items:
        objects.setdefault(type_name, []).append(item)
    if cuttable:
        objects["count"] = list(COUNTS)

    init = [f"(at {robot} {layout.robot_station})"]
    init.append(f"(holding {robot} {layout.held}) (clear {layout.held})" if layout.held else f"(hand-empty {robot})")
    init.append(" ".join(f"(vacant {s})" for s, _ in layout.stations if s != layout.robot_station))
    for station, _ in layout.stations:
        stack = layout.stacks.get(station)
        if not stack:
            init.append(f"(empty {station})")
            continue
        facts = [f"(on-station {stack[0]} {station}) (in {stack[0]} {station})"]
        facts += [f"(on {upper} {lower}) (in {upper} {station})" for lower, upper in zip(stack, stack[1:])]
        facts.append(f"(clear {stack[-1]})")
        init.append(" ".join(facts))
    for item in cookable:
        init.append(f"(cookable {item})" + (f" (cooked {item})" if types[item] in recipe.start_cooked else ""))
    for item in cuttable:
        init.append(f"(cuttable {item}) (cut-progress {item} zero)")
    if cuttable:
        init.append(" ".join(f"(next-count {a} {b})" for a, b in zip(COUNTS, COUNTS[1:])))

    goal = [f"(on-station {layers[0]} {table})"]
    for lower, upper in [(None, layers[0]), *zip(layers, layers[1:])]:
        if lower is not None:
            goal.append(f"(on {upper} {lower})")
        if types[upper] in recipe.cooked:
            goal.append(f"(cooked {upper})")
        if types[upper] in recipe.cut:
            goal.append(f"(cut-progress {upper} three)")
    if recipe.clear_top:
        goal.append(f"(clear {layers[-1]})")

    lines = [
        *_header(recipe, layout, seed),
        f"(define (problem {name})",
        "  (:domain cooking)",
        "  (:objects",
        *(f"    {' '.join(names)} - {type_name}" for type_name, names in objects.items()),
        "  )",
        "  (:init",
        *(f"    {line}" for line in init if line),
        "  )",
        "  (:goal (and",
        *(f"    {fact}" for fact in goal),
        "  )))",
    ]
    return "\n".join(lines) + "\n"


def solve_instance(instance: Instance, *, time_limit: float | None = None, max_states: int | None = None):
    """(task, oracle, canonical plan); an unsolvable instance is an error naming it."""
    if instance.solved is not None:
        return instance.solved
    from plannerl.planning.oracle import make_oracle

    task = instance.load_task()
    oracle = make_oracle(task, time_limit=time_limit, max_states=max_states)
    try:
        plan = oracle.canonical_plan()
    except NoPlanError as exc:
        raise PlannerlError(f"instance {instance.name} of {instance.task_name} has no plan ({exc})") from None
    except LimitError as exc:
        raise type(exc)(f"instance {instance.name} of {instance.task_name}: {exc}") from None
    return task, oracle, plan


def instance_record(instance: Instance, plan_length: int) -> dict:
    """One entry of `instances.json`; a random instance adds its recipe and step limit (nothing else records them)."""
    record = {"name": instance.name, "seed": instance.seed, "problem": instance.file_name, "optimal_length": plan_length,
              "stations": instance.stations, "distractors": instance.distractors, "holding": instance.holding,
              "build_table": instance.build_table, "layers": list(instance.layers)}
    if instance.recipe is not None and instance.recipe.seed is not None:
        record["step_limit"] = step_limit(instance.task_name, plan_length)
        record["recipe"] = recipe_data(instance.recipe)
    return record


def write_instance_folder(out_dir: Path, instances: list[Instance], lengths: list[int], *, task_name: str,
                          ranges: Ranges | None, extra: dict | None = None) -> list[Path]:
    """Domain, templates and problems first, the `instances.json` index last (`extra`: more top-level keys)."""
    from plannerl import atomic

    index = out_dir / "instances.json"
    index.unlink(missing_ok=True)
    atomic.write_text(out_dir / COOKING_DOMAIN.name, COOKING_DOMAIN.read_text(encoding="utf-8"))
    if COOKING_TEMPLATES.is_file():
        atomic.write_text(out_dir / COOKING_TEMPLATES.name, COOKING_TEMPLATES.read_text(encoding="utf-8"))
    paths = [atomic.write_text(out_dir / inst.file_name, inst.problem_text) for inst in instances]
    atomic.write_json(index, {
        "task": task_name,
        "domain": COOKING_DOMAIN.name,
        "ranges": None if ranges is None else {"extra_stations": list(ranges.extra_stations),
                                               "distractors": list(ranges.distractors),
                                               "hold_probability": ranges.hold_probability,
                                               **({"blocked": ranges.blocked} if ranges.blocked else {}),
                                               **({"random_ties": True} if ranges.random_ties else {})},
        **(extra or {}),
        "instances": [instance_record(inst, n) for inst, n in zip(instances, lengths)],
    })
    return paths


def write_instances(task_name: str, seeds: Iterable[int], out_dir: str | Path, *,
                    progress: Callable[[Instance, int], None] | None = None, time_limit: float | None = None,
                    jobs: int = 1, exclude: Iterable[str] = (), layers: int | tuple[int, int] | None = None,
                    **ranges) -> list[Path]:
    """Write one problem per seed, the domain beside them, and `instances.json` with optimal lengths.

    Every instance is solved before anything is written, so a failure leaves the folder as it was.
    `jobs` > 1 solves the seeds in that many processes (`map_seeds`); the files are the same.
    `exclude` and `layers` are the random family's (`generate_instance`), checked before any work.
    """
    resolved = make_ranges(**ranges)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    name = check_task(task_name, exclude=exclude, layers=layers)
    extra = {"layers": list(layer_range(layers)), "exclude": sorted(set(exclude))} if is_random(task_name) else None
    check_jobs(jobs)
    out = check_writable(out_dir)
    report = None if progress is None else (lambda solved: progress(*solved))
    work = partial(solved_instance, task_name, time_limit=time_limit, ranges=ranges, exclude=exclude, layers=layers)
    solved = map_seeds(work, seeds, jobs=jobs, progress=report)
    return write_instance_folder(out, [inst for inst, _ in solved], [n for _, n in solved],
                                 task_name=name, ranges=resolved, extra=extra)


def solved_instance(task_name: str, seed: int, *, time_limit: float | None = None, ranges: dict | None = None,
                    exclude: Iterable[str] = (), layers: int | tuple[int, int] | None = None) -> tuple[Instance, int]:
    """(instance without its search, optimal length) for one seed: the unit of work of `write_instances`."""
    instance = generate_instance(task_name, seed, time_limit=time_limit, exclude=exclude, layers=layers,
                                 **(ranges or {}))
    _, _, plan = solve_instance(instance, time_limit=time_limit)
    return replace(instance, solved=None), len(plan)  # keep the text, free the search
