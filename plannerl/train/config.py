"""Training configuration: the defaults, config files, `--set` overrides and their checks.

The defaults live in one place, `defaults.toml` beside this module (every key, with a comment
saying what it does); a config file or `--set` may change any subset. Every key is checked
before any work starts: an unknown key, a value of the wrong type or out of its range, or
seed sets that overlap (an evaluation instance trained on) is a one-line error naming the key
and, for a file, its line.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

from plannerl.agents.scoring import CHOICES
from plannerl.agents.tokenizer import MERGES
from plannerl.errors import PlannerlError
from plannerl.pddl.reader import parse_domain
from plannerl.seeds import parse_seeds
from plannerl.tasks.generate import check_count_range, check_task, is_random, known_tasks, list_tasks, parse_range
from plannerl.tasks.problem_sets import find_problems
from plannerl.tasks.styles import resolve_style

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
DEFAULTS: dict = tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
CONFIG_NAME = "config.json"   # the resolved config a run folder was started with

STAGE_NAMES = ("sft", "grpo", "recovery")
# keys whose value counts things that must exist (a batch, a thread, a process)
AT_LEAST_ONE = ("sft.batch_size", "sft.grad_accum", "grpo.prompts_per_step", "runtime.threads", "runtime.jobs", "eval.batch_size")
# Training layouts' ranges ("LOW-HIGH", "N", or "" for Robotouille's), checked by the generator's own rules.
RANGE_KEYS = ("data.extra_stations", "data.distractors")
_CHOICES = {
    "runtime.precision": ("auto", "bf16", "fp16", "fp32"),
    "runtime.device": ("auto", "cpu", "cuda"),
    "runtime.vllm": ("auto", "off", "colocate", "server"),
    "grpo.reward": ("optimal", "expert"),
    "data.prompt": ("auto", "full", "compact", "todo", "focus", "free"),
    "sft.objective": ("auto", "answer", "choice"),
    "grpo.loss_type": ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"),
    "eval.invalid": ("retry", "step", "stop"),
    "eval.choice": CHOICES,
    "builtin.merges": MERGES,
}


def load_config_file(path: str | Path) -> dict:
    """A TOML config file, checked against the known keys (values overlay the defaults)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlannerlError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlannerlError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlannerlError(f"{path}: not valid TOML: {exc}") from None
    check_config(data, source=str(path), text=text)
    return data


def check_config(data: dict, *, source: str = "config", text: str | None = None, prefix: str = "") -> None:
    """Every key known, every value of the default's type and within its range or choices."""
    defaults = _lookup(DEFAULTS, prefix) if prefix else DEFAULTS
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        where = f"{source}:{_line_of(text, key)}" if text and _line_of(text, key) else source
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise PlannerlError(f"{where}: unknown config key {dotted!r} (known here: {known})")
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise PlannerlError(f"{where}: {dotted} must be a [{dotted}] table")
            check_config(value, source=source, text=text, prefix=dotted + ".")
            continue
        _check_value(dotted, value, default, where)


def _check_value(dotted: str, value, default, where: str) -> None:
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if dotted in RANGE_KEYS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `distractors = 3` means the range 3-3
    if type(value) is not kind:
        raise PlannerlError(f"{where}: {dotted} must be a {kind.__name__}, got {value!r}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise PlannerlError(f"{where}: {dotted} must be a list of strings, got {value!r}")
    if dotted in _CHOICES and value not in _CHOICES[dotted]:
        raise PlannerlError(f"{where}: {dotted} must be one of {', '.join(_CHOICES[dotted])}, got {value!r}")
    if kind in (int, float) and value < 0:
        raise PlannerlError(f"{where}: {dotted} must not be negative, got {value!r}")
    if dotted in ("data.hold_probability", "data.blocked", "data.subgoals", "data.rename") and value > 1:
        raise PlannerlError(f"{where}: {dotted} must be from 0 to 1, got {value!r}")
    if dotted in RANGE_KEYS:
        check_count_range(f"{where}: {dotted}", parse_range(f"{where}: {dotted}", value))
    if dotted == "recovery.mistake_share" and value >= 1:
        raise PlannerlError(f"{where}: recovery.mistake_share must be below 1 (a share of the round's rows), got {value!r}")
    if dotted == "grpo.num_generations" and value < 2:
        raise PlannerlError(f"{where}: grpo.num_generations must be at least 2 (GRPO compares completions within a group)")
    if dotted in AT_LEAST_ONE and value < 1:
        raise PlannerlError(f"{where}: {dotted} must be at least 1, got {value!r}")
    if dotted == "eval.stages" and any(stage not in STAGE_NAMES for stage in value):
        raise PlannerlError(f"{where}: eval.stages entries must be among {', '.join(STAGE_NAMES)}, got {value!r}")


def _line_of(text: str | None, key: str) -> int | None:
    if not text:
        return None
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=|^\s*\[{re.escape(key)}\]", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.strip(".").split("."):
        node = node[part]
    return node


def merge_config(base: dict, overlay: dict) -> dict:
    """`overlay`'s values replace `base`'s, table by table; neither input is changed."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_assignment(text: str) -> dict:
    """`--set grpo.temperature=1.2` -> {"grpo": {"temperature": 1.2}} (value read as TOML)."""
    if "=" not in text:
        raise PlannerlError(f"--set {text!r}: expected KEY=VALUE, e.g. grpo.temperature=1.2")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set task=burger
    overlay: dict = value
    for part in reversed(key.split(".")):
        overlay = {part: overlay}
    check_config(overlay, source="--set")
    return overlay


def resolve_config(config_file: str | Path | None = None, overrides: dict | None = None, *, base: dict | None = None) -> dict:
    """Defaults (or `base`, a resumed run's saved config), then the config file, then
    command-line overrides, checked."""
    config = copy.deepcopy(base if base is not None else DEFAULTS)
    if config_file is not None:
        config = merge_config(config, load_config_file(config_file))
    if overrides:
        check_config(overrides, source="command line")
        config = merge_config(config, overrides)
    _check_seed_sets(config)
    _check_choice(config)
    check_domain_config(config)
    training_tasks(config)
    return config


def _check_choice(config: dict) -> None:
    """`eval.choice` other than the summed score, and `eval.avoid_revisits`, pick among valid actions, wherever the run plays."""
    if config["eval"]["avoid_revisits"] and not config["eval"]["constrained"]:
        raise PlannerlError("eval.avoid_revisits = true leaves out valid actions: it needs eval.constrained = true")
    if config["eval"]["avoid_revisits"] and config["recovery"]["rounds"] and not config["recovery"]["constrained"]:
        raise PlannerlError("eval.avoid_revisits = true is also how recovery validates: it needs recovery.constrained = true")
    choice = config["eval"]["choice"]
    if choice != "sum" and not config["eval"]["constrained"]:
        raise PlannerlError(f"eval.choice = {choice!r} picks among valid actions: it needs eval.constrained = true")
    if choice != "sum" and config["recovery"]["rounds"] and not config["recovery"]["constrained"]:
        raise PlannerlError(f"eval.choice = {choice!r} is also how recovery rolls out: it needs recovery.constrained = true")


def _check_seed_sets(config: dict) -> None:
    train = set(parse_seeds(config["data"]["train_seeds"]))
    evaluation = {f"eval.{key}": set(parse_seeds(config["eval"][key])) for key in ("seeds", "heldout_seeds")}
    for name, seeds in evaluation.items():
        if train & seeds:
            raise PlannerlError(f"data.train_seeds and {name} share seed {min(train & seeds)}: "
                                f"evaluation instances must not be trained on")
    if not config["recovery"]["rounds"]:
        return
    rollout = set(parse_seeds(config["recovery"]["seeds"]))
    for name, seeds in evaluation.items():
        if rollout & seeds:
            raise PlannerlError(f"recovery.seeds and {name} share seed {min(rollout & seeds)}")
    if config["recovery"]["validation_seeds"]:
        validation = set(parse_seeds(config["recovery"]["validation_seeds"]))
        for name, seeds in {"data.train_seeds": train, "recovery.seeds": rollout, **evaluation}.items():
            if validation & seeds:
                raise PlannerlError(f"recovery.validation_seeds and {name} share seed {min(validation & seeds)}: "
                                    "validation instances must be seen by neither training nor evaluation")


def saved_config(run_dir: str | Path) -> dict:
    """The resolved config a run folder was started with."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise PlannerlError(f"{run_dir}: nothing to resume (no {CONFIG_NAME}); run without --resume to start")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlannerlError(f"{path}: unreadable run config: {exc}") from None
    check_config(config, source=str(path))
    return merge_config(DEFAULTS, config)


def config_difference(saved: dict, requested: dict, prefix: str = "") -> str | None:
    """The first key whose value differs, as `key: saved -> requested`, or None."""
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} -> {b!r}"
    return None


def prompt_style(config: dict) -> str:
    """The prompt style a run's rows are rendered in (`data.prompt`, "auto" resolved for its model)."""
    return resolve_style(config["data"]["prompt"], config["model"], domain_run=bool(config["domain"]))


def sft_objective(config: dict) -> str:
    """The SFT objective a run trains with (`sft.objective`, "auto" resolved): the choice
    objective for the built-in model on a user's domain, the answer likelihood otherwise. Why:
    on every domain measured the choice objective was as good or better at the same training
    time (fresh problems, answer -> choice: logistics 0.09 -> 0.52, Blocksworld 0.73 -> 0.80-0.89,
    Gripper 0.86 -> 0.91, Ferry 0.98 -> 1.00; docs/training.md, session 11), while the
    recipes' results were all measured with the answer objective, whose step costs 4x less there."""
    objective = config["sft"]["objective"]
    if objective == "auto":
        return "choice" if is_domain_run(config) and config["model"] == "builtin" else "answer"
    return objective


def training_tasks(config: dict) -> list[str]:
    """The tasks a run trains on: `tasks` (or `[task]`) without the `exclude_tasks`, checked:
    an unknown name, an excluded name that is no shipped recipe, or an empty mix is an error
    naming the key. A run on a user's domain trains on one task, named after the domain."""
    if is_domain_run(config):
        return [domain_label(config)]
    known, shipped = known_tasks(), list_tasks()
    mix = config["tasks"] or [config["task"]]
    for name in mix:
        if name not in known:
            key = "tasks" if config["tasks"] else "task"
            raise PlannerlError(f"{key}: unknown task {name!r} (known: {', '.join(known)})")
    for name in config["exclude_tasks"]:
        if name not in shipped:
            raise PlannerlError(f"exclude_tasks: {name!r} is not a shipped recipe (known: {', '.join(shipped)})")
    kept = [name for name in dict.fromkeys(mix) if name not in config["exclude_tasks"]]
    if not kept:
        raise PlannerlError(f"tasks: the mix {mix} is empty once exclude_tasks {config['exclude_tasks']} are left out")
    for name in kept:
        if is_random(name):
            check_task(name, exclude=config["exclude_tasks"])
    return kept


def task_exclusions(config: dict, task_name: str) -> tuple[str, ...]:
    """The recipes task `task_name`'s instances must avoid: `exclude_tasks` for "random", none otherwise."""
    return tuple(config["exclude_tasks"]) if is_random(task_name) else ()


def is_domain_run(config: dict) -> bool:
    return bool(config["domain"])


def check_domain_config(config: dict) -> None:
    """The domain keys checked without any search: the domain parses, problems are given and
    found, and no cooking-only key is set with them."""
    if not is_domain_run(config):
        for key, value in (("problems", config["problems"]), ("eval.problems", config["eval"]["problems"])):
            if value:
                raise PlannerlError(f"{key}: applies only with domain = DOMAIN.pddl")
        return
    for key, value in (("tasks", config["tasks"]), ("exclude_tasks", config["exclude_tasks"]),
                       ("eval.tasks", config["eval"]["tasks"])):
        if value:
            raise PlannerlError(f"{key}: a run on domain {config['domain']} trains on its problems; give {key} or domain, not both")
    if not config["problems"]:
        raise PlannerlError(f"problems: domain {config['domain']} needs training problems (a folder, a glob or a file)")
    if not Path(config["domain"]).is_file():
        raise PlannerlError(f"domain: {config['domain']}: no such file")
    from plannerl.agents.problems import declared_step_limit

    parse_domain(config["domain"])
    paths = find_problems(config["problems"])
    if config["eval"]["problems"]:
        paths = [*paths, *find_problems(config["eval"]["problems"], key="eval.problems")]
    for path in paths:  # a bad `; step-limit:` line fails here, before any work
        declared_step_limit(path)


def domain_label(config: dict) -> str:
    """The name a domain run's rows and reports go under: the domain's own name."""
    return parse_domain(config["domain"]).name


def run_name(config: dict) -> str:
    """A run folder's default name: the domain's name, "mix" for a task mix, else the task."""
    if is_domain_run(config):
        return domain_label(config)
    return "mix" if config["tasks"] else config["task"]
