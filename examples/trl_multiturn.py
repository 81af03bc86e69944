"""Multi-turn GRPO with TRL on a plannerl environment (CPU is fine), or single-turn GRPO on the same rows.

    python examples/trl_multiturn.py --model runs/x/sft/model --task burger --turns multi --out runs/mt

Starts from a trained model (`plannerl train` writes one per stage), trains it with TRL's
GRPOTrainer on the states of the oracle's plans for `--train-seeds`, then plays `--eval-seeds`
with the trained model and prints SR and steps:

- `--turns multi`: each sampled answer is played in `plannerl/Cooking-v0` and the current model
  plays the episode on; the answer earns the episode's return (`plannerl.envs.trl_rollout`,
  TRL's `rollout_func`).
- `--turns single`: the answer alone earns the oracle's single-turn reward (1 when it is on a
  shortest plan), the paper's setting, on exactly the same rows and samples.

`--starts visited` adds every state the start model's own greedy episodes visit (where it goes
wrong) to the oracle plans' states. `--sample text` samples free-text answers token by token; `--sample choice` samples among the
valid actions by the model's probability of each (the policy the evaluation plays, sampled).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from plannerl.agents.model import configure_torch_cpu
from plannerl.atomic import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder, e.g. runs/x/sft/model")
    parser.add_argument("--task", default="burger")
    parser.add_argument("--turns", choices=("multi", "single"), default="multi")
    parser.add_argument("--sample", choices=("text", "choice"), default="text")
    parser.add_argument("--starts", choices=("expert", "visited"), default="expert",
                        help="rows: the states of the oracle's plans, or those plus every state the start model's own episodes visit")
    parser.add_argument("--train-seeds", default="3000:3049")
    parser.add_argument("--eval-seeds", default="5000:5019")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--group", type=int, default=8, help="answers sampled per prompt")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per optimizer step")
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    configure_torch_cpu(1)

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from plannerl.agents.episodes import play
    from plannerl.agents.model import load_model
    from plannerl.agents.policies import ModelPolicy, prompt_style_of
    from plannerl.agents.problems import problems_from_tasks
    from plannerl.envs import PlanningEnv
    from plannerl.envs.trl_rollout import EpisodeRollout, episode_return, episode_success
    from plannerl.seeds import parse_seeds

    started = time.process_time()
    model, tokenizer = load_model(args.model)
    # the prompt style and history the model was trained on (`plannerl train` records both)
    style, history_len = prompt_style_of(model), getattr(model.config, "plannerl_history_len", None) or 1
    multi = args.turns == "multi"
    env = PlanningEnv(args.task, args.train_seeds, invalid="step", style=style, history_len=history_len,
                      reward="goal" if multi else "optimal")
    rollout = EpisodeRollout(env, sample=args.sample, play_on=multi)
    rows = rollout.expert_starts(parse_seeds(args.train_seeds))
    if args.starts == "visited":
        known = {row["prompt"] for row in rows}
        rows += [row for row in rollout.visited_starts(model, tokenizer, parse_seeds(args.train_seeds)) if row["prompt"] not in known]
    dataset = Dataset.from_list(rows)
    print(f"{len(rows)} rows ({args.starts} starts)")
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, learning_rate=args.learning_rate, lr_scheduler_type="constant",
        per_device_train_batch_size=args.group * args.prompts, num_generations=args.group, temperature=1.0,
        top_p=1.0, top_k=0, beta=0.0, loss_type="dapo", max_completion_length=48, logging_steps=5,
        save_strategy="no", seed=args.seed, report_to="none", reward_weights=[1.0, 0.0],
        bf16=False, use_cpu=not torch.cuda.is_available(),
    )
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=config, train_dataset=dataset,
        reward_funcs=[episode_return, episode_success], rollout_func=rollout,
    )
    trainer.train()
    trainer.save_model(args.out + "/model")
    tokenizer.save_pretrained(args.out + "/model")
    minutes = (time.process_time() - started) / 60

    policy = ModelPolicy(args.out + "/model", constrained=True)
    results = play(problems_from_tasks([args.task], parse_seeds(args.eval_seeds)), policy, history_len=history_len)
    wins = [r for r in results if r.success]
    write_json(Path(args.out) / "result.json", {"turns": args.turns, "sample": args.sample, "starts": args.starts,
                                                "rows": len(rows), "steps": args.steps, "cpu_minutes": round(minutes, 2),
                                                "eval_seeds": args.eval_seeds, "sr": len(wins) / len(results)})
    print(f"{args.turns}-turn GRPO ({args.sample} samples), {args.steps} steps, {minutes:.1f} CPU min: "
          f"{args.task} SR {len(wins) / len(results):.2f} ({len(wins)}/{len(results)}), "
          f"ASST {sum(r.steps for r in wins) / max(1, len(wins)):.2f}")


if __name__ == "__main__":
    main()
