"""Recipes as data: what to build, what must be cooked or cut, and the unrandomised layout.

A recipe is a TOML file (`plannerl/recipes/*.toml`, or any folder named in the
`PLANNERL_RECIPES` environment variable, or a path given directly). Adding a task means adding
a file, not code. Every field is checked against the cooking domain when the recipe is read,
so a typo or an ingredient type the domain lacks is one error naming the file and the field.

    layers = ["bottombun", "patty", "topbun"]   # the stack to build, bottom first
    cooked = ["patty"]                          # types that must be cooked in the goal
    start_cooked = ["patty"]                    # types that start cooked (no stove needed)
    cut = []                                    # types that must be cut (three cuts on a board)
    clear_top = false                           # goal also asks the top item to be clear
    distractors = ["onion"]                     # types of distractor items (default: unused types)
    step_limit = 15                             # the paper's multi-turn step limit, if any
    [base]                                      # Robotouille's unrandomised layout
    stations = ["table", "table", "table"]
    stacks = [["bottombun"], ["topbun"], ["patty"]]   # one stack per station, bottom first
    robot = 1                                   # the station the robot starts at (1-based)
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from plannerl.domains import DOMAINS_DIR, RECIPES_DIR
from plannerl.errors import PlannerlError

COOKING_DOMAIN = DOMAINS_DIR / "cooking.pddl"
COOKING_TEMPLATES = DOMAINS_DIR / "cooking.templates.toml"
RECIPES_ENV = "PLANNERL_RECIPES"

_FIELDS = {"description", "layers", "cooked", "start_cooked", "cut", "clear_top", "distractors", "step_limit", "base"}
_BASE_FIELDS = {"stations", "stacks", "robot"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RecipeError(PlannerlError):
    """A recipe file that cannot be used, naming the file and the field at fault."""

    def __init__(self, path: Path | str, field: str | None, message: str) -> None:
        where = f"{path}: {field}: " if field else f"{path}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class Recipe:
    """One task's recipe, checked against the cooking domain."""

    name: str
    path: Path
    description: str
    layers: tuple[str, ...]
    cooked: tuple[str, ...]
    start_cooked: tuple[str, ...]
    cut: tuple[str, ...]
    clear_top: bool
    distractors: tuple[str, ...]
    step_limit: int | None
    base_stations: tuple[str, ...]
    base_stacks: tuple[tuple[str, ...], ...]
    base_robot: int  # 0-based index into base_stations
    seed: int | None = None  # the seed of a generated recipe (`random_recipes`); None for a recipe file

    @property
    def needs_stove(self) -> bool:
        return any(t not in self.start_cooked for t in self.cooked)

    @property
    def needs_board(self) -> bool:
        return bool(self.cut)

    @property
    def station_types(self) -> tuple[str, ...]:
        """Station types an instance of this recipe may get as extra stations."""
        return ("table",) + (("stove",) if self.needs_stove else ()) + (("board",) if self.needs_board else ())


@dataclass(frozen=True)
class CookingTypes:
    """The item and station types the cooking domain declares, in declaration order."""

    items: tuple[str, ...]
    stations: tuple[str, ...]


@lru_cache(maxsize=4)
def cooking_types(domain_path: Path = COOKING_DOMAIN) -> CookingTypes:
    from plannerl.pddl.reader import parse_domain

    domain = parse_domain(domain_path)
    items = tuple(t for t in domain.supertype if t != "item" and domain.is_subtype(t, "item"))
    stations = tuple(t for t in domain.supertype if t != "station" and domain.is_subtype(t, "station"))
    return CookingTypes(items, stations)


def recipe_dirs() -> list[Path]:
    """The shipped recipe folder, then every folder in $PLANNERL_RECIPES (os.pathsep-separated)."""
    dirs = [RECIPES_DIR]
    for part in os.environ.get(RECIPES_ENV, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()))
    return dirs


def recipe_files() -> dict[str, Path]:
    """Task name -> recipe file; a later folder's recipe overrides an earlier one of the same name."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        if not folder.is_dir():
            raise PlannerlError(f"{RECIPES_ENV}: {folder} is not a folder")
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def list_recipes() -> list[str]:
    return list(recipe_files())


def find_recipe(task: str) -> Path:
    """A task name (`burger`) or a path to a recipe file (`my/blt.toml`)."""
    if task.endswith(".toml"):
        path = Path(task)
        if not path.is_file():
            raise PlannerlError(f"recipe file {task} does not exist")
        return path
    files = recipe_files()
    if task not in files:
        raise PlannerlError(f"unknown task {task!r}; known tasks: {', '.join(files)} (or give a recipe .toml file)")
    return files[task]


def load_recipe(task: str) -> Recipe:
    path = find_recipe(task)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise PlannerlError(f"cannot read recipe {path}: {exc.strerror}") from None
    return _load_recipe_file(path.resolve(), stamp)


@lru_cache(maxsize=64)
def _load_recipe_file(path: Path, stamp: int) -> Recipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RecipeError(path, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise RecipeError(path, None, f"cannot read: {exc.strerror}") from None
    return parse_recipe(data, path)


def parse_recipe(data: dict, path: Path) -> Recipe:
    """Check a recipe's fields against the cooking domain; every problem names its field."""
    name = path.stem
    if not _NAME.match(name):
        raise RecipeError(path, None, "recipe file names must be lower-case letters, digits and _ (they name problems)")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise RecipeError(path, unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    types = cooking_types()
    item_list = partial(_item_list, path, types)

    if "layers" not in data:
        raise RecipeError(path, "layers", "missing (the stack to build, bottom first)")
    layers = item_list("layers", data["layers"], allow_empty=False)
    if len(layers) < 2:
        raise RecipeError(path, "layers", "needs at least two items (a base and something on it)")
    cooked = item_list("cooked", data.get("cooked", []))
    start_cooked = item_list("start_cooked", data.get("start_cooked", []))
    cut = item_list("cut", data.get("cut", []))
    for field, values in (("cooked", cooked), ("cut", cut)):
        for v in values:
            if v not in layers:
                raise RecipeError(path, field, f"{v!r} is not one of the layers")
    for v in start_cooked:
        if v not in cooked:
            raise RecipeError(path, "start_cooked", f"{v!r} is not listed in cooked")
    if set(cooked) & set(cut):
        raise RecipeError(path, "cut", f"{sorted(set(cooked) & set(cut))[0]!r} cannot be both cooked and cut")
    default_distractors = [t for t in types.items if t not in layers]
    distractors = item_list("distractors", data.get("distractors", default_distractors))
    for v in distractors:
        if v in layers:
            raise RecipeError(path, "distractors", f"{v!r} is a layer type; distractors must be other types")
    clear_top = data.get("clear_top", False)
    if not isinstance(clear_top, bool):
        raise RecipeError(path, "clear_top", "must be true or false")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(path, "description", "must be a string")
    step_limit = data.get("step_limit")
    if step_limit is not None and (not isinstance(step_limit, int) or isinstance(step_limit, bool) or step_limit < 1):
        raise RecipeError(path, "step_limit", "must be a positive integer")

    stations, stacks_t, robot = _parse_base(data.get("base"), path, types, layers)
    recipe = Recipe(name, path, description, layers, cooked, start_cooked, cut, clear_top, tuple(distractors),
                    step_limit, tuple(stations), stacks_t, robot - 1)
    if recipe.needs_stove and "stove" not in stations:
        raise RecipeError(path, "base.stations", "needs a stove: some cooked type does not start cooked")
    if recipe.needs_board and "board" not in stations:
        raise RecipeError(path, "base.stations", "needs a board: the recipe cuts items")
    return recipe


def _item_list(path: Path, types: CookingTypes, field: str, value, *, allow_empty: bool = True) -> tuple[str, ...]:
    """A recipe field that lists item types, checked against the cooking domain."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(path, field, "must be a list of item type names")
    if not value and not allow_empty:
        raise RecipeError(path, field, "must name at least one item type")
    for v in value:
        if v not in types.items:
            raise RecipeError(path, field, f"unknown ingredient type {v!r} (the cooking domain has: {', '.join(types.items)})")
    return tuple(value)


def _parse_base(base, path: Path, types: CookingTypes, layers: tuple[str, ...]) -> tuple[list, tuple, int]:
    """The [base] table: stations, stacks (exactly the layers' items) and the robot's station (0-based)."""
    item_list = partial(_item_list, path, types)
    if not isinstance(base, dict):
        raise RecipeError(path, "base", "missing [base] table (stations, stacks, robot)")
    unknown = sorted(set(base) - _BASE_FIELDS)
    if unknown:
        raise RecipeError(path, f"base.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_BASE_FIELDS))})")
    stations = base.get("stations")
    if not isinstance(stations, list) or not stations or not all(isinstance(s, str) for s in stations):
        raise RecipeError(path, "base.stations", "must be a non-empty list of station types")
    for s in stations:
        if s not in types.stations:
            raise RecipeError(path, "base.stations", f"unknown station type {s!r} (the cooking domain has: {', '.join(types.stations)})")
    stacks = base.get("stacks", [])
    if not isinstance(stacks, list) or not all(isinstance(s, list) for s in stacks):
        raise RecipeError(path, "base.stacks", "must be a list of stacks, each a list of item types (bottom first)")
    if len(stacks) > len(stations):
        raise RecipeError(path, "base.stacks", f"{len(stacks)} stacks but only {len(stations)} stations")
    stacks_t = tuple(item_list("base.stacks", s) for s in stacks)
    if sorted(t for s in stacks_t for t in s) != sorted(layers):
        raise RecipeError(path, "base.stacks", "must hold exactly the items of layers (one stack item per layer)")
    robot = base.get("robot", 1)
    if not isinstance(robot, int) or isinstance(robot, bool) or not 1 <= robot <= len(stations):
        raise RecipeError(path, "base.robot", f"must be a station number from 1 to {len(stations)}")
    if "table" not in stations:
        raise RecipeError(path, "base.stations", "needs at least one table (the stack is built on a table)")
    return stations, stacks_t, robot


def int_range(name: str, value, default: tuple[int, int], bounds: tuple[int, int]) -> tuple[int, int]:
    """(low, high) from None (the default), an int n (n, n) or a pair within `bounds`; else one error naming `name`.

    One parser for every configurable range (layout ranges, the random family's layers), so
    they accept the same forms and fail with the same message.
    """
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, tuple | list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise PlannerlError(f"{name}: expected an integer or a (low, high) pair, got {value!r}")
    low, high = value
    if not bounds[0] <= low <= high <= bounds[1]:
        raise PlannerlError(f"{name}: range {low}-{high} must satisfy {bounds[0]} <= low <= high <= {bounds[1]}")
    return (low, high)
