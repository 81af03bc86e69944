"""Multi-turn evaluation: a policy plays whole episodes against the PDDL simulator.

One episode: render the state -> the policy answers text -> `plannerl.tasks.actions.parse_action`
turns it into a ground action -> the simulator checks the PDDL preconditions -> the action is
applied, or the answer is refused with feedback naming the unmet preconditions -> until the
goal holds or the step limit is reached.

Invalid answers (unparseable text, or an action whose preconditions do not hold) follow one of
three modes:

- `retry` (default, Robotouille's rule): the answer is refused with feedback and the policy
  tries again without using a step; the 5th invalid answer at the same step ends the episode
  as a failure.
- `step`: an invalid answer uses a step (the state does not change).
- `stop`: the first invalid answer ends the episode as a failure.

Step limit: the paper's limit for its four tasks (`plannerl.tasks.generate.paper_step_limit`),
otherwise ceil(1.5 x the instance's optimal length); `max_steps` overrides both.

Metrics over a set of episodes (each episode: success s, steps n, answers a, invalid answers v,
the instance's optimal length n*):

- SR = mean of s.
- ASAT = mean of n over all episodes. n counts the steps the episode used: applied actions,
  plus invalid answers in `step` mode. A failed episode counts the steps it used before it
  ended: the step limit when it ran out of steps, fewer when it ended on the 5th invalid try
  (`retry`) or the first invalid answer (`stop`).
- ASST = mean of n over successful episodes; None when no episode succeeded.
- optimal SR = mean of (s and n == n*).
- invalid-answer rate = sum(v) / sum(a) over the episodes (None when no answer was given).

Each metric also carries the population standard deviation over episodes (instance seeds x
runs) of its per-episode quantity (for the invalid-answer rate: of v / a per episode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from plannerl.errors import NoPlanError, PlannerlError
from plannerl.pddl.task import Task
from plannerl.planning.oracle import Oracle

INVALID_MODES = ("retry", "step", "stop")
MAX_TRIES = 5
REPORT_FORMAT = 1


class QuitEpisode(Exception):  # noqa: N818 - a control signal, not an error
    """Raised by an interactive policy when the person quits; the episode ends unfinished."""


@dataclass
class EvalProblem:
    """One instance to evaluate: the compiled task, its optimal length and its step limit."""

    name: str
    task: Task
    oracle: Oracle
    optimal_length: int
    step_limit: int
    task_name: str | None = None
    seed: int | None = None
    source: str | None = None

    @property
    def group(self) -> str:
        """The column this instance counts under: its task name, or its domain for files."""
        return self.task_name or self.task.domain_name


def make_problem(task: Task, *, name: str, task_name: str | None = None, seed: int | None = None,
                 source: str | None = None, max_steps: int | None = None, oracle: Oracle | None = None) -> EvalProblem:
    """Label an instance with its optimal length (one optimal search) and its step limit."""
    if oracle is None:
        from plannerl.tasks.generate import make_oracle

        oracle = make_oracle(task)
    optimal = oracle.h_star(task.init)
    if optimal is None:
        raise NoPlanError(f"{source or name}: no plan exists, so it cannot be evaluated")
    if max_steps is not None:
        if max_steps < 1:
            raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
        limit = max_steps
    else:
        limit = _default_step_limit(task_name, optimal)
    return EvalProblem(name, task, oracle, optimal, limit, task_name, seed, source)


def _default_step_limit(task_name: str | None, optimal: int) -> int:
    if task_name is not None:
        from plannerl.tasks.generate import paper_step_limit

        paper = paper_step_limit(task_name)
        if paper is not None:
            return paper
    return math.ceil(1.5 * optimal)


def problems_from_tasks(task_names: Sequence[str], seeds: Sequence[int | None], *, max_steps: int | None = None) -> list[EvalProblem]:
    """Generated instances: every task x every seed, in that order; seed None is the task's
    unrandomised (Robotouille base) layout."""
    return list(iter_problems_from_tasks(task_names, seeds, max_steps=max_steps))


def iter_problems_from_tasks(task_names: Sequence[str], seeds: Sequence[int | None], *,
                             max_steps: int | None = None) -> Iterator[EvalProblem]:
    """Like `problems_from_tasks`, labelling each instance only when it is reached.

    Task names and the seed list are checked now, so a typo fails before any search; each
    instance's optimal search (seconds to a minute for the larger tasks) runs as the
    evaluation reaches it, so episodes start early and Ctrl-C keeps those already played.
    """
    from plannerl.tasks.generate import list_tasks

    if max_steps is not None and max_steps < 1:
        raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
    known = list(list_tasks())
    for task_name in task_names:
        if task_name not in known:
            raise PlannerlError(f"unknown task {task_name!r}; known tasks: {', '.join(known)}")
        if not seeds:
            raise PlannerlError(f"task {task_name!r} has no instances: the seed list is empty")
    return _label_generated(list(task_names), list(seeds), max_steps)


def _label_generated(task_names: list[str], seeds: list[int | None], max_steps: int | None) -> Iterator[EvalProblem]:
    from plannerl.tasks.generate import base_instance, generate_instance, solve_instance

    for task_name in task_names:
        for seed in seeds:
            instance = base_instance(task_name) if seed is None else generate_instance(task_name, seed)
            where = f"{task_name} base layout" if seed is None else f"{task_name} seed {seed}"
            task, oracle, _ = solve_instance(instance)  # the generator's own search, reused when it already ran
            yield make_problem(task, name=instance.name, task_name=task_name, seed=seed, source=where,
                               max_steps=max_steps, oracle=oracle)


def problems_from_files(paths: Sequence[str | Path], *, domain: str | Path | None = None,
                        max_steps: int | None = None) -> list[EvalProblem]:
    """Explicit problem files of any domain (each domain found beside its problem unless given)."""
    return list(iter_problems_from_files(paths, domain=domain, max_steps=max_steps))


def iter_problems_from_files(paths: Sequence[str | Path], *, domain: str | Path | None = None,
                             max_steps: int | None = None) -> Iterator[EvalProblem]:
    """Like `problems_from_files`: every file is read and grounded now (a bad file fails before
    any episode), each optimal search runs when the evaluation reaches its problem."""
    from plannerl.planning.planner import load_task

    if max_steps is not None and max_steps < 1:
        raise PlannerlError(f"--max-steps must be at least 1, got {max_steps}")
    loaded = [(load_task(domain, path), str(path)) for path in paths]
    return (make_problem(task, name=task.name, source=source, max_steps=max_steps) for task, source in loaded)


# ---------------------------------------------------------------------------------------------
# What a policy sees and what an episode records


@dataclass
class Observation:
    """One request for an answer: the state of an episode, with its history and feedback."""

    problem: EvalProblem
    state: int
    step: int
    history: list[int]
    feedback: list[str]
    episode: int
    run: int
    history_len: int = 5
    _valid: list[int] | None = field(default=None, repr=False)

    @property
    def task(self) -> Task:
        return self.problem.task

    def valid_actions(self) -> list[int]:
        if self._valid is None:
            self._valid = self.task.applicable(self.state)
        return self._valid

    def prompt(self, style: str = "full") -> str:
        """The rendered prompt; `style` is one of `plannerl.tasks.styles.PROMPT_STYLES` (the built-in model reads "todo")."""
        from plannerl.tasks.styles import get_style

        text = get_style(style).prompt(self.task, self.state, history=self.history, history_len=self.history_len)
        return _with_feedback(text, self.feedback)

    def messages(self) -> list[dict]:
        from plannerl.tasks.render import render_messages

        messages = render_messages(self.task, self.state, history=self.history, history_len=self.history_len)
        if self.feedback:
            messages[-1] = dict(messages[-1], content=_with_feedback(messages[-1]["content"], self.feedback))
        return messages


def _with_feedback(text: str, feedback: list[str]) -> str:
    """Robotouille's retry rule shows the refused answers of this step before the new try."""
    if not feedback:
        return text
    return text.rstrip("\n") + "\n\n" + "\n".join(feedback) + "\n"


@dataclass
class Turn:
    """One answer of the policy and what the simulator made of it."""

    step: int
    answer: str
    kind: str
    action: str | None
    feedback: str | None
    uses_step: bool
    goals_unmet: int

    @property
    def valid(self) -> bool:
        return self.kind == "valid"

    def to_json(self) -> dict:
        return {"step": self.step, "answer": self.answer, "kind": self.kind, "action": self.action,
                "valid": self.valid, "feedback": self.feedback, "uses_step": self.uses_step,
                "goals_unmet": self.goals_unmet}


@dataclass
class EpisodeResult:
    """A finished episode. `end` is goal, step_limit, invalid_tries, invalid_answer or quit."""

    problem: EvalProblem
    policy: str
    run: int
    episode: int
    steps: int
    success: bool
    end: str
    turns: list[Turn]

    @property
    def answers(self) -> int:
        return len(self.turns)

    @property
    def invalid_answers(self) -> int:
        return sum(not turn.valid for turn in self.turns)

    @property
    def actions(self) -> list[str]:
        """The actions applied, in PDDL form: the plan this episode executed."""
        return [turn.action for turn in self.turns if turn.valid]

    @property
    def optimal_success(self) -> bool:
        return self.success and self.steps == self.problem.optimal_length

    def to_json(self) -> dict:
        problem = self.problem
        return {"instance": problem.name, "task": problem.task_name, "seed": problem.seed, "source": problem.source,
                "group": problem.group, "policy": self.policy, "run": self.run,
                "optimal_length": problem.optimal_length, "step_limit": problem.step_limit,
                "steps": self.steps, "success": self.success, "optimal_success": self.optimal_success, "end": self.end,
                "answers": self.answers, "invalid_answers": self.invalid_answers,
                "actions": self.actions,
                "turns": [turn.to_json() for turn in self.turns]}


# ---------------------------------------------------------------------------------------------
# The episode loop


class Trace:
    """Receives every event of an evaluation; the base class ignores them (`--quiet`)."""

    def episode_start(self, problem: EvalProblem, policy: str, run: int) -> None:
        pass

    def turn(self, problem: EvalProblem, run: int, turn: Turn, tries: int) -> None:
        pass

    def episode_end(self, result: EpisodeResult) -> None:
        pass


class _Episode:
    """The mutable state of one episode while it is being played."""

    def __init__(self, problem: EvalProblem, episode: int, run: int, history_len: int) -> None:
        self.problem = problem
        self.episode = episode
        self.run = run
        self.history_len = history_len
        self.state = problem.task.init
        self.steps = 0
        self.tries = 0
        self.history: list[int] = []
        self.feedback: list[str] = []
        self.turns: list[Turn] = []
        self.end: str | None = "goal" if problem.task.is_goal(self.state) else None
        if self.end is None and problem.step_limit <= 0:
            self.end = "step_limit"

    def observation(self) -> Observation:
        return Observation(self.problem, self.state, self.steps, list(self.history), list(self.feedback),
                           self.episode, self.run, self.history_len)

    def take(self, answer: str, invalid: str) -> Turn:
        from plannerl.tasks.actions import parse_action

        task = self.problem.task
        answer = answer if isinstance(answer, str) else ""
        parsed = parse_action(task, self.state, answer)
        step = self.steps + 1
        if parsed.kind == "valid":
            self.state = task.apply(self.state, parsed.action)
            self.history.append(parsed.action)
            self.steps = step
            self.tries = 0
            self.feedback = []
            turn = Turn(step, answer, "valid", task.actions[parsed.action].pddl, None, True, len(task.unmet_goals(self.state)))
            if task.is_goal(self.state):
                self.end = "goal"
            elif self.steps >= self.problem.step_limit:
                self.end = "step_limit"
            return self._record(turn)
        action = task.actions[parsed.action].pddl if parsed.action is not None else None
        feedback = _feedback(task, parsed)
        turn = Turn(step, answer, parsed.kind, action, feedback, invalid == "step", len(task.unmet_goals(self.state)))
        self.tries += 1
        if invalid == "retry":
            self.feedback.append(feedback)
            if self.tries >= MAX_TRIES:
                self.end = "invalid_tries"
        elif invalid == "step":
            self.steps = step
            self.tries = 0
            self.feedback = [feedback]
            if self.steps >= self.problem.step_limit:
                self.end = "step_limit"
        else:
            self.end = "invalid_answer"
        return self._record(turn)

    def _record(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def result(self, policy: str) -> EpisodeResult:
        return EpisodeResult(self.problem, policy, self.run, self.episode, self.steps, self.end == "goal",
                             self.end or "unfinished", self.turns)


def _feedback(task: Task, parsed) -> str:
    """One line telling the agent why its answer was refused (shown to it on the next try)."""
    if parsed.kind == "not_applicable":
        unmet = ", ".join(parsed.unmet) if parsed.unmet else "none listed"
        return f"Invalid action: {task.actions[parsed.action].pddl} does not apply here; unmet preconditions: {unmet}."
    reason = parsed.reason.rstrip(".") if parsed.reason else "no action could be read"
    return f"Invalid answer: {reason}."


def play(problems: Sequence[EvalProblem], policy, *, invalid: str = "retry", runs: int = 1, history_len: int = 5,
         trace: Trace | None = None, on_result: Callable[[EpisodeResult], None] | None = None,
         first_episode: int = 0) -> list[EpisodeResult]:
    """Play every problem `runs` times; episodes of a batch advance in lockstep.

    The policy answers `policy.batch_size` episodes per call (1 for the cheap policies, so
    traces read one episode at a time). Results come back in problem order, run by run, whatever
    order the episodes finish in. `on_result` is called as each episode finishes, so a caller
    interrupted with Ctrl-C still holds every finished episode. Episode numbers (`episode`)
    count from `first_episode`.
    """
    _check_play_options(invalid, runs)
    trace = trace or Trace()
    jobs = [(run, index, problem) for run in range(runs) for index, problem in enumerate(problems, first_episode)]
    batch_size = max(1, int(getattr(policy, "batch_size", 1)))
    results: list[EpisodeResult] = []
    for start in range(0, len(jobs), batch_size):
        batch = [_Episode(problem, index, run, history_len) for run, index, problem in jobs[start:start + batch_size]]
        results.extend(_play_batch(batch, policy, invalid, trace, on_result))
    return results


def _check_play_options(invalid: str, runs: int) -> None:
    if invalid not in INVALID_MODES:
        raise PlannerlError(f"--invalid must be one of {', '.join(INVALID_MODES)}, got {invalid!r}")
    if runs < 1:
        raise PlannerlError(f"--runs must be at least 1, got {runs}")


def _play_batch(batch: list[_Episode], policy, invalid: str, trace: Trace,
                on_result: Callable[[EpisodeResult], None] | None) -> list[EpisodeResult]:
    """Advance a batch of episodes in lockstep: one policy call answers every unfinished one."""
    name = policy.name
    finished: dict[int, EpisodeResult] = {}

    def finish(position: int, episode: _Episode) -> None:
        result = episode.result(name)
        finished[position] = result
        if on_result is not None:
            on_result(result)  # recorded before it is shown: an episode seen finished is in the report
        trace.episode_end(result)

    for episode in batch:
        trace.episode_start(episode.problem, name, episode.run)
    for position, episode in enumerate(batch):
        if episode.end is not None:
            finish(position, episode)
    while len(finished) < len(batch):
        active = [(position, episode) for position, episode in enumerate(batch) if position not in finished]
        try:
            answers = list(policy.act([episode.observation() for _, episode in active]))
        except QuitEpisode:
            for position, episode in active:
                episode.end = "quit"
                finish(position, episode)
            break
        if len(answers) != len(active):
            raise PlannerlError(f"policy {name} gave {len(answers)} answers for {len(active)} episodes")
        for (position, episode), answer in zip(active, answers):
            turn = episode.take(answer, invalid)
            trace.turn(episode.problem, episode.run, turn, episode.tries)
            if episode.end is not None:
                finish(position, episode)
    return [finished[position] for position in range(len(batch))]


# ---------------------------------------------------------------------------------------------
# Metrics


def _mean_std(values: Sequence[float]) -> dict:
    if not values:
        return {"mean": None, "std": None}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": round(mean, 6), "std": round(std, 6)}


def metrics(results: Sequence[EpisodeResult]) -> dict:
    """SR, ASAT, ASST, optimal SR and invalid-answer rate, each as mean and std over episodes."""
    successes = [r for r in results if r.success]
    answers = sum(r.answers for r in results)
    invalid = sum(r.invalid_answers for r in results)
    invalid_rate = _mean_std([r.invalid_answers / r.answers for r in results if r.answers])
    invalid_rate["mean"] = round(invalid / answers, 6) if answers else None
    return {
        "episodes": len(results),
        "successes": len(successes),
        "answers": answers,
        "invalid_answers": invalid,
        "sr": _mean_std([float(r.success) for r in results]),
        "asat": _mean_std([float(r.steps) for r in results]),
        "asst": _mean_std([float(r.steps) for r in successes]),
        "optimal_sr": _mean_std([float(r.optimal_success) for r in results]),
        "invalid_rate": invalid_rate,
        "mean_optimal_length": _mean_std([float(r.problem.optimal_length) for r in results]),
    }


def group_results(results: Iterable[EpisodeResult]) -> dict[tuple[str, str], list[EpisodeResult]]:
    """(policy, task-or-domain) -> its episodes, in first-seen order."""
    groups: dict[tuple[str, str], list[EpisodeResult]] = {}
    for result in results:
        groups.setdefault((result.policy, result.problem.group), []).append(result)
    return groups


def sr_matrix(results: Sequence[EpisodeResult]) -> dict:
    """The generalisation matrix: rows are policies (trained on), columns tasks (evaluated on)."""
    groups = group_results(results)
    rows = list(dict.fromkeys(policy for policy, _ in groups))
    columns = list(dict.fromkeys(column for _, column in groups))
    values = [[metrics(groups[(row, column)])["sr"]["mean"] if (row, column) in groups else None for column in columns]
              for row in rows]
    return {"rows": rows, "columns": columns, "sr": values}


def build_report(results: Sequence[EpisodeResult], config: dict, *, interrupted: bool = False) -> dict:
    """Everything a run measured, with no timings: the same seed gives the same bytes."""
    groups = group_results(results)
    return {
        "format": REPORT_FORMAT,
        "config": config,
        "interrupted": interrupted,
        "metrics": metrics(results),
        "groups": [{"policy": policy, "group": group, "metrics": metrics(episodes)} for (policy, group), episodes in groups.items()],
        "matrix": sr_matrix(results),
        "episodes": [result.to_json() for result in results],
    }


def write_report(path: str | Path, results: Sequence[EpisodeResult], config: dict, *, interrupted: bool = False) -> Path:
    from plannerl.atomic import write_json

    return write_json(path, build_report(results, config, interrupted=interrupted))


def evaluate_policies(policies: Sequence, problems: Iterable[EvalProblem], *, invalid: str = "retry", runs: int = 1,
                      history_len: int = 5, trace: Trace | None = None, report: str | Path | None = None,
                      config: dict | None = None) -> list[EpisodeResult]:
    """Every policy plays every problem; the report is written even when Ctrl-C stops the run.

    `problems` may be lazy (`iter_problems_from_tasks`): they are taken a batch at a time (the
    largest policy batch), and every policy plays that batch before the next is labelled. The
    results (and the report) are ordered by policy, run and problem whatever the play order.
    On an interruption (or any error) the report holds the episodes finished so far and says
    `"interrupted": true`; the exception is then re-raised.
    """
    _check_play_options(invalid, runs)
    finished: list[tuple[int, EpisodeResult]] = []
    complete = False
    chunk = max([1, *(int(getattr(policy, "batch_size", 1)) for policy in policies)])
    source = iter(problems)
    seen = 0
    try:
        while batch := list(islice(source, chunk)):
            for number, policy in enumerate(policies):
                play(batch, policy, invalid=invalid, runs=runs, history_len=history_len, trace=trace, first_episode=seen,
                     on_result=lambda result, number=number: finished.append((number, result)))
            seen += len(batch)
        if not seen:
            raise PlannerlError("nothing to evaluate: give --task TASK or PROBLEM files")
        complete = True
    finally:
        finished.sort(key=lambda item: (item[0], item[1].run, item[1].episode))
        results = [result for _, result in finished]
        if report is not None and (seen or finished):
            write_report(report, results, config or {}, interrupted=not complete)
    return results


# ---------------------------------------------------------------------------------------------
# Rich output: the live trace and the summary tables


class RichTrace(Trace):
    """Prints each answer as it is judged: step, action, valid or why not, goals still unmet."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console()

    def episode_start(self, problem: EvalProblem, policy: str, run: int) -> None:
        from rich.markup import escape

        run_text = f" run {run}" if run else ""
        self.console.rule(f"{escape(policy)} on {escape(_label(problem))}{run_text}: optimal {problem.optimal_length} steps, "
                          f"limit {problem.step_limit}, {len(problem.task.unmet_goals(problem.task.init))} goals unmet",
                          align="left")

    def turn(self, problem: EvalProblem, run: int, turn: Turn, tries: int) -> None:
        from rich.markup import escape

        where = f"[dim]{escape(_label(problem))}[/] {turn.step:3d}/{problem.step_limit}"
        if turn.valid:
            self.console.print(f"{where} [green]ok[/]   {escape(turn.action or '')}  [dim]goals unmet: {turn.goals_unmet}[/]")
            return
        shown = turn.answer if len(turn.answer) <= 80 else turn.answer[:77] + "..."
        attempt = f"try {tries}/{MAX_TRIES} " if not turn.uses_step and tries else ""
        self.console.print(f"{where} [red]bad[/]  {attempt}{escape(repr(shown))}: {escape(turn.feedback or '')}")

    def episode_end(self, result: EpisodeResult) -> None:
        from rich.markup import escape

        problem = result.problem
        if result.success:
            tag = "[green]optimal[/]" if result.optimal_success else f"[yellow]{result.steps - problem.optimal_length} over optimal[/]"
            text = f"[bold green]success[/] in {result.steps} steps ({tag})"
        else:
            text = f"[bold red]failed[/] ({result.end.replace('_', ' ')}) after {result.steps} steps"
        self.console.print(f"[dim]{escape(_label(problem))}[/] {text}, {result.invalid_answers} invalid of {result.answers} answers")


def _label(problem: EvalProblem) -> str:
    if problem.task_name is not None:
        return f"{problem.task_name}#{'base' if problem.seed is None else problem.seed}"
    return problem.source or problem.name


def _fmt(stat: dict, digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def summary_table(results: Sequence[EpisodeResult]):
    """A Rich table: one row per (policy, task) with every metric as mean ± std."""
    from rich.table import Table

    table = Table(title="Evaluation summary (mean ± std over episodes)")
    for column in ("policy", "task", "episodes", "SR", "ASAT", "ASST", "optimal SR", "invalid rate", "optimal length"):
        table.add_column(column, justify="left" if column in ("policy", "task") else "right")
    for (policy, group), episodes in group_results(results).items():
        m = metrics(episodes)
        table.add_row(policy, group, str(m["episodes"]), _fmt(m["sr"]), _fmt(m["asat"], 1), _fmt(m["asst"], 1),
                      _fmt(m["optimal_sr"]), _fmt(m["invalid_rate"]), _fmt(m["mean_optimal_length"], 1))
    return table


def matrix_table(matrix: dict):
    """The generalisation matrix as a Rich table: rows trained on, columns evaluated on."""
    from rich.table import Table

    table = Table(title="SR: trained on (rows) x evaluated on (columns)")
    table.add_column("policy \\ task")
    for column in matrix["columns"]:
        table.add_column(column, justify="right")
    for row, values in zip(matrix["rows"], matrix["sr"]):
        table.add_row(row, *("-" if v is None else f"{v:.2f}" for v in values))
    return table
