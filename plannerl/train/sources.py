"""What a run trains and plays on: cooking tasks by seed, or a user's domain and its problem files.

A run with `domain` set trains on that domain's `problems` (and their random-walk starts,
`plannerl.tasks.problem_sets`) instead of generated recipes; every stage asks this module for
its instances, so rows, recovery rollouts, validation and evaluation treat both alike:

- recovery rollouts and validation: for a recipe run, the mix's tasks on the stage's seeds; for
  a domain run, one walked start per seed (`seeded_start`);
- evaluation splits: a recipe run plays `eval.seeds` and `eval.heldout_seeds`; a domain run plays
  its training problems as given ("train") and the held-out `eval.problems` ("heldout").
"""

from __future__ import annotations

from pathlib import Path

from plannerl.agents.problems import EvalProblem, declared_step_limit, make_problem, problems_from_tasks
from plannerl.seeds import parse_seeds
from plannerl.tasks.problem_sets import Problem, check_disjoint, find_problems, load_problems, seeded_start, with_start
from plannerl.train.config import is_domain_run, training_tasks

_LOADED: dict[tuple, list[Problem]] = {}


def problem_files(config: dict, key: str = "problems") -> list[Path]:
    """The files of `key`: "problems" (training) or "eval.problems" (held out)."""
    return find_problems(config["eval"]["problems"] if key == "eval.problems" else config["problems"], key=key)


def problem_set(config: dict, key: str = "problems") -> list[Problem]:
    """The problems of `key` ("problems" or "eval.problems"), parsed and solved once per process;
    held-out problems are checked against the training ones."""
    paths = problem_files(config, key)
    cache_key = (str(Path(config["domain"]).resolve()), *((str(p.resolve()), p.stat().st_mtime_ns) for p in paths))
    if cache_key not in _LOADED:
        _LOADED[cache_key] = load_problems(config["domain"], paths)
    problems = _LOADED[cache_key]
    if key == "eval.problems":
        check_disjoint(problem_set(config), problems)
    return problems


def check_problem_sets(config: dict) -> None:
    """Parse, ground and solve a domain run's training and held-out problems (kept for the run):
    a problem of another domain, one without a plan or a held-out twin of a training problem
    is an error before the run folder is written, so the corrected command needs no --resume."""
    problem_set(config)
    if config["eval"]["problems"]:
        problem_set(config, "eval.problems")


def rollout_problems(config: dict, seeds: str) -> list[EvalProblem]:
    """The instances recovery rolls out on (or validates with) for the seed spec `seeds`. A
    domain's instances carry no task name: they count under the domain's name, as in
    `plannerl eval --domain`, and get the step limit ceil(1.5 x optimal)."""
    seed_list = parse_seeds(seeds)
    if not is_domain_run(config):
        return problems_from_tasks(training_tasks(config), seed_list, exclude=config["exclude_tasks"])
    problems, length = problem_set(config), config["data"]["walk_length"]
    found = []
    for seed in seed_list:
        problem, start = seeded_start(problems, seed, length)
        name = f"{problem.name}_s{seed}"
        found.append(make_problem(with_start(problem.task, start, name), name=name, seed=seed,
                                  source=f"{problem.path} walked by seed {seed}", oracle=problem.oracle))
    return found


def rollout_count(config: dict, seeds: str) -> int:
    """How many episodes `rollout_problems(config, seeds)` plays, counted without any search:
    one per seed on a domain, one per seed and task in a mix."""
    per_seed = 1 if is_domain_run(config) else len(training_tasks(config))
    return per_seed * len(parse_seeds(seeds))


def eval_splits(config: dict) -> list[str]:
    """The report names of a run's evaluation splits."""
    if is_domain_run(config):
        return ["train", "heldout"] if config["eval"]["problems"] else ["train"]
    return ["seeds", "heldout"]


def split_size(config: dict, split: str) -> int:
    """How many episodes a split plays, counted without any search."""
    if is_domain_run(config):
        return len(problem_files(config, _SPLIT_KEYS[split]))
    return len(eval_tasks(config)) * len(parse_seeds(config["eval"][_SEED_KEYS[split]]))


def split_problems(config: dict, split: str, skipped: list[str] | None = None) -> list[EvalProblem]:
    """The instances of one evaluation split; a recipe instance past the planner's state limit
    is left out and named in `skipped` when a list is given (`iter_problems_from_tasks`)."""
    if not is_domain_run(config):
        return problems_from_tasks(eval_tasks(config), parse_seeds(config["eval"][_SEED_KEYS[split]]),
                                   exclude=config["exclude_tasks"], skipped=skipped)
    problems = problem_set(config, _SPLIT_KEYS[split])
    return [make_problem(p.task, name=p.name, source=str(p.path), oracle=p.oracle, declared_limit=declared_step_limit(p.path))
            for p in problems]


_SEED_KEYS = {"seeds": "seeds", "heldout": "heldout_seeds"}     # a recipe run's split -> its seed key in [eval]
_SPLIT_KEYS = {"train": "problems", "heldout": "eval.problems"}  # a domain run's split -> its problem files


def eval_tasks(config: dict) -> list[str]:
    """The tasks a recipe run is evaluated on: `eval.tasks`, or the training tasks."""
    return config["eval"]["tasks"] or training_tasks(config)


def row_units(config: dict) -> int:
    """How many units the row builder reports progress in: instances (tasks x training seeds),
    or a domain run's problem files."""
    if is_domain_run(config):
        return len(problem_files(config))
    return len(parse_seeds(config["data"]["train_seeds"])) * len(training_tasks(config))


def data_source(config: dict) -> str:
    """Where a run's rows come from, in words."""
    if is_domain_run(config):
        data = config["data"]
        goals = f", {data['goals']} relabelled goals each" if data["goals"] else ""
        return (f"{row_units(config)} problems of {config['domain']}{goals} with {data['walks']} walks of up to "
                f"{data['walk_length']} steps each")
    return f"{', '.join(training_tasks(config))} seeds {config['data']['train_seeds']}"
