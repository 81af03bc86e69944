"""The evaluation that ends a run: SR/ASAT/ASST of a stage's model on each evaluation split
(`plannerl.train.sources.eval_splits`: the evaluation seeds and the held-out seeds of a recipe
run, or a domain run's training and held-out problems), per task, with each split's full
report (every episode) in run/eval/<stage>-<split>.json."""

from __future__ import annotations

from pathlib import Path

from plannerl.agents.episodes import play
from plannerl.agents.metrics import build_report
from plannerl.agents.policies import ModelPolicy
from plannerl.train.run import Run
from plannerl.train.sources import eval_splits, split_problems, split_size


def eval_episodes(config: dict) -> int:
    """How many episodes one stage's evaluation plays (for its progress bar)."""
    return sum(split_size(config, split) for split in eval_splits(config))


def evaluate_model(run: Run, stage: str, model_dir: Path, progress=None) -> dict:
    """{split: {task: metrics}} of the model; a split already reported is read back."""
    config, evaluation = run.config, run.config["eval"]
    summary = {}
    for split in eval_splits(config):
        def report(split: str = split) -> dict:
            policy = ModelPolicy(str(model_dir), label=stage, constrained=evaluation["constrained"], choice=evaluation["choice"],
                                 avoid_revisits=evaluation["avoid_revisits"], batch_size=evaluation["batch_size"])
            skipped: list[str] = []  # instances past the planner's state limit: listed in the report, not played
            results = play(split_problems(config, split, skipped), policy, invalid=evaluation["invalid"],
                           history_len=config["data"]["history_len"], on_result=(lambda _: progress()) if progress else None)
            for _ in skipped if progress else ():  # counted in the bar's total (eval_episodes): the bar ends full
                progress()
            return build_report(results, {"stage": stage, "split": split, "model": str(model_dir), "train_config": config},
                                skipped=skipped)

        groups = run.cached(f"eval/{stage}-{split}.json", report)["groups"]
        summary[split] = {entry["group"]: entry["metrics"] for entry in groups}
        run.check_interrupt(f"evaluation of {stage}")
    return summary
