"""Multi-turn GRPO through TRL: episodes on `PlanningEnv` behind GRPOTrainer's `rollout_func`.

TRL's single-turn GRPO scores each sampled answer on its own (plannerl's oracle rewards: is it
on a shortest plan?). Here each sampled answer is followed to the end of its episode: the
answer is played in the environment, then the *current* model plays on (greedy, batched over
the whole group; by default choosing the most likely valid action, as `plannerl eval` plays)
until the goal, the step limit or the fifth refused answer, and the answer earns the
episode's return. No oracle is needed for the reward, only the goal test, and an answer is
judged by where it leads under the policy being trained, not by a shortest plan.

Why the gradient flows through the first answer only: TRL scores one token sequence per
completion, and plannerl's prompts re-render the whole state every turn (the policy is
Markov), so later turns cannot be appended to the first one as a transcript without
conditioning the model on text it never sees when it plays. Every row of the dataset is a
start state (an instance and the actions that lead to it), so all turns of an episode are
trained on as rows of their own.

    rollout = EpisodeRollout(PlanningEnv("burger", "3000:3099", invalid="step"))
    dataset = Dataset.from_list(rollout.expert_starts(range(3000, 3100)))
    GRPOTrainer(model=..., reward_funcs=[episode_return, episode_success], rollout_func=rollout,
                args=GRPOConfig(..., reward_weights=[1.0, 0.0]), train_dataset=dataset, processing_class=tokenizer)

`episode_success` with weight 0 only logs the share of episodes that reached the goal. The same
class runs single-turn GRPO on the same rows for comparison (`play_on=False` with an env whose
`reward="optimal"`), and samples either free text or among the valid actions (`sample`).
"""

from __future__ import annotations

from collections.abc import Iterable

from plannerl.envs.planning_env import PlanningEnv
from plannerl.errors import PlannerlError
from plannerl.tasks.answers import answer_line
from plannerl.tasks.styles import get_style

SAMPLES = ("text", "choice")


class EpisodeRollout:
    """`rollout_func(prompts, trainer)` for TRL's GRPOTrainer, playing `env`'s episodes.

    The answer TRL trains on is sampled at the trainer's temperature: free text, token by token
    (`sample="text"`), or one of the valid actions' answer lines, drawn by the model's
    probability of each (`"choice"`: the policy `plannerl eval --constrained` plays, sampled).
    With `play_on` the current model then plays the episode to its end (greedy; its most likely
    valid action when `constrained`, else its free text); without, the episode stops after the
    answer (single-turn: with `reward="optimal"` the env's reward is the oracle's).

    The return is the sum of the environment's rewards (`reward="goal"`: 1 at the goal) minus
    `step_cost` per step and `invalid_cost` per refused answer, counted from the start state on:
    among answers that all reach the goal, the one with the shorter episode gets the larger
    advantage."""

    def __init__(self, env: PlanningEnv, *, sample: str = "text", play_on: bool = True, constrained: bool = True,
                 step_cost: float = 0.02, invalid_cost: float = 0.1, max_new_tokens: int = 48) -> None:
        if sample not in SAMPLES:
            raise PlannerlError(f"sample must be one of {', '.join(SAMPLES)}, got {sample!r}")
        if step_cost < 0 or invalid_cost < 0 or max_new_tokens < 1:
            raise PlannerlError(f"step_cost and invalid_cost must be >= 0 and max_new_tokens >= 1, "
                                f"got {step_cost}, {invalid_cost}, {max_new_tokens}")
        self.env, self.sample, self.play_on, self.constrained = env, sample, play_on, constrained
        self.step_cost, self.invalid_cost, self.max_new_tokens = step_cost, invalid_cost, max_new_tokens
        self._answer_ids: dict[str, list[int]] = {}
        self.starts: dict[str, tuple[int, list[str]]] = {}
        self._pool: list[PlanningEnv] = []

    def start(self, instance: int, actions: list[str] = ()) -> dict:
        """A dataset row: the prompt of `instance` after `actions` (the rollout finds the start
        again by the prompt) and the state's optimal actions, so that single-turn GRPO
        (`plannerl.tasks.rewards.optimal_reward`) can train on the same rows."""
        _, info = self.env.reset(options={"instance": instance, "actions": list(actions)})
        prompt = self.env.prompt()
        self.starts.setdefault(prompt, (instance, list(actions)))
        episode = self.env.episode
        task, optimal = episode.problem.task, episode.problem.oracle.optimal_actions(episode.state)
        return {"prompt": prompt, "instance": info["instance"], "steps_before": info["steps"],
                "optimal_actions": get_style(self.env.style).action_sentences(task, episode.state, optimal),
                "optimal_actions_pddl": [task.actions[a].pddl for a in optimal]}

    def expert_starts(self, instances: Iterable[int]) -> list[dict]:
        """One row per state of each instance's shortest plan (the oracle's canonical one), the
        states single-turn GRPO trains on."""
        rows = []
        for instance in instances:
            problem = self.env.problem(instance)
            state, actions = problem.task.init, []
            while not problem.task.is_goal(state):
                rows.append(self.start(instance, actions))
                action = problem.oracle.label(state).canonical_action
                actions.append(problem.task.actions[action].pddl)
                state = problem.task.apply(state, action)
        return rows

    def visited_starts(self, model, tokenizer, instances: Iterable[int]) -> list[dict]:
        """One row per state the model's own greedy episodes visit (as `_greedy` plays; each
        prompt once): the states where the policy goes wrong, which the oracle's plans never
        reach. Episodes of all instances advance together, one batch per turn."""
        import torch

        instances = list(instances)
        envs = self._envs(len(instances))
        turns = [prompt_and_answers(*env.reset(options={"instance": instance})) for env, instance in zip(envs, instances)]
        rows, seen, running = [], set(), list(range(len(envs)))
        with torch.no_grad():
            while running:
                for index in running:
                    episode = envs[index].episode
                    if turns[index][0] not in seen and not episode.feedback:
                        seen.add(turns[index][0])
                        rows.append((instances[index], [episode.problem.task.actions[a].pddl for a in episode.history]))
                answers = self._greedy(model, tokenizer, [turns[index] for index in running])
                for index, answer in zip(running, answers):
                    observation, _, _, _, info = envs[index].step(answer)
                    turns[index] = prompt_and_answers(observation, info)
                running = [index for index in running if envs[index].episode.end is None]
        return [self.start(instance, actions) for instance, actions in rows]

    def __call__(self, prompts: list, trainer) -> dict:
        import torch

        model, tokenizer = trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class
        trained_on = getattr(model.config, "plannerl_prompt", None)
        if trained_on not in (None, self.env.style):
            raise PlannerlError(f"the model reads {trained_on} prompts but the environment renders {self.env.style} "
                                f"ones: make it with style={trained_on!r}")
        envs, options = self._envs(len(prompts)), []
        for env, prompt in zip(envs, prompts):
            if prompt not in self.starts:
                raise PlannerlError("a prompt the rollout has no start for: build the dataset with EpisodeRollout.start")
            instance, actions = self.starts[prompt]
            options.append(prompt_and_answers(*env.reset(options={"instance": instance, "actions": actions}))[1])
        prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        returns = [0.0] * len(prompts)
        turns = [None] * len(prompts)  # each episode's next turn: (prompt, valid answer lines)
        with torch.no_grad():
            completion_ids = self._sampled(model, tokenizer, prompt_ids, options, trainer.temperature)
            answers = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in completion_ids]
            running = list(range(len(envs)))
            while running:
                for index, answer in zip(running, answers):
                    observation, reward, _, _, info = envs[index].step(answer)
                    returns[index] += reward - (self.invalid_cost if info["answer_kind"] != "valid" else 0.0)
                    turns[index] = prompt_and_answers(observation, info)
                running = [index for index in running if envs[index].episode.end is None and self.play_on]
                if running:  # the current policy plays on, greedy, all open episodes in one batch
                    answers = self._greedy(model, tokenizer, [turns[index] for index in running])
        for index, env in enumerate(envs):
            returns[index] -= self.step_cost * (env.episode.steps - len(self.starts[prompts[index]][1]))
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None,
                "episode_return": returns, "episode_success": [float(env.episode.end == "goal") for env in envs]}

    def _sampled(self, model, tokenizer, ids: list[list[int]], options: list[list[str]], temperature: float) -> list[list[int]]:
        """The sampled answers' tokens (end-of-sequence included when the answer has one), free
        text or one of each prompt's valid answer lines `options`."""
        import torch

        from plannerl.agents.decoding import decode_answer_ids
        from plannerl.agents.scoring import score_answers

        if self.sample == "text":
            return decode_answer_ids(model, tokenizer, ids, max_new_tokens=self.max_new_tokens, sample=True,
                                     temperature=temperature)
        candidates = [[self._tokens(tokenizer, text) for text in answers] for answers in options]
        chosen = []
        for answers, scores in zip(candidates, score_answers(model, ids, candidates, tokenizer.pad_token_id)):
            weights = torch.softmax(torch.tensor(scores) / temperature, dim=0)
            chosen.append(answers[int(torch.multinomial(weights, 1))] if answers else [tokenizer.eos_token_id])
        return chosen

    def _greedy(self, model, tokenizer, turns: list[tuple[str, list[str]]]) -> list[str]:
        """The current model's greedy answers to (prompt, valid answer lines) turns: its most
        likely valid action (`constrained`, as `plannerl eval` plays by default) or its free-text line."""
        from plannerl.agents.decoding import decode_answers
        from plannerl.agents.policies import most_likely_answers

        ids = tokenizer([prompt for prompt, _ in turns], add_special_tokens=False)["input_ids"]
        if not self.constrained:
            return decode_answers(model, tokenizer, ids, max_new_tokens=self.max_new_tokens)
        return most_likely_answers(model, tokenizer.pad_token_id, ids, [answers for _, answers in turns],
                                   lambda text: self._tokens(tokenizer, text))

    def _tokens(self, tokenizer, text: str) -> list[int]:
        from plannerl.agents.policies import answer_token_ids

        if text not in self._answer_ids:
            self._answer_ids[text] = answer_token_ids(tokenizer, text)
        return self._answer_ids[text]

    def _envs(self, count: int) -> list[PlanningEnv]:
        while len(self._pool) < count:
            self._pool.append(self.env.fork())
        return self._pool[:count]


def prompt_and_answers(observation, info: dict) -> tuple[str, list[str]]:
    """What a `PlanningEnv` reset or step returned, as (the prompt, the valid actions' answer
    lines): the turn a language model answers, rendered once by the env."""
    prompt = observation["prompt"] if isinstance(observation, dict) else observation
    return prompt, [answer_line(sentence) for sentence in info["valid_actions"]]


def episode_return(prompts=None, completions=None, completion_ids=None, *, episode_return, **columns) -> list[float]:
    """TRL reward function: the return `EpisodeRollout` measured for each completion's episode."""
    return list(episode_return)


def episode_success(prompts=None, completions=None, completion_ids=None, *, episode_success, **columns) -> list[float]:
    """TRL reward function: 1.0 when the completion's episode reached the goal (weight it 0 to only log it)."""
    return list(episode_success)
