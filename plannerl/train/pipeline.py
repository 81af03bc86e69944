"""The stage sequence behind `plannerl train`: rows -> base model -> SFT -> GRPO -> recovery
rounds -> evaluation, each stage skipped when its result is already in the run folder, so
`--resume` redoes at most the interrupted stage, from its last trainer checkpoint."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from plannerl.agents.distributed import barrier, init_process_group, is_main_process, main_process_first
from plannerl.agents.model import configure_torch_cpu, resolve_model_source
from plannerl.atomic import write_json
from plannerl.progress import quiet_progress, rich_progress
from plannerl.train.config import is_domain_run, training_tasks
from plannerl.train.evaluation import eval_episodes, evaluate_model
from plannerl.train.grpo import grpo_generation, run_grpo
from plannerl.train.models import base_model
from plannerl.train.recovery import validated, visited_rows
from plannerl.train.rows import recovery_rows, training_rows
from plannerl.train.run import Run, StageClock, publish
from plannerl.train.sft import run_sft
from plannerl.train.sources import check_problem_sets, data_source, row_units


def train(config: dict, out_dir: str | Path, *, resume: bool = False, force: bool = False, callbacks=(),
          say: Callable[..., None] = print, progress: bool = True) -> dict:
    """Run the whole pipeline into `out_dir` and return its summary (also run/summary.json).

    Wall-clock times go to run/timings.json (per stage, summed over the sessions of a resumed
    run), not into the summary or the metrics, so the same config and seed write the same
    summary and metrics."""
    if config["model"] != "builtin":
        resolve_model_source(config["model"])  # a bad --model fails now, not after the data is built
    if is_domain_run(config):
        check_problem_sets(config)
    configure_torch_cpu(config["runtime"]["threads"])
    if init_process_group() and not is_main_process():  # torchrun / accelerate launch: the main process reports
        say, progress = (lambda *args, **kwargs: None), False
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")  # TRL's own deprecated-name uses
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    bars = rich_progress if progress else quiet_progress
    with main_process_first():
        run = Run(out_dir, config, resume=resume, force=force)
    run.progress = progress
    clock = StageClock(run, resume)
    with run.catch_interrupts():
        rows, stage_models, visited, model_dir = _train_stages(run, clock, bars, say, callbacks)
        final = publish(run, model_dir) if is_main_process() else run.path("model")
        barrier()
        clock.total_training()
        evaluations = _evaluate_stages(run, clock, stage_models, bars, say)
    summary = {"run": str(run.root), "task": ", ".join(training_tasks(config)), "rows": len(rows), "visited_rows": len(visited),
               "model": str(final), "stages": sorted(stage_models), "evaluation": evaluations}
    if is_main_process():
        run.plot_curves()
        write_json(run.path("summary.json"), summary)
    clock.save()  # with training_total, also when no evaluation stage ran
    return dict(summary, seconds=clock.seconds)


def _train_stages(run: Run, clock: StageClock, bars, say, callbacks) -> tuple[list[dict], dict[str, Path], list[dict], Path]:
    """Rows, the base model, SFT, GRPO and the recovery rounds: the rows, the model of each stage
    that ran, the rows the rounds visited, and the model training ends with."""
    config = run.config
    with main_process_first():  # the main process builds and writes them, the others read them
        rows = _rows(run, bars)
        model_dir = base_model(run, rows)
    say(f"data: {len(rows)} training rows from {data_source(config)}")
    clock.lap("data_and_base_model")
    stage_models: dict[str, Path] = {}
    if config["sft"]["steps"]:
        say(f"sft: {config['sft']['steps']} steps")
        model_dir = stage_models["sft"] = run_sft(run, "sft", model_dir, rows, steps=config["sft"]["steps"], callbacks=callbacks)
        clock.lap("sft")
    if config["grpo"]["steps"]:
        say(f"grpo: {config['grpo']['steps']} steps, reward {config['grpo']['reward']}")
        say(grpo_generation(config["runtime"]["vllm"])[1])
        model_dir = stage_models["grpo"] = run_grpo(run, "grpo", model_dir, rows, steps=config["grpo"]["steps"],
                                                    callbacks=callbacks)
        clock.lap("grpo")
    visited: list[dict] = []
    for k in range(1, config["recovery"]["rounds"] + 1):
        model_dir = stage_models["recovery"] = _recovery_round(run, f"recovery-{k}", model_dir, rows, visited, bars, say,
                                                               callbacks)
        clock.lap(f"recovery-{k}")
    return rows, stage_models, visited, model_dir


def _rows(run: Run, bars) -> list[dict]:
    """The training rows (`plannerl.train.rows.training_rows`), built once into run/data/train.jsonl."""
    def build() -> list[dict]:
        with bars("instances -> rows", row_units(run.config)) as advance:
            return training_rows(run.config, progress=advance)

    rows = run.cached("data/train.jsonl", build)
    run.check_interrupt("data generation")
    return rows


def _recovery_round(run: Run, stage: str, model_dir: Path, rows: list[dict], visited: list[dict], bars, say,
                    callbacks) -> Path:
    """One round: roll out, add the visited rows to `visited`, fine-tune, then validate."""
    recovery = run.config["recovery"]
    say(f"{stage}: rolling out on seeds {recovery['seeds']}, then sft {recovery['sft_steps']} steps")
    with main_process_first():
        visited += visited_rows(run, stage, model_dir, bars)
    candidate = model_dir
    if recovery["sft_steps"]:
        candidate = run_sft(run, stage, candidate, recovery_rows(rows, visited, recovery["mistake_share"]),
                            steps=recovery["sft_steps"],
                            learning_rate=recovery["learning_rate"], callbacks=callbacks)
    if recovery["grpo_steps"]:
        candidate = run_grpo(run, stage + "-grpo", candidate, visited, steps=recovery["grpo_steps"], callbacks=callbacks)
    if recovery["validation_seeds"]:
        return validated(run, stage, model_dir, candidate, bars, say)
    return candidate


def _evaluate_stages(run: Run, clock: StageClock, stage_models: dict[str, Path], bars, say) -> dict:
    """The evaluation of each stage in `eval.stages` that ran."""
    evaluations = {}
    for stage in run.config["eval"]["stages"]:
        if stage in stage_models:
            say(f"eval: {stage} model")
            with bars(f"eval {stage}", eval_episodes(run.config)) as advance, main_process_first():
                evaluations[stage] = evaluate_model(run, stage, stage_models[stage], advance)
            clock.lap(f"eval_{stage}")
    return evaluations
