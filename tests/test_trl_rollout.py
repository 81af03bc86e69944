"""Multi-turn GRPO through TRL's rollout_func: the rollout plays the evaluator's episodes and TRL trains on them.

A micro model is first taught the answer format on the environment's own expert rows (a few
seconds), so that its episodes differ: some reach the goal, some do not.
"""

from __future__ import annotations

import pytest

from plannerl.agents.episodes import play
from plannerl.agents.policies import ModelPolicy, ScriptedPolicy
from plannerl.envs import PlanningEnv
from plannerl.envs.trl_rollout import EpisodeRollout, episode_return, episode_success
from plannerl.errors import PlannerlError
from plannerl.tasks.answers import answer_line

SEEDS = range(3000, 3004)


@pytest.fixture(scope="module")
def taught_model(tmp_path_factory):
    """A micro model after 100 full-batch steps of answer likelihood on the expert rows of SEEDS,
    recorded as reading todo prompts (as `plannerl train` records it)."""
    import torch

    from plannerl.agents.model import build_default_model, configure_torch_cpu, load_model

    configure_torch_cpu(1)
    rows = EpisodeRollout(PlanningEnv("burger", "3000:3003")).expert_starts(SEEDS)
    folder = build_default_model(tmp_path_factory.mktemp("rollout") / "model", texts=[r["prompt"] for r in rows],
                                 size="micro", seed=0)
    model, tokenizer = load_model(folder)
    model.config.plannerl_prompt, model.config.plannerl_history_len = "todo", 1
    pairs = [(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"],
              tokenizer(answer_line(row["optimal_actions"][0]), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
             for row in rows]
    width = max(len(p) + len(a) for p, a in pairs)
    ids = torch.full((len(pairs), width), tokenizer.pad_token_id)
    labels, mask = torch.full((len(pairs), width), -100), torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (p, a) in enumerate(pairs):
        ids[row, :len(p) + len(a)] = torch.tensor(p + a)
        labels[row, len(p):len(p) + len(a)] = torch.tensor(a)
        mask[row, :len(p) + len(a)] = 1
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):
        optimizer.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(folder)
    return folder


def trainer_for(folder, tmp_path, rollout, dataset, *, temperature: float, steps: int = 2):
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from plannerl.agents.model import load_model

    model, tokenizer = load_model(folder)
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=steps, learning_rate=1e-3, per_device_train_batch_size=8,
                      num_generations=4, temperature=temperature, top_p=1.0, top_k=0, beta=0.0, loss_type="dapo",
                      max_completion_length=48, logging_steps=1, save_strategy="no", seed=0, report_to="none",
                      reward_weights=[1.0, 0.0], bf16=False, use_cpu=not torch.cuda.is_available())
    return GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=dataset, rollout_func=rollout,
                       reward_funcs=[episode_return, episode_success])


def test_reset_actions_start_mid_episode_and_forks_share_the_labelled_instances():
    env = PlanningEnv("burger", "3000:3003", reward="optimal")
    rows = EpisodeRollout(env).expert_starts([3000])
    problem = env.problem(3000)
    assert len(rows) == problem.optimal_length and [row["steps_before"] for row in rows] == list(range(len(rows)))
    plan = [row["optimal_actions_pddl"][0] for row in rows]
    _, info = env.reset(options={"instance": 3000, "actions": plan[:3]})
    assert info["steps"] == 3 and env.prompt() == rows[3]["prompt"] and env.episode.turns == []
    assert env.step(plan[3])[1] == 1.0  # an optimal step from the mid-episode start
    fork = env.fork()
    assert fork.problem(3000) is problem and fork.episode is None
    fork.reset(options={"instance": 3000})
    assert fork.episode.steps == 0 and env.episode.steps == 4  # the fork's episode is its own
    with pytest.raises(PlannerlError, match="not applicable"):
        env.reset(options={"instance": 3000, "actions": plan[1:]})
    with pytest.raises(PlannerlError, match="past the end"):
        env.reset(options={"instance": 3000, "actions": plan + plan[:1]})


@pytest.mark.parametrize("constrained", [False, True])
def test_rollout_episodes_are_the_evaluators_episodes(taught_model, tmp_path, constrained):
    """At a temperature near 0 the sampled first answer is the greedy free-text one, so each
    rollout is the episode `plannerl eval` plays with that first answer and then the model's
    greedy answers (free text, or its most likely valid action), invalid answers using a step;
    its return is the goal, less 0.02 per step and 0.1 per invalid answer."""
    from datasets import Dataset

    env = PlanningEnv("burger", "3000:3003", invalid="step")
    rollout = EpisodeRollout(env, constrained=constrained)
    starts = [rollout.start(seed) for seed in SEEDS]
    trainer = trainer_for(taught_model, tmp_path, rollout, Dataset.from_list(starts), temperature=1e-4)
    out = rollout([row["prompt"] for row in starts], trainer)
    tokenizer = trainer.processing_class
    first = {f"burger_{seed}": tokenizer.decode(ids, skip_special_tokens=True).strip()
             for seed, ids in zip(SEEDS, out["completion_ids"])}

    greedy = ModelPolicy(str(taught_model), constrained=constrained)
    then_greedy = ScriptedPolicy(lambda obs: first[obs.problem.name] if obs.step == 0 else greedy.act([obs])[0])
    results = play([env.problem(seed) for seed in SEEDS], then_greedy, invalid="step", history_len=1)
    expected = [float(r.success) - 0.02 * r.steps - 0.1 * r.invalid_answers for r in results]
    assert out["episode_return"] == pytest.approx(expected)
    assert out["episode_success"] == [float(r.success) for r in results]
    assert len(set(out["episode_return"])) > 1  # the taught model's episodes differ: a group has a signal
    if not constrained:  # the first answer was the greedy one
        free = play([env.problem(seed) for seed in SEEDS], greedy, invalid="step", history_len=1)
        assert [r.to_json()["turns"] for r in free] == [r.to_json()["turns"] for r in results]


def test_single_turn_choice_samples_score_a_valid_answer_by_the_oracle(taught_model, tmp_path):
    """`sample="choice"` draws among the valid answers (near temperature 0: the evaluator's
    constrained choice), and without `play_on` the episode stops there: with `reward="optimal"`
    the return is the oracle's single-turn reward less one step's cost."""
    from datasets import Dataset

    env = PlanningEnv("burger", "3000:3003", invalid="step", reward="optimal")
    rollout = EpisodeRollout(env, sample="choice", play_on=False)
    rows = rollout.expert_starts(SEEDS)[::3]
    trainer = trainer_for(taught_model, tmp_path, rollout, Dataset.from_list(rows), temperature=1e-4)
    out = rollout([row["prompt"] for row in rows], trainer)
    tokenizer = trainer.processing_class
    answers = [tokenizer.decode(ids, skip_special_tokens=True) for ids in out["completion_ids"]]
    assert all(ids[-1] == tokenizer.eos_token_id for ids in out["completion_ids"])

    constrained = ModelPolicy(str(taught_model), constrained=True)
    for row, answer, value in zip(rows, answers, out["episode_return"]):
        env.reset(options=dict(zip(("instance", "actions"), rollout.starts[row["prompt"]])))
        assert answer == constrained.act([env.episode.observation()])[0]
        assert value == pytest.approx(float(answer.removeprefix("Action: ") in row["optimal_actions"]) - 0.02)

    hot = trainer_for(taught_model, tmp_path, rollout, Dataset.from_list(rows), temperature=5.0)  # a flat draw
    out = rollout([row["prompt"] for row in rows] * 4, hot)
    for row, ids, value in zip(rows * 4, out["completion_ids"], out["episode_return"]):
        answer = tokenizer.decode(ids, skip_special_tokens=True).removeprefix("Action: ")
        _, info = env.reset(options=dict(zip(("instance", "actions"), rollout.starts[row["prompt"]])))
        assert answer in info["valid_actions"]
        assert value == pytest.approx(float(answer in row["optimal_actions"]) - 0.02)
    assert 0 < sum(value > 0 for value in out["episode_return"]) < len(rows) * 4  # right and wrong answers both
    with pytest.raises(PlannerlError, match="sample must be one of text, choice"):
        EpisodeRollout(env, sample="beam")


def test_visited_starts_are_the_states_of_the_evaluators_episodes(taught_model):
    from plannerl.agents.model import load_model

    env = PlanningEnv("burger", "3000:3003", invalid="step")
    rollout = EpisodeRollout(env)
    model, tokenizer = load_model(taught_model)
    rows = rollout.visited_starts(model.eval(), tokenizer, SEEDS)
    results = play([env.problem(seed) for seed in SEEDS], ModelPolicy(str(taught_model), constrained=True), history_len=1)
    expected = []
    for result in results:
        for step in range(result.steps):
            env.reset(options={"instance": result.problem.seed, "actions": result.actions[:step]})
            expected.append(env.prompt())
    assert [row["prompt"] for row in rows] != [] and sorted(row["prompt"] for row in rows) == sorted(set(expected))
    assert {row["instance"] for row in rows} == {f"burger_{seed}" for seed in SEEDS}


def test_grpo_trains_on_the_episode_returns(taught_model, tmp_path):
    from datasets import Dataset

    rollout = EpisodeRollout(PlanningEnv("burger", "3000:3003", invalid="step"))
    trainer = trainer_for(taught_model, tmp_path, rollout, Dataset.from_list(rollout.expert_starts(SEEDS)), temperature=1.0)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "rewards/episode_success/mean" in entry]
    assert len(logged) == 2
    assert any(not (p.detach() == before[name]).all() for name, p in trainer.model.named_parameters())


def test_a_prompt_the_rollout_never_started_is_an_error(taught_model, tmp_path):
    from datasets import Dataset

    rollout = EpisodeRollout(PlanningEnv("burger", "3000:3003"))
    starts = [rollout.start(3000)]
    trainer = trainer_for(taught_model, tmp_path, rollout, Dataset.from_list(starts * 8), temperature=1.0)
    with pytest.raises(PlannerlError, match="no start"):
        rollout(["a prompt from elsewhere"], trainer)
    with pytest.raises(PlannerlError, match="step_cost"):
        EpisodeRollout(PlanningEnv("burger", "0"), step_cost=-1)


def test_the_example_script_trains_and_evaluates(taught_model, tmp_path):
    """examples/trl_multiturn.py end to end, both turn modes, on the smallest sizes."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "trl_multiturn.py"
    for turns in ("single", "multi"):
        out = tmp_path / turns
        done = subprocess.run([sys.executable, str(script), "--model", str(taught_model), "--task", "burger", "--turns", turns,
                               "--sample", "choice", "--starts", "visited", "--train-seeds", "3000", "--eval-seeds", "5000",
                               "--steps", "1", "--group", "2", "--prompts", "2", "--out", str(out)],
                              capture_output=True, text=True, timeout=300, env=dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1"))
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads((out / "result.json").read_text())
        assert result["turns"] == turns and result["rows"] >= 7 and 0.0 <= result["sr"] <= 1.0
        assert (out / "model" / "config.json").is_file() and f"{turns}-turn GRPO" in done.stdout
