"""The evaluation that ends a run: SR/ASAT/ASST of a stage's model on the evaluation seeds and
the held-out seeds, per task, with each split's full report (every episode) in
run/eval/<stage>-<split>.json."""

from __future__ import annotations

from pathlib import Path

from plannerl.agents.episodes import play
from plannerl.agents.metrics import build_report
from plannerl.agents.policies import ModelPolicy
from plannerl.agents.problems import problems_from_tasks
from plannerl.seeds import parse_seeds
from plannerl.train.config import training_tasks
from plannerl.train.run import Run

SPLITS = (("seeds", "seeds"), ("heldout", "heldout_seeds"))   # (report name, eval config key)


def eval_tasks(config: dict) -> list[str]:
    """The tasks a run is evaluated on: `eval.tasks`, or the training tasks."""
    return config["eval"]["tasks"] or training_tasks(config)


def eval_episodes(config: dict) -> int:
    """How many episodes one stage's evaluation plays (for its progress bar)."""
    evaluation = config["eval"]
    return len(eval_tasks(config)) * sum(len(parse_seeds(evaluation[key])) for _, key in SPLITS)


def evaluate_model(run: Run, stage: str, model_dir: Path, progress=None) -> dict:
    """{split: {task: metrics}} of the model; a split already reported is read back."""
    config, evaluation = run.config, run.config["eval"]
    summary = {}
    for split, key in SPLITS:
        def report(key: str = key, split: str = split) -> dict:
            problems = problems_from_tasks(eval_tasks(config), parse_seeds(evaluation[key]), exclude=config["exclude_tasks"])
            policy = ModelPolicy(str(model_dir), label=stage, constrained=evaluation["constrained"],
                                 batch_size=evaluation["batch_size"])
            results = play(problems, policy, invalid=evaluation["invalid"], history_len=config["data"]["history_len"],
                           on_result=(lambda _: progress()) if progress else None)
            return build_report(results, {"stage": stage, "split": split, "model": str(model_dir), "train_config": config})

        groups = run.cached(f"eval/{stage}-{split}.json", report)["groups"]
        summary[split] = {entry["group"]: entry["metrics"] for entry in groups}
        run.check_interrupt(f"evaluation of {stage}")
    return summary
