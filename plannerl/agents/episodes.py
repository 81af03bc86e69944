"""One episode: a policy plays an instance against the PDDL simulator, answer by answer.

Render the state -> the policy answers text -> `plannerl.tasks.actions.parse_action` turns it
into a ground action -> the simulator checks the PDDL preconditions -> the action is applied,
or the answer is refused with feedback naming the unmet preconditions -> until the goal holds
or the step limit (`plannerl.agents.problems`) is reached.

Invalid answers (unparseable text, or an action whose preconditions do not hold) follow one of
three modes:

- `retry` (default, Robotouille's rule): the answer is refused with feedback and the policy
  tries again without using a step; the 5th invalid answer at the same step ends the episode
  as a failure.
- `step`: an invalid answer uses a step (the state does not change).
- `stop`: the first invalid answer ends the episode as a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from plannerl.agents.problems import EvalProblem
from plannerl.errors import PlannerlError
from plannerl.pddl.task import Task
from plannerl.tasks.actions import parse_action
from plannerl.tasks.render import render_messages
from plannerl.tasks.styles import get_style

INVALID_MODES = ("retry", "step", "stop")
MAX_TRIES = 5


class QuitEpisode(Exception):  # noqa: N818 - a control signal, not an error
    """Raised by an interactive policy when the person quits; the episode ends unfinished."""


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
    # every state this episode has been in, this one included (`ModelPolicy(avoid_revisits=True)` reads it)
    visited: frozenset[int] = frozenset()
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
        text = get_style(style).prompt(self.task, self.state, history=self.history, history_len=self.history_len)
        return _with_feedback(text, self.feedback)

    def messages(self) -> list[dict]:
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



class Trace:
    """Receives every event of an evaluation; the base class ignores them (`--quiet`)."""

    def episode_start(self, problem: EvalProblem, policy: str, run: int) -> None:
        pass

    def turn(self, problem: EvalProblem, run: int, turn: Turn, tries: int) -> None:
        pass

    def episode_end(self, result: EpisodeResult) -> None:
        pass


class Episode:
    """The mutable state of one episode while it is being played (the simulator `play` and `plannerl.envs` step)."""

    def __init__(self, problem: EvalProblem, episode: int, run: int, history_len: int) -> None:
        self.problem = problem
        self.episode = episode
        self.run = run
        self.history_len = history_len
        self.state = problem.task.init
        self.steps = 0
        self.tries = 0
        self.history: list[int] = []
        self.visited: set[int] = {self.state}
        self.feedback: list[str] = []
        self.turns: list[Turn] = []
        self.end: str | None = "goal" if problem.task.is_goal(self.state) else None
        if self.end is None and problem.step_limit <= 0:
            self.end = "step_limit"

    def observation(self) -> Observation:
        return Observation(self.problem, self.state, self.steps, list(self.history), list(self.feedback),
                           self.episode, self.run, self.history_len, frozenset(self.visited))

    def take(self, answer: str, invalid: str) -> Turn:
        task = self.problem.task
        answer = answer if isinstance(answer, str) else ""
        parsed = parse_action(task, self.state, answer)
        step = self.steps + 1
        if parsed.kind == "valid":
            self.state = task.apply(self.state, parsed.action)
            self.history.append(parsed.action)
            self.visited.add(self.state)
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
    check_play_options(invalid, runs)
    trace = trace or Trace()
    jobs = [(run, index, problem) for run in range(runs) for index, problem in enumerate(problems, first_episode)]
    batch_size = max(1, int(getattr(policy, "batch_size", 1)))
    results: list[EpisodeResult] = []
    for start in range(0, len(jobs), batch_size):
        batch = [Episode(problem, index, run, history_len) for run, index, problem in jobs[start:start + batch_size]]
        results.extend(_play_batch(batch, policy, invalid, trace, on_result))
    return results


def check_play_options(invalid: str, runs: int) -> None:
    """Refuse a bad --invalid or --runs before any episode starts."""
    if invalid not in INVALID_MODES:
        raise PlannerlError(f"--invalid must be one of {', '.join(INVALID_MODES)}, got {invalid!r}")
    if runs < 1:
        raise PlannerlError(f"--runs must be at least 1, got {runs}")


def _play_batch(batch: list[Episode], policy, invalid: str, trace: Trace,
                on_result: Callable[[EpisodeResult], None] | None) -> list[EpisodeResult]:
    """Advance a batch of episodes in lockstep: one policy call answers every unfinished one."""
    name = policy.name
    finished: dict[int, EpisodeResult] = {}

    def finish(position: int, episode: Episode) -> None:
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


