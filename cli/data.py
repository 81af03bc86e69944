"""`plannerl generate` (seeded instances) and `plannerl data` (single-turn datasets)."""

from __future__ import annotations

from pathlib import Path

import typer

from plannerl.errors import PlannerlError
from plannerl.seeds import parse_seeds
from plannerl.tasks.answers import DEFAULT_HISTORY_LEN


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("generate")(generate)
    app.command("data")(data)


def _ranges(extra_stations: str | None, distractors: str | None, hold_probability: float | None,
            blocked: float | None) -> dict:
    from plannerl.tasks.generate import check_count_range, parse_range

    _check_probabilities(("--hold-probability", hold_probability), ("--blocked", blocked))
    return {"extra_stations": check_count_range("--extra-stations", parse_range("--extra-stations", extra_stations)),
            "distractors": check_count_range("--distractors", parse_range("--distractors", distractors)),
            "hold_probability": hold_probability, "blocked": blocked}


def _check_probabilities(*flags: tuple[str, float | None]) -> None:
    """Each (flag, value) unset or from 0 to 1, else one error naming the flag."""
    for flag, value in flags:
        if value is not None and not 0.0 <= value <= 1.0:
            raise PlannerlError(f"{flag} must be from 0 to 1, got {value}")


def _progress(console, total: int, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    TextColumn("{task.description}"), console=console, transient=False, disable=total == 0)


_EXTRA = typer.Option(None, "--extra-stations", help="Extra stations per instance: N or LOW-HIGH (default 0-24, as Robotouille).")
_DISTRACTORS = typer.Option(None, "--distractors", help="Distractor items per instance: N or LOW-HIGH (default 0-8).")
_HOLD = typer.Option(None, "--hold-probability", help="Chance the robot starts holding an item (default 0.25).")
_BLOCKED = typer.Option(None, "--blocked", help="Chance every empty stove and board the recipe needs starts occupied (default 0).")
_TIME = typer.Option(None, "--time-limit", help="Seconds allowed per optimal search (default: none).")
_JOBS = typer.Option(1, "--jobs", "-j", help="Worker processes solving instances in parallel (output identical to 1).")


def generate(
    task: str = typer.Argument(None, help="Task name (see --list), random, or a recipe .toml file."),
    seeds: str = typer.Option(None, "--seeds", help="Seeds: 7, 1,2,5, 0:999 or 42:420:42 (STOP inclusive)."),
    out: Path = typer.Option(None, "--out", help="Output folder: problems, the domain, instances.json."),
    list_: bool = typer.Option(False, "--list", help="List the known tasks and exit."),
    extra_stations: str = _EXTRA,
    distractors: str = _DISTRACTORS,
    hold_probability: float = _HOLD,
    blocked: float = _BLOCKED,
    layers: str = typer.Option(None, "--layers", help="random only: layers per recipe, N or LOW-HIGH within 2-7 (default 2-7)."),
    exclude: list[str] = typer.Option(None, "--exclude", help="random only: a recipe whose goal no instance may have (repeatable)."),
    time_limit: float = _TIME,
    jobs: int = _JOBS,
) -> None:
    """Write one seeded cooking problem per seed, each checked solvable, with its optimal length."""
    from rich.console import Console
    from rich.table import Table

    from plannerl.tasks.generate import check_task, parse_range, write_instances

    console = Console()
    if list_:
        _list_tasks(console)
        return
    if task is None or seeds is None or out is None:
        raise PlannerlError("generate needs TASK, --seeds and --out (or --list)")
    seed_list = parse_seeds(seeds)
    layer_range = parse_range("--layers", layers)
    exclude = exclude or []
    name = check_task(task, exclude=exclude, layers=layer_range)
    ranges = _ranges(extra_stations, distractors, hold_probability, blocked)  # a bad range fails before the bar shows
    lengths: list[int] = []
    with _progress(console, len(seed_list), "generating") as bar:
        job = bar.add_task("", total=len(seed_list))

        def advance(instance, length: int) -> None:
            lengths.append(length)
            bar.update(job, advance=1, description=f"{instance.name}: {length} steps")

        try:
            paths = write_instances(task, seed_list, out, progress=advance, time_limit=time_limit, jobs=jobs,
                                    exclude=exclude, layers=layer_range, **ranges)
        except KeyboardInterrupt:  # instances are written together at the end: say how far it got
            console.print(f"interrupted after {len(lengths)}/{len(seed_list)} instances; instances are "
                          f"written only once all are solved")
            raise
    table = Table("task", "instances", "optimal length min", "mean", "max", "folder")
    table.add_row(name, str(len(paths)), str(min(lengths)), f"{sum(lengths) / len(lengths):.1f}",
                  str(max(lengths)), str(out))
    console.print(table)


def _list_tasks(console) -> None:
    """The recipe tasks as a table, then one line on the random family."""
    from rich.table import Table

    from plannerl.tasks.generate import list_tasks, paper_step_limit
    from plannerl.tasks.random_recipes import LAYER_RANGE, RANDOM_TASK
    from plannerl.tasks.recipes import load_recipe

    table = Table("task", "layers (bottom first)", "cooked", "cut", "step limit", "recipe file")
    for name in list_tasks():
        recipe = load_recipe(name)
        limit = paper_step_limit(name)
        table.add_row(name, " ".join(recipe.layers), " ".join(recipe.cooked) or "-", " ".join(recipe.cut) or "-",
                      "-" if limit is None else str(limit), recipe.path.name)
    console.print(table)
    low, high = LAYER_RANGE
    console.print(f"{RANDOM_TASK}: a new recipe per seed ({low}-{high} layers on a bun or bread, random cooked/cut "
                  f"requirements and base layout; --layers, --exclude NAME); step limit ceil(1.5 x optimal).")


def data(
    files: list[Path] = typer.Argument(None, help="[DOMAIN] PROBLEM...: PDDL problems (domain found beside them when omitted)."),
    task: str = typer.Option(None, "--task", help="Generate instances of this task instead of reading problem files."),
    seeds: str = typer.Option(None, "--seeds", help="Seeds for --task: 7, 1,2,5, 0:999 or 42:420:42 (STOP inclusive)."),
    config: Path = typer.Option(None, "--config", help="Write exactly the rows `plannerl train --config` trains on."),
    out: Path = typer.Option(..., "--out", help="Output folder: train.jsonl, test.jsonl, summary.json, problems/."),
    test_fraction: float = typer.Option(None, "--test-fraction", help="Share of instances held out for test (0.1; 0 with --config)."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/test split by instance."),
    style: str = typer.Option("full", "--style", help="Prompt style: full, compact, todo (the built-in model's), focus or free."),
    off_expert: int = typer.Option(0, "--off-expert", help="Per expert state, states one random non-optimal action away."),
    seed: int = typer.Option(0, "--seed", help="Seed of the off-expert actions (a training run uses its `seed`)."),
    history_len: int = typer.Option(DEFAULT_HISTORY_LEN, "--history-len", help="Previous actions shown in the prompt (0: none)."),
    no_valid: bool = typer.Option(False, "--no-valid-actions", help="Leave the list of valid actions out of the prompt."),
    task_name: str = typer.Option(None, "--task-name", help="The rows' task field for problem files (default: domain name)."),
    extra_stations: str = _EXTRA,
    distractors: str = _DISTRACTORS,
    hold_probability: float = _HOLD,
    blocked: float = _BLOCKED,
    subgoals: float = typer.Option(0.0, "--subgoals", help="With --task (a recipe): chance an instance builds a sub-goal instead."),
    rename: float = typer.Option(0.0, "--rename", help="Chance an instance's rows rename objects at random (bread1 <-> bread2)."),
    random_ties: bool = typer.Option(False, "--random-ties", help="Goals bind interchangeable items at random, not by name "
                                     "(the base is bread2 as often as bread1)."),
    max_states: int = typer.Option(0, "--max-states", help="With --task (a recipe): leave out an instance whose searches pass "
                                   "this many states (0: the planner's 5M)."),
    time_limit: float = _TIME,
    jobs: int = _JOBS,
) -> None:
    """Single-turn rows (state prompt -> every optimal action), split by instance, for SFT and GRPO."""
    from rich.console import Console

    from plannerl.tasks.styles import get_style
    from plannerl.train.rows import RowOptions

    console = Console()
    get_style(style)  # an unknown --style fails before any work
    if history_len < 0 or off_expert < 0 or max_states < 0:
        raise PlannerlError(f"--history-len, --off-expert and --max-states must be 0 or more, got {history_len}, {off_expert} "
                            f"and {max_states}")
    _check_probabilities(("--subgoals", subgoals), ("--rename", rename), ("--blocked", blocked),
                         ("--hold-probability", hold_probability))
    options = RowOptions(style=style, history_len=history_len, off_expert=off_expert, seed=seed, show_valid=not no_valid,
                         hold_probability=hold_probability, blocked=blocked, random_ties=random_ties, subgoals=subgoals,
                         rename=rename, max_states=max_states or None)
    total, label = _dataset_job(files, task, seeds, config, options, task_name, _ranges(extra_stations, distractors, None, None))
    fraction = (0.0 if config is not None else 0.1) if test_fraction is None else test_fraction
    common = {"test_fraction": fraction, "split_seed": split_seed, "time_limit": time_limit, "jobs": jobs}
    with _progress(console, total, "labelling") as bar:
        job = bar.add_task("", total=total)

        def advance(instance: str, rows: int) -> None:
            bar.update(job, advance=1, description=f"{instance}: {rows} rows")

        try:
            summary = label(out, advance, common)
        except KeyboardInterrupt:  # the dataset is written together at the end: say how far it got
            console.print(f"interrupted after {int(bar.tasks[0].completed)}/{total} instances; a dataset "
                          f"folder is complete only when it has summary.json")
            raise
    _print_summary(console, summary, out)


def _dataset_job(files, task, seeds, config, options, task_name, ranges):
    """How many instances `plannerl data` labels, and the library call that labels and writes
    them: the rows of a training config, generated instances of a task, or problem files."""
    from plannerl.pddl.reader import is_domain_file
    from plannerl.tasks.datasets import build_dataset_from_files
    from plannerl.train.config import resolve_config
    from plannerl.train.rows import build_dataset, config_dataset
    from plannerl.train.sources import row_units

    if config is not None:
        if files or task or seeds:
            raise PlannerlError("--config sets the task and seeds; give neither problem files nor --task/--seeds with it")
        resolved = resolve_config(config)
        total = row_units(resolved)
        return total, lambda out, advance, common: config_dataset(resolved, out, progress=advance, **common)
    if task is not None:
        if files:
            raise PlannerlError("give either problem files or --task with --seeds, not both")
        if seeds is None:
            raise PlannerlError("--task needs --seeds (e.g. --seeds 0:999)")
        seed_list = parse_seeds(seeds)
        return len(seed_list), lambda out, advance, common: build_dataset(task, seed_list, out, options, progress=advance,
                                                                          **common, **ranges)
    if not files:
        raise PlannerlError("give PDDL problem files, --task TASK --seeds SPEC, or --config FILE")
    if seeds is not None:
        raise PlannerlError("--seeds only applies with --task")
    domain, problems = (files[0], files[1:]) if len(files) > 1 and is_domain_file(files[0]) else (None, files)
    return len(problems), lambda out, advance, common: build_dataset_from_files(
        domain, problems, out, task_name=task_name, progress=advance, show_valid=options.show_valid,
        history_len=options.history_len, **common)


def _print_summary(console, summary: dict, out: Path) -> None:
    from rich.table import Table

    table = Table("task", "instances", "rows", "optimal length", "optimal actions/row", "prompt chars mean/max",
                  "prompt tokens mean/max")
    for name, stats in [*summary["tasks"].items(), ("all", summary)]:
        if not stats["rows"]:
            table.add_row(name, str(stats["instances"]), "0", "-", "-", "-", "-")
            continue
        table.add_row(name, str(stats["instances"]), str(stats["rows"]), f"{stats['optimal_length_mean']:.1f}",
                      f"{stats['optimal_actions_mean']:.2f}", f"{stats['prompt_chars_mean']:.0f}/{stats['prompt_chars_max']}",
                      f"{stats['prompt_tokens_mean']:.0f}/{stats['prompt_tokens_max']}")
    console.print(table)
    console.print(f"train: {summary['train']['rows']} rows from {summary['train']['instances']} instances; "
                  f"test: {summary['test']['rows']} rows from {summary['test']['instances']} instances")
    skipped = summary.get("skipped_seeds")
    if skipped:
        console.print(f"left out {len(skipped)} seeds whose instance passed the planner's state limit: "
                      f"{', '.join(map(str, skipped))}")
    problems = " and problems/" if (out / "problems").is_dir() else ""
    console.print(f"wrote {out}/train.jsonl, test.jsonl, summary.json{problems}")
