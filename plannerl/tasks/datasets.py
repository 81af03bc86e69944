"""Single-turn rows: one (state prompt -> optimal action) problem per state, as the paper trains on.

`label_state` labels ANY state with the oracle (h* and every optimal action), so training can
add the states its own policy visits; `expert_rows` labels each state of the canonical expert
trajectory. `plannerl.train.rows.build_dataset` does it for generated instances (in any prompt
style, with off-expert states), `build_dataset_from_files` for
PDDL problems on disk; both call `write_dataset`.

Output folder:

    OUT/problems/     the domain, every problem and instances.json (so rows can be replayed)
    OUT/train.jsonl   rows of the training instances
    OUT/test.jsonl    rows of the held-out instances (no instance is in both files)
    OUT/README.md     a dataset card whose `configs` header lets `datasets.load_dataset(OUT)` read it
    OUT/summary.json  written last: counts and prompt lengths

Split rule: instances are ranked by sha256(f"{split_seed}:{instance}") and the first
round(test_fraction * n) go to test (at least one, and at least one left for training, when
there are two or more instances). An instance keeps its rank when other instances are added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from plannerl import atomic
from plannerl.atomic import check_writable
from plannerl.errors import NoPlanError, PlannerlError
from plannerl.parallel import check_jobs, map_seeds
from plannerl.pddl.reader import find_domain_file, load
from plannerl.planning.oracle import make_oracle
from plannerl.planning.planner import load_task
from plannerl.tasks.answers import DEFAULT_HISTORY_LEN, answer_line
from plannerl.tasks.render import action_sentence, render_messages, templates_path

DEFAULT_TEST_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 0


def label_state(task, state: int, oracle, *, history: list[int] | None = None, task_name: str = "",
                instance: str = "", step: int | None = None, source: str = "visited", show_valid: bool = True,
                history_len: int = DEFAULT_HISTORY_LEN) -> dict:
    """One row for any state: prompt, chat messages, expert completion and every optimal action.

    A goal state (nothing to do) or a dead end (no plan) cannot be labelled: NoPlanError.
    """
    label = oracle.label(state)
    if label.h_star is None:
        raise NoPlanError(f"cannot label a state of {instance or task.name}: the goal is unreachable from it")
    if label.h_star == 0:
        raise PlannerlError(f"cannot label a state of {instance or task.name}: it is a goal state (no action to take)")
    history = list(history or [])
    messages = render_messages(task, state, history=history, show_valid=show_valid, history_len=history_len)
    prompt = "\n\n".join(m["content"] for m in messages) + "\n"
    expert = label.canonical_action
    optimal = sorted((action_sentence(task, a), task.actions[a].pddl) for a in label.optimal_actions)
    valid = task.applicable(state)
    return {
        "prompt": prompt,
        "messages": messages,
        "completion": answer_line(action_sentence(task, expert)),
        "expert_action": action_sentence(task, expert),
        "expert_action_pddl": task.actions[expert].pddl,
        "optimal_actions": [sentence for sentence, _ in optimal],
        "optimal_actions_pddl": [pddl for _, pddl in optimal],
        "valid_actions": [action_sentence(task, a) for a in valid],
        "valid_actions_pddl": [task.actions[a].pddl for a in valid],
        "task": task_name or task.domain_name,
        "instance": instance or task.name,
        "domain": task.domain_name,
        "step": len(history) if step is None else step,
        "h_star": label.h_star,
        "state": ["(" + " ".join(fact) + ")" for fact in task.true_facts(state)],
        "history": [action_sentence(task, a) for a in history],
        "history_pddl": [task.actions[a].pddl for a in history],
        "source": source,
    }


def expert_rows(task, *, task_name: str, instance: str, oracle=None, show_valid: bool = True,
                history_len: int = DEFAULT_HISTORY_LEN) -> list[dict]:
    """One row per state of the canonical expert trajectory from the task's initial state (the
    history is the expert's own actions). `oracle` may be the oracle of another task with the
    same goal and actions (a start state of the same problem: `plannerl.tasks.problem_sets`)."""
    if oracle is None:
        oracle = make_oracle(task)
    plan = oracle.canonical_plan(task.init)
    rows = []
    for step, (state, _) in enumerate(oracle.trajectory(plan, task.init)):
        rows.append(label_state(task, state, oracle, history=plan[:step], task_name=task_name, instance=instance,
                                step=step, source="expert", show_valid=show_valid, history_len=history_len))
    return rows


def split_instances(names: Iterable[str], test_fraction: float = DEFAULT_TEST_FRACTION,
                    split_seed: int = DEFAULT_SPLIT_SEED) -> set[str]:
    """The instances that go to test (module docstring: the split rule)."""
    if not 0.0 <= test_fraction <= 1.0:
        raise PlannerlError(f"test fraction must be between 0 and 1, got {test_fraction}")
    names = sorted(set(names))
    n = len(names)
    n_test = round(n * test_fraction)
    if 0 < test_fraction < 1 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"{split_seed}:{name}".encode()).hexdigest())
    return set(ranked[:n_test])


def summarize(rows: list[dict], test: set[str], *, test_fraction: float, split_seed: int) -> dict:
    """Counts and prompt lengths (characters and whitespace-separated tokens), overall and per task."""

    def stats(part: list[dict]) -> dict:
        if not part:
            return {"rows": 0, "instances": 0}
        chars = [len(r["prompt"]) for r in part]
        words = [len(r["prompt"].split()) for r in part]
        per_instance: dict[str, int] = {}
        for r in part:
            per_instance[r["instance"]] = max(per_instance.get(r["instance"], 0), r["h_star"])
        return {
            "rows": len(part),
            "instances": len(per_instance),
            "prompt_chars_mean": round(sum(chars) / len(part), 1),
            "prompt_chars_max": max(chars),
            "prompt_tokens_mean": round(sum(words) / len(part), 1),
            "prompt_tokens_max": max(words),
            "optimal_actions_mean": round(sum(len(r["optimal_actions"]) for r in part) / len(part), 3),
            "valid_actions_mean": round(sum(len(r["valid_actions"]) for r in part) / len(part), 2),
            "optimal_length_mean": round(sum(per_instance.values()) / len(per_instance), 2),
        }

    tasks = sorted({r["task"] for r in rows})
    summary = stats(rows)
    summary.update({
        "prompt_tokens": "whitespace-separated words of the prompt",
        "train": stats([r for r in rows if r["instance"] not in test]),
        "test": stats([r for r in rows if r["instance"] in test]),
        "tasks": {t: stats([r for r in rows if r["task"] == t]) for t in tasks},
        "split": {"rule": "instances ranked by sha256(f'{split_seed}:{instance}'); the first round(test_fraction * n) are test",
                  "test_fraction": test_fraction, "split_seed": split_seed},
        "test_instances": sorted(test),
    })
    return summary


def _card(summary: dict, has_test: bool) -> str:
    splits = ["  - split: train\n    path: train.jsonl"] + (["  - split: test\n    path: test.jsonl"] if has_test else [])
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n" + "\n".join(splits) + "\n---\n"
        "# plannerl single-turn planning dataset\n\n"
        "One row per state: `prompt` (or chat `messages`), the expert `completion` (`Action: <sentence>`), "
        "every optimal action (`optimal_actions`, `optimal_actions_pddl`, parallel lists), `h_star`, the `state` facts "
        "and the earlier actions (`history`, `history_pddl`). Problems to replay the rows are in `problems/`.\n\n"
        f"Rows: {summary['rows']} ({summary['train']['rows']} train, {summary['test']['rows']} test) from "
        f"{summary['instances']} instances. Split by instance: {summary['split']['rule']} "
        f"(test_fraction {summary['split']['test_fraction']}, split_seed {summary['split']['split_seed']}).\n"
    )


def write_dataset(rows: list[dict], out_dir: str | Path, *, test_fraction: float = DEFAULT_TEST_FRACTION,
                  split_seed: int = DEFAULT_SPLIT_SEED, write_problems: Callable[[Path], object] | None = None) -> dict:
    """Split by instance and write the folder; `summary.json` goes last so its presence means complete.

    `write_problems(folder)` writes the problems the rows come from into OUT/problems/.
    """
    out = check_writable(out_dir)
    test = split_instances((r["instance"] for r in rows), test_fraction, split_seed)
    summary = summarize(rows, test, test_fraction=test_fraction, split_seed=split_seed)
    (out / "summary.json").unlink(missing_ok=True)
    if write_problems is not None:
        write_problems(out / "problems")
    atomic.write_jsonl(out / "train.jsonl", [r for r in rows if r["instance"] not in test])
    atomic.write_jsonl(out / "test.jsonl", [r for r in rows if r["instance"] in test])
    atomic.write_text(out / "README.md", _card(summary, bool(test)))
    atomic.write_json(out / "summary.json", summary)
    return summary


def build_dataset_from_files(domain: str | Path | None, problems: list[str | Path], out_dir: str | Path, *,
                             task_name: str | None = None, test_fraction: float = DEFAULT_TEST_FRACTION,
                             split_seed: int = DEFAULT_SPLIT_SEED, show_valid: bool = True,
                             history_len: int = DEFAULT_HISTORY_LEN, time_limit: float | None = None,
                             progress: Callable[[str, int], None] | None = None, jobs: int = 1) -> dict:
    """Rows for PDDL problems on disk (any domain the planner handles); instance = file name without .pddl.

    Every file is read before any search starts (a bad file fails at once); `jobs` > 1 grounds
    and labels the problems in that many processes, with the same output."""
    split_instances([], test_fraction, split_seed)
    check_jobs(jobs)
    loaded = _read_problems(domain, problems)
    check_writable(out_dir)
    domain_name = loaded[0][3].name
    work = partial(_file_rows, task_name=task_name or domain_name, time_limit=time_limit, show_valid=show_valid,
                   history_len=history_len)
    report = None if progress is None else (lambda done: progress(done[0], len(done[1])))
    labelled = map_seeds(work, [(name, problem, domain_path) for name, problem, domain_path, _ in loaded], jobs=jobs,
                         progress=report)
    rows = [row for _, new in labelled for row in new]
    records = [{"name": name, "problem": f"{name}.pddl", "optimal_length": len(new)} for name, new in labelled]

    def write_problems(folder: Path) -> None:
        index = folder / "instances.json"
        index.unlink(missing_ok=True)
        domain_path = loaded[0][2]
        atomic.write_text(folder / domain_path.name, domain_path.read_text(encoding="utf-8"))
        templates = templates_path(loaded[0][3])
        if templates is not None:
            atomic.write_text(folder / f"{domain_path.stem}.templates.toml", templates.read_text(encoding="utf-8"))
        for name, problem, _, _ in loaded:
            atomic.write_text(folder / f"{name}.pddl", problem.read_text(encoding="utf-8"))
        atomic.write_json(index, {"task": task_name or domain_name, "domain": domain_path.name, "ranges": None,
                                  "instances": records})

    return write_dataset(rows, out_dir, test_fraction=test_fraction, split_seed=split_seed, write_problems=write_problems)


def _read_problems(domain: str | Path | None, problems: list[str | Path]) -> list[tuple[str, Path, Path, object]]:
    """(instance name, problem file, domain file, parsed domain) of every problem, all read and
    checked before any search starts: names unique and not the domain's, one domain text."""
    if not problems:
        raise PlannerlError("no problem files given")
    seen: dict[str, Path] = {}
    loaded = []
    for problem in problems:
        problem = Path(problem)
        name = problem.stem
        domain_path = Path(domain) if domain is not None else find_domain_file(problem)
        if name == domain_path.stem:
            raise PlannerlError(f"{problem}: a problem may not share its domain file's name {domain_path.name}")
        if name in seen:
            raise PlannerlError(f"two problems are named {name}: {seen[name]} and {problem} (instance names must differ)")
        seen[name] = problem
        loaded.append((name, problem, domain_path, load(domain_path, problem)[0]))
    domain_texts = {d.read_text(encoding="utf-8") for _, _, d, _ in loaded}
    if len(domain_texts) > 1:
        raise PlannerlError(f"the problems use {len(domain_texts)} different domain files; build one dataset per domain")
    return loaded


def _file_rows(item: tuple[str, Path, Path], *, task_name: str, time_limit: float | None, show_valid: bool,
               history_len: int) -> tuple[str, list[dict]]:
    """(instance name, expert rows) of one problem file: the unit of work of `build_dataset_from_files`."""
    name, problem, domain_path = item
    task = load_task(domain_path, problem)
    try:
        return name, expert_rows(task, task_name=task_name, instance=name, oracle=make_oracle(task, time_limit=time_limit),
                                 show_valid=show_valid, history_len=history_len)
    except NoPlanError as exc:
        raise NoPlanError(f"{problem}: {exc}") from None
