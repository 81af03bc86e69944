"""Training rows: the one builder behind both `plannerl data` and `plannerl train`.

A row is one single-turn problem: a state's prompt in a prompt style, the expert answer, every
optimal and every valid answer, and the facts needed to replay it. For each generated instance
the builder labels every state of the expert trajectory and, per expert state, `off_expert`
states one random non-optimal action away (so SFT also sees slightly wrong states); the oracle
labels them all. `plannerl data --config C` writes exactly the rows `plannerl train --config C`
trains on (`training_rows`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from plannerl.atomic import check_writable
from plannerl.errors import NoPlanError, StateLimitError
from plannerl.parallel import check_jobs, map_seeds
from plannerl.seeds import parse_seeds
from plannerl.tasks.answers import DEFAULT_HISTORY_LEN, answer_line
from plannerl.tasks.datasets import DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, expert_rows, label_state, split_instances, write_dataset
from plannerl.tasks.generate import (
    check_task,
    generate_instance,
    is_random,
    make_ranges,
    parse_range,
    solve_instance,
    write_instance_folder,
)
from plannerl.tasks.problem_sets import goal_kinds, relabelled_goals, state_facts, training_starts, with_start
from plannerl.tasks.renaming import object_renaming, renamed_task
from plannerl.tasks.styles import get_style
from plannerl.train.config import domain_label, is_domain_run, prompt_style, task_exclusions, training_tasks
from plannerl.train.sources import problem_set


@dataclass(frozen=True)
class RowOptions:
    """How states become rows. The defaults are `plannerl data`'s; `options_of(config)` gives a
    training run's.

    `hold_probability` (None: the generator's 0.25) is the chance that an instance starts with
    the robot holding an item. Those starts are where a model trained on Robotouille's rate
    failed most (it walked off with the item instead of putting it down), so training
    instances may oversample them; evaluation instances always use the generator's rate.
    `extra_stations` and `distractors` (None: Robotouille's 0-24 and 0-8) do the same for the
    layout: fewer extra stations leave every stove or board occupied more often, the starts
    where a generalist had to clear a station first and failed most (docs/training.md).
    `blocked` (None: 0) makes those starts common directly: the chance that every empty stove
    and board a recipe needs starts occupied (`plannerl.tasks.generate.block_stations`).

    `subgoals` is the chance that a training instance of a recipe task builds one of the
    recipe's sub-goals instead (`plannerl.tasks.random_recipes.subgoal_recipe`): many goals
    from one recipe, so the model must read the goal in its prompt.

    `rename` is the chance that an instance's (or a domain start's) rows show it under a
    random renaming of its objects (`plannerl.tasks.renaming`): the same states and labels,
    with `bread1` and `bread2` (or Blocksworld's `a` and `c`) swapped at random, so a name
    cannot stand in for the goal.

    `random_ties`: a training instance's goal binds interchangeable items at random instead of
    by name (`plannerl.tasks.generate.candidate_bindings`): the same kitchens, but the goal's
    base is bread2 as often as bread1, so only the goal says which."""

    style: str = "full"
    history_len: int = DEFAULT_HISTORY_LEN
    off_expert: int = 0
    seed: int = 0                     # draws the off-expert actions
    show_valid: bool = True
    hold_probability: float | None = None
    extra_stations: tuple[int, int] | None = None
    distractors: tuple[int, int] | None = None
    blocked: float | None = None
    random_ties: bool = False         # goal bindings break ties between interchangeable items at random
    subgoals: float = 0.0
    rename: float = 0.0
    max_states: int | None = None     # a recipe instance whose searches pass it is left out (None: the planner's limit)


def options_of(config: dict) -> RowOptions:
    """The row options of a training config."""
    data = config["data"]
    return RowOptions(style=prompt_style(config), history_len=data["history_len"], off_expert=data["off_expert"],
                      seed=config["seed"], hold_probability=data["hold_probability"],
                      extra_stations=parse_range("data.extra_stations", data["extra_stations"]),
                      distractors=parse_range("data.distractors", data["distractors"]), blocked=data["blocked"] or None,
                      random_ties=data["random_ties"],
                      subgoals=data["subgoals"], rename=data["rename"], max_states=data["max_states"] or None)


def instance_rows(task_name: str, seed: int, options: RowOptions = RowOptions(), *, time_limit: float | None = None,
                  ranges: dict | None = None, exclude: tuple[str, ...] = ()) -> tuple:
    """(instance without its search, optimal length, rows) for one seed: the unit of work.
    `exclude` (the "random" task only) names recipes whose goals the drawn recipe must avoid."""
    extra = {"exclude": exclude} if exclude else {}
    if options.subgoals and not is_random(task_name):
        extra["subgoals"] = options.subgoals
    max_states = None if is_random(task_name) else options.max_states  # the random family has its own, smaller, budget
    instance = generate_instance(task_name, seed, time_limit=time_limit, max_states=max_states, **extra,
                                 **generator_ranges(options, ranges))
    task, oracle, plan = solve_instance(instance, time_limit=time_limit, max_states=max_states)
    rows = renamed_rows(task, options, f"{task_name}:{seed}",
                        lambda shown: start_rows(shown, oracle, task_label(instance), instance.name, options,
                                                 random.Random(f"{options.seed}:{task_name}:{seed}")))
    return replace(instance, solved=None), len(plan), rows  # keep the text, free the search


def start_rows(task, oracle, label: str, instance: str, options: RowOptions, rng: random.Random) -> list[dict]:
    """The rows of one start state (the task's initial state): every state of the expert
    trajectory, and per expert state `off_expert` states one random non-optimal action away
    (drawn from `rng`), all labelled by `oracle`."""
    rows = []
    for row in expert_rows(task, task_name=label, instance=instance, oracle=oracle, show_valid=options.show_valid,
                           history_len=options.history_len):
        state, history = replay(task, row["history_pddl"])
        rows.append(styled(row, task, state, history, options))
        wrong = [a for a in task.applicable(state) if a not in oracle.optimal_actions(state)]
        for action in rng.sample(wrong, min(options.off_expert, len(wrong))):
            row = label_or_none(task, task.apply(state, action), oracle, history + [action], label, instance,
                                "off_expert", options)
            if row is not None:
                rows.append(row)
    return rows


def renamed_rows(task, options: RowOptions, key: str, make_rows: Callable[[object], list[dict]]) -> list[dict]:
    """`make_rows(task)`, or with probability `options.rename` `make_rows` of the task under a
    random renaming of its objects, each row then naming the renaming (`renaming`:
    problem name -> name in the row) so it can still be replayed on the problem file. The draws
    come from a stream of their own (`key` names the start), so a run's other draws do not
    depend on the option."""
    if options.rename:
        rng = random.Random(f"rename:{options.seed}:{key}")
        renaming = object_renaming(task, rng) if rng.random() < options.rename else {}
        if renaming:
            return [dict(row, renaming=renaming) for row in make_rows(renamed_task(task, renaming))]
    return make_rows(task)


def generator_ranges(options: RowOptions, ranges: dict | None) -> dict:
    """The generator's layout ranges, with the options' hold and blocked probabilities and ranges where they are set."""
    ranges = dict(ranges or {})
    for key in ("hold_probability", "extra_stations", "distractors", "blocked", "random_ties"):
        if getattr(options, key) is not None:
            ranges[key] = getattr(options, key)
    return ranges


def task_label(instance) -> str:
    """The `task` column of an instance's rows: its recipe's name, or the family for a random one."""
    return instance.task_name if is_random(instance.task_name) else instance.recipe.name


def task_rows(task_name: str, seeds: Iterable[int], options: RowOptions, *, progress: Callable[[tuple | None], None] | None = None,
              jobs: int = 1, time_limit: float | None = None, ranges: dict | None = None,
              exclude: tuple[str, ...] = ()) -> list[tuple | None]:
    """`instance_rows` of every seed, in seed order (`jobs` processes give the same result);
    `progress` is called with each seed's result as it arrives.

    A seed whose instance passes the planner's state limit (5M states: a few
    lettuce_tomato_sandwich layouts at Robotouille's ranges before the patterns per goal
    object, `plannerl.planning.search.Engine`), or `options.max_states`, gives
    None, not an error: a state count is the same on every machine, so the same seeds are
    always the ones left out, and one huge layout no longer stops a training run after its
    other instances are labelled. Searching 5M states takes minutes, which is why
    `max_states` exists: 7 of 50 lettuce_tomato_sandwich training starts took over 40 s each
    (session 18; with the patterns per goal object, none past 4 s)."""
    work = partial(_rows_or_none, task_name, options=options, time_limit=time_limit, ranges=ranges, exclude=exclude)
    return map_seeds(work, seeds, jobs=jobs, progress=progress)


def _rows_or_none(task_name: str, seed: int, **kwargs) -> tuple | None:
    try:
        return instance_rows(task_name, seed, **kwargs)
    except StateLimitError:
        return None


def training_rows(config: dict, progress: Callable[[], None] | None = None) -> list[dict]:
    """Every row a training run with `config` trains on: each task of the mix on the training
    seeds, balanced per task (`balance_tasks`)."""
    seeds, options = parse_seeds(config["data"]["train_seeds"]), options_of(config)
    if is_domain_run(config):
        return domain_rows(config, options, progress)
    per_task = []
    for task_name in training_tasks(config):
        labelled = task_rows(task_name, seeds, options, progress=(lambda _: progress()) if progress else None,
                             jobs=config["runtime"]["jobs"], exclude=task_exclusions(config, task_name))
        per_task.append([row for done in labelled if done is not None for row in done[2]])
    return balance_tasks(per_task, seed=config["seed"])


def domain_rows(config: dict, options: RowOptions, progress: Callable[[], None] | None = None) -> list[dict]:
    """A domain run's rows: every training problem and its `data.goals` relabelled goals
    (`plannerl.tasks.problem_sets.relabelled_goals`), each from its initial state and its
    random-walk starts (`training_starts`), labelled like a generated instance; `progress` is
    called once per problem file. A relabelled problem equal to a held-out one is left out."""
    data, label, rows = config["data"], domain_label(config), []
    heldout = {state_facts(p.task) for p in problem_set(config, "eval.problems")} if config["eval"]["problems"] else set()
    training = problem_set(config)  # a held-out twin of a training problem failed above, before any labelling
    kinds = set().union(*(goal_kinds(p.task, p.task.problem.goal_pos) for p in training))
    for problem in training:
        relabelled = relabelled_goals(problem, kinds, goals=data["goals"], walk_length=data["goal_walk_length"],
                                      seed=config["seed"]) if data["goals"] else []
        for source in [problem, *(p for p in relabelled if state_facts(p.task) not in heldout)]:
            for k, start in enumerate(training_starts(source, walks=data["walks"], walk_length=data["walk_length"],
                                                      seed=config["seed"])):
                name = source.name if k == 0 else f"{source.name}_walk{k}"
                task = source.task if k == 0 else with_start(source.task, start, name)
                rows += renamed_rows(task, options, name, lambda shown, name=name, oracle=source.oracle: start_rows(
                    shown, oracle, label, name, options, random.Random(f"{options.seed}:{name}")))
        if progress:
            progress()
    return rows


def balance_tasks(per_task: list[list[dict]], *, seed: int) -> list[dict]:
    """The rows of every task, each task's repeated (whole copies, then a seeded sample of the
    rest) up to the largest task's count, tasks in mix order.

    Why: a long recipe has several times the states of a short one, so without this the rows
    of double_cheese_burger would drown burger's; balancing per task (not per row) gives every
    goal the same weight in SFT, in GRPO's prompt pool and in recovery's expert rows. One task
    comes back as it is."""
    if len(per_task) == 1:
        return per_task[0]
    target = max(len(rows) for rows in per_task)
    rng = random.Random(f"balance:{seed}")
    balanced: list[dict] = []
    for rows in per_task:
        copies, rest = divmod(target, len(rows)) if rows else (0, 0)
        balanced += rows * copies + rng.sample(rows, rest)
    return balanced


def label_or_none(task, state: int, oracle, history: list[int], task_name: str, instance: str, source: str,
                  options: RowOptions) -> dict | None:
    """The oracle's row for a state, or None for a goal state or a dead end (nothing to learn)."""
    if task.is_goal(state):
        return None
    try:
        row = label_state(task, state, oracle, history=history, task_name=task_name, instance=instance,
                          source=source, history_len=options.history_len, show_valid=options.show_valid)
    except NoPlanError:
        return None
    return styled(row, task, state, history, options)


def styled(row: dict, task, state: int, history: list[int], options: RowOptions) -> dict:
    """The row with its prompt and answers in the options' style; a style without chat has no
    messages (it is plain text) and its answers are the style's sentences (the PDDL forms stay)."""
    style = get_style(options.style)
    if style.name == "full":
        return row
    row = {key: value for key, value in row.items() if key != "messages"}
    row["prompt"] = style.prompt(task, state, history=history, history_len=options.history_len)
    for column in ("optimal_actions", "valid_actions"):
        actions = [task.find_action(pddl) for pddl in row[column + "_pddl"]]
        row[column] = style.action_sentences(task, state, actions)
    row["expert_action"] = style.action_sentences(task, state, [task.find_action(row["expert_action_pddl"])])[0]
    row["completion"] = answer_line(row["expert_action"])
    return row


def replay(task, actions_pddl: list[str]) -> tuple[int, list[int]]:
    """The state after `actions_pddl` from the initial state, and the actions as indices."""
    state, history = task.init, []
    for text in actions_pddl:
        action = task.find_action(text)
        state = task.apply(state, action)
        history.append(action)
    return state, history


def episode_rows(results: list, options: RowOptions, progress: Callable[[], None] | None = None) -> list[dict]:
    """Rows for every state the episodes visited, labelled by the oracle (the states after a
    policy's own mistakes get their optimal actions too). A row whose state the policy left by
    a non-optimal action has `mistake` true (see `recovery_rows`); each (instance, state,
    recent history) appears once. `progress()` is called after each episode."""
    rows, seen = [], set()
    for result in results:
        problem, task = result.problem, result.problem.task
        state, history = task.init, []
        for action_text in [turn.action for turn in result.turns if turn.valid] + [None]:
            key = (problem.name, state, tuple(history[-options.history_len:]))
            if key not in seen:
                seen.add(key)
                row = label_or_none(task, state, problem.oracle, list(history), problem.group, problem.name,
                                    "visited", options)
                if row is not None:
                    row["mistake"] = action_text is not None and action_text not in row["optimal_actions_pddl"]
                    rows.append(row)
            if action_text is not None:
                history.append(task.find_action(action_text))
                state = task.apply(state, history[-1])
        if progress:
            progress()
    return rows


def recovery_rows(rows: list[dict], visited: list[dict], mistake_share: float = 0.25) -> list[dict]:
    """A recovery round's SFT data: the expert rows, every visited row, and the mistake rows
    repeated until they are about `mistake_share` of the whole (0: each mistake once, as visited).

    Why: a round's rollouts make tens of mistakes against thousands of expert rows, and the
    mistakes sit exactly where the model is wrong (measured: a held item at the start, which
    the model carried away instead of putting down). Unweighted, a 100-step round would see
    each of them about once, and a round barely moved the model. On random recipes the same
    quarter made 189 mistakes 36 copies each, and the model learned to move away with whatever
    it held (the generalist fell from 0.85 to 0.35 on fresh burger seeds): there, a smaller
    share (`recovery.mistake_share`) keeps each mistake to a few copies."""
    mistakes = [row for row in visited if row.get("mistake")]
    if not mistakes or mistake_share <= 0:
        return rows + visited
    others = len(rows) + len(visited)
    repeat = max(1, round(others * mistake_share / ((1 - mistake_share) * len(mistakes))))
    return rows + visited + mistakes * repeat


def build_dataset(task_name: str, seeds: Iterable[int], out_dir: str | Path, options: RowOptions = RowOptions(), *,
                  test_fraction: float = DEFAULT_TEST_FRACTION, split_seed: int = DEFAULT_SPLIT_SEED,
                  time_limit: float | None = None, progress: Callable[[str, int], None] | None = None, jobs: int = 1,
                  exclude: tuple[str, ...] = (), **ranges) -> dict:
    """Generate one instance per seed, build its rows, write the dataset folder; returns the summary.

    `jobs` > 1 labels the seeds in that many processes (`plannerl.parallel.map_seeds`); the
    files are byte for byte those of `jobs=1`."""
    split_instances([], test_fraction, split_seed)
    check_task(task_name, exclude=exclude)  # an unknown task or a bad recipe file fails before the folder is made
    resolved = make_ranges(**generator_ranges(options, ranges))
    check_jobs(jobs)
    check_writable(out_dir)
    report = None if progress is None else (lambda done: progress(*(("skipped", 0) if done is None else (done[0].name, len(done[2])))))
    seeds = list(seeds)
    results = task_rows(task_name, seeds, options, progress=report, jobs=jobs, time_limit=time_limit, ranges=ranges,
                        exclude=tuple(exclude))
    labelled = [done for done in results if done is not None]
    rows = [row for _, _, new in labelled for row in new]

    def write_problems(folder: Path) -> None:
        write_instance_folder(folder, [inst for inst, _, _ in labelled], [n for _, n, _ in labelled],
                              task_name=task_label(labelled[0][0]) if labelled else task_name, ranges=resolved)

    summary = write_dataset(rows, out_dir, test_fraction=test_fraction, split_seed=split_seed, write_problems=write_problems)
    return dict(summary, skipped_seeds=[seed for seed, done in zip(seeds, results) if done is None])


def config_dataset(config: dict, out_dir: str | Path, *, test_fraction: float = 0.0, split_seed: int = DEFAULT_SPLIT_SEED,
                   time_limit: float | None = None, progress: Callable[[str, int], None] | None = None,
                   jobs: int = 1) -> dict:
    """The rows a training run with `config` trains on (`training_rows`), written as a dataset
    folder (`plannerl data --config`): with the default test_fraction 0, OUT/train.jsonl holds
    them all, in training order."""
    tasks = training_tasks(config)
    if len(tasks) == 1 and not is_domain_run(config):
        return build_dataset(tasks[0], parse_seeds(config["data"]["train_seeds"]), out_dir, options_of(config),
                             test_fraction=test_fraction, split_seed=split_seed, time_limit=time_limit, progress=progress,
                             jobs=jobs, exclude=task_exclusions(config, tasks[0]))
    rows = training_rows(config, progress=(lambda: progress("", 0)) if progress else None)
    return write_dataset(rows, check_writable(out_dir), test_fraction=test_fraction, split_seed=split_seed)
