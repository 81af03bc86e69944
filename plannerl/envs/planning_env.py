"""A Gymnasium environment over any plannerl task: the simulator, the renderer and the oracle behind `reset`/`step`.

One episode plays one instance: a cooking recipe (or "random") on a seed drawn from `seeds`,
or a problem file of a user's domain (`domain` + `problems`). The rules are the evaluator's
(`plannerl.agents.episodes.Episode`): the same answer parser, the same invalid-answer modes and
step limits, so an agent trained here is scored the same way by `plannerl eval`.

- observation: the prompt in `style` (the built-in model reads "todo"); with `observe_facts`, a
  dict of the prompt and the tuple of true facts in PDDL form;
- action: a string (`action_type="text"`: a sentence or a PDDL action, as a model answers) or an
  index into `info["valid_actions"]` (`"discrete"`: `Discrete(max_actions)`, with
  `info["action_mask"]` marking the valid indices);
- reward: "goal" (1 on reaching the goal), "optimal" (1 for an action on some shortest plan, from
  the oracle) or "shaped" (the decrease of the optimal distance h*: 1 for an optimal step, 0
  sideways, -1 backwards or into a dead end); an invalid answer earns 0;
- `terminated` at the goal; `truncated` at the step limit or after the fifth invalid try at one
  step (retry mode); every `info` has `valid_actions` (the answers a model would give),
  `valid_actions_pddl`, `feedback` (why the last answer was refused, else None), `instance`,
  `steps`, `step_limit` and `optimal_length`.
"""

from __future__ import annotations

import copy
import string

import gymnasium
import numpy as np
from gymnasium import spaces

from plannerl.agents.episodes import Episode
from plannerl.agents.problems import EvalProblem, make_problem, problems_from_tasks
from plannerl.errors import PlannerlError
from plannerl.pddl.task import set_bits
from plannerl.seeds import parse_seeds
from plannerl.tasks.generate import check_task, is_random
from plannerl.tasks.problem_sets import find_problems, load_problems
from plannerl.tasks.styles import get_style

REWARDS = ("goal", "optimal", "shaped")
ACTION_TYPES = ("text", "discrete")
INVALID_MODES = ("retry", "step")
CHARSET = string.printable
MAX_PROMPT_CHARS = 200_000
MAX_ANSWER_CHARS = 1_000


class PlanningEnv(gymnasium.Env):
    """`gymnasium.make("plannerl/Cooking-v0", task="burger")`; see the module docstring."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, task: str | None = None, seeds: str = "0:999", *, domain: str | None = None,
                 problems: str | None = None, exclude: tuple[str, ...] = (), action_type: str = "text",
                 reward: str = "goal", invalid: str = "retry", observe_facts: bool = False, style: str = "todo",
                 history_len: int = 1, max_actions: int = 512, render_mode: str | None = None) -> None:
        for name, value, allowed in (("reward", reward, REWARDS), ("action_type", action_type, ACTION_TYPES),
                                     ("invalid", invalid, INVALID_MODES), ("render_mode", render_mode, (None, "ansi"))):
            if value not in allowed:
                raise PlannerlError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        if history_len < 0 or max_actions < 1:
            raise PlannerlError(f"history_len must be >= 0 and max_actions >= 1, got {history_len} and {max_actions}")
        get_style(style)
        self.style, self.reward_kind, self.invalid, self.history_len = style, reward, invalid, history_len
        self.action_type, self.observe_facts, self.render_mode = action_type, observe_facts, render_mode
        self._problems: dict[int, EvalProblem] = {}
        if domain is not None:
            if task is not None or not problems:
                raise PlannerlError("give either task (a cooking recipe) or domain with problems, not both")
            self.task_name, self.exclude = None, ()
            self._files = load_problems(domain, find_problems(problems))
            self.instances = list(range(len(self._files)))
        else:
            if task is None:
                raise PlannerlError("give task (a cooking recipe or 'random') or domain with problems")
            exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
            check_task(task, exclude=exclude if is_random(task) else ())
            self.task_name, self.exclude, self._files = task, exclude, []
            self.instances = parse_seeds(seeds)
        text = spaces.Text(max_length=MAX_PROMPT_CHARS, min_length=0, charset=CHARSET)
        facts = spaces.Sequence(spaces.Text(max_length=MAX_ANSWER_CHARS, min_length=0, charset=CHARSET), stack=False)
        self.observation_space = spaces.Dict({"prompt": text, "facts": facts}) if observe_facts else text
        self.action_space = (spaces.Discrete(max_actions) if action_type == "discrete"
                             else spaces.Text(max_length=MAX_ANSWER_CHARS, min_length=0, charset=CHARSET))
        self.episode: Episode | None = None

    def problem(self, instance: int) -> EvalProblem:
        """The instance (a seed, or an index into the problem files), labelled once and kept."""
        if instance not in self._problems:
            if self._files:
                file = self._files[instance]
                self._problems[instance] = make_problem(file.task, name=file.name, source=str(file.path), oracle=file.oracle)
            else:
                self._problems[instance] = problems_from_tasks([self.task_name], [instance], exclude=self.exclude)[0]
        return self._problems[instance]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new episode on an instance drawn by the env's generator. Options: `instance` picks
        one; `actions` (PDDL actions, valid in turn from its initial state) starts the episode
        after them, their steps counted against the step limit (a mid-episode start state, as
        a training row's: `plannerl.envs.trl_rollout`)."""
        super().reset(seed=seed)
        options = options or {}
        instance = options.get("instance")
        if instance is None:
            instance = self.instances[int(self.np_random.integers(len(self.instances)))]
        elif instance not in self.instances:
            raise PlannerlError(f"instance {instance!r} is not one of this environment's instances")
        self.episode = Episode(self.problem(instance), 0, 0, self.history_len)
        for action in options.get("actions", ()):
            if self.episode.end is not None:
                raise PlannerlError(f"reset actions go past the end of the episode at {action!r}")
            if not self.episode.take(action, "stop").valid:
                raise PlannerlError(f"reset action {action!r} is not applicable in {self.episode.problem.name}")
        self.episode.turns = []
        return self._observation(), self._info()

    def fork(self) -> PlanningEnv:
        """A new environment with the same settings that shares this one's labelled instances:
        one environment per concurrent episode (a rollout batch) labels each instance once."""
        clone = copy.copy(self)
        clone.episode, clone._np_random, clone._np_random_seed = None, None, None
        return clone

    def step(self, action):
        episode = self.episode
        if episode is None or episode.end is not None:
            raise PlannerlError("the episode has ended (or never started): call reset()")
        before = episode.state
        turn = episode.take(self._answer(action), self.invalid)
        reward = self._reward(before, episode.state) if turn.valid else 0.0
        terminated = episode.end == "goal"
        truncated = episode.end in ("step_limit", "invalid_tries")
        info = self._info()
        info["answer_kind"] = turn.kind
        return self._observation(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "ansi" and self.episode is not None:
            return self.prompt()
        return None

    def valid_actions(self) -> list[int]:
        return self.episode.problem.task.applicable(self.episode.state)

    def _answer(self, action) -> str:
        if self.action_type == "text":
            return action if isinstance(action, str) else str(action)
        index, valid = int(action), self.valid_actions()
        if not 0 <= index < len(valid):
            return f"no valid action at index {index}"  # refused by the parser like any unreadable answer
        return self.episode.problem.task.actions[valid[index]].pddl

    def _reward(self, before: int, after: int) -> float:
        problem = self.episode.problem
        if self.reward_kind == "goal":
            return 1.0 if problem.task.is_goal(after) else 0.0
        if self.reward_kind == "optimal":
            applied = self.episode.history[-1]
            return 1.0 if applied in problem.oracle.optimal_actions(before) else 0.0
        h_after = problem.oracle.h_star(after)
        return -1.0 if h_after is None else float(problem.oracle.h_star(before) - h_after)

    def prompt(self) -> str:
        """The current state's prompt in the env's style (what a language-model agent reads)."""
        return self.episode.observation().prompt(self.style)

    def _observation(self):
        prompt = self.prompt()
        if not self.observe_facts:
            return prompt
        task = self.episode.problem.task
        return {"prompt": prompt, "facts": tuple(f"({' '.join(task.facts[i])})" for i in set_bits(self.episode.state))}

    def _info(self) -> dict:
        episode = self.episode
        task, valid = episode.problem.task, self.valid_actions()
        info = {"valid_actions": get_style(self.style).action_sentences(task, episode.state, valid),
                "valid_actions_pddl": [task.actions[a].pddl for a in valid],
                "feedback": episode.feedback[-1] if episode.feedback else None, "instance": episode.problem.name,
                "steps": episode.steps, "step_limit": episode.problem.step_limit,
                "optimal_length": episode.problem.optimal_length}
        if self.action_type == "discrete":
            mask = np.zeros(self.action_space.n, dtype=np.int8)
            mask[:min(len(valid), self.action_space.n)] = 1
            info["action_mask"] = mask
        return info

