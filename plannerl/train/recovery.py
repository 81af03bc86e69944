"""Recovery rounds (DAgger-style): roll the policy out, label every state it visited with the
oracle, train on them, and keep the round's model only if it does not solve fewer validation
instances than the model it started from."""

from __future__ import annotations

from pathlib import Path

from plannerl.agents.distributed import main_process_first
from plannerl.agents.episodes import play
from plannerl.agents.policies import ModelPolicy
from plannerl.progress import quiet_progress
from plannerl.train.rows import episode_rows, options_of
from plannerl.train.run import Run
from plannerl.train.sources import rollout_count, rollout_problems


def rollouts(run: Run, seeds: str, model_dir: Path, label: str, progress=None, *, avoid_revisits: bool = False) -> list:
    """The model playing the instances of `seeds` (`plannerl.train.sources.rollout_problems`) the way recovery rolls out:
    greedy, `recovery.constrained` with `eval.choice`, the retry rule and the paper's step limits.
    `avoid_revisits` adds the visited-state memory (validation plays the agent as evaluated;
    the rollouts keep the loops a round should learn from)."""
    config = run.config
    problems = rollout_problems(config, seeds)
    policy = ModelPolicy(str(model_dir), label=label, constrained=config["recovery"]["constrained"],
                         choice=config["eval"]["choice"], avoid_revisits=avoid_revisits,
                         batch_size=config["eval"]["batch_size"])
    return play(problems, policy, invalid="retry", history_len=config["data"]["history_len"],
                on_result=(lambda _: progress()) if progress else None)


def visited_rows(run: Run, stage: str, model_dir: Path, bars=quiet_progress) -> list[dict]:
    """Roll the model out on `recovery.seeds` and label every state it visited
    (`plannerl.train.rows.episode_rows`); saved in run/<stage>/rows.jsonl. `bars` makes a
    progress bar for each half: the labelling can take longer than the rollouts (a failed
    episode's states each need an optimal search of their own)."""
    def roll_out() -> list[dict]:
        seeds = run.config["recovery"]["seeds"]
        with bars(f"{stage} rollouts", rollout_count(run.config, seeds)) as advance:
            results = rollouts(run, seeds, model_dir, stage, advance)
        with bars(f"{stage} labelling visited states", len(results)) as advance:
            rows = episode_rows(results, options_of(run.config), progress=advance)
        run.log(stage + "-rollout", 0, {"episodes": len(results), "successes": sum(r.success for r in results),
                                        "rows": len(rows), "mistakes": sum(row["mistake"] for row in rows)})
        return rows

    return run.cached(f"{stage}/rows.jsonl", roll_out)


def validation_successes(run: Run, model_dir: Path, progress=None) -> int:
    """How many `recovery.validation_seeds` instances the model solves (greedy, retry rule,
    the paper's step limits); saved in run/validation/<stage>.json, named by the stage that made
    the model, so no model is played twice (the next round starts from the one this round kept)
    and a resumed run does not play them again."""
    name = stage_of(run, model_dir)

    def validate() -> dict:
        results = rollouts(run, run.config["recovery"]["validation_seeds"], model_dir, name, progress,
                           avoid_revisits=run.config["eval"]["avoid_revisits"])
        return {"model": str(model_dir), "episodes": len(results), "successes": sum(r.success for r in results),
                "failed_seeds": [result.problem.seed for result in results if not result.success]}

    successes = run.cached(f"validation/{name}.json", validate)["successes"]
    run.check_interrupt(f"validation of {name}")
    return successes


def stage_of(run: Run, model_dir: Path) -> str:
    """The stage whose model `model_dir` is ("sft", "recovery-1", ...); "base" for the model
    training started from."""
    try:
        return Path(model_dir).relative_to(run.root).parts[0]
    except ValueError:  # a hub or local model outside the run folder
        return "base"


def validated(run: Run, stage: str, before: Path, after: Path, bars, say) -> Path:
    """The model a recovery round ends with: its trained model if that solves at least as many
    validation instances as the model it started from, else the model it started from.

    Why: a round fine-tunes on a few tens of mistake rows, repeated; measured on
    double_cheese_burger, that fixed the rollouts' mistakes but broke other held starts (SR
    held-out 0.90 -> 0.75), while on cheese_burger it helped (0.85 -> 0.90). Validation seeds,
    which neither training nor evaluation uses, tell the two apart."""
    total = rollout_count(run.config, run.config["recovery"]["validation_seeds"])
    with bars(f"{stage} validation", 2 * total) as advance, main_process_first():
        solved_before = validation_successes(run, before, advance)
        solved_after = validation_successes(run, after, advance)
    kept = solved_after >= solved_before
    run.log(stage + "-validation", 0, {"before": solved_before, "after": solved_after, "kept": kept})
    say(f"{stage}: validation {solved_before}/{total} -> {solved_after}/{total}: "
        + ("keeping the round's model" if kept else "the round made it worse; keeping the model it started from"))
    return after if kept else before
