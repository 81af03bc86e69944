"""`plannerl train`: the whole pipeline (instances -> rows -> SFT -> GRPO -> recovery -> evaluation)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("train")(train)


def train(
    config: Path | None = typer.Option(None, "--config", help="TOML config file (see configs/); flags below override it."),
    task: str | None = typer.Option(None, "--task", help="Task to train on, e.g. cheese_burger."),
    domain: Path | None = typer.Option(None, "--domain", help="Train on this PDDL domain's --problems instead of a cooking task."),
    problems: str | None = typer.Option(None, "--problems", help="With --domain: training problems (a folder, a glob or a file)."),
    heldout: str | None = typer.Option(None, "--heldout", help="With --domain: held-out problems to evaluate on, never trained on."),
    model: str | None = typer.Option(None, "--model", help="'builtin' (built here), a local HF model folder, or a cached hub name."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/TASK-seedN)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for model init, data order and sampling."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace the run already in --out."),
    sft_steps: int | None = typer.Option(None, "--sft-steps", help="SFT optimizer steps (0 skips SFT)."),
    grpo_steps: int | None = typer.Option(None, "--grpo-steps", help="GRPO steps (0 skips GRPO)."),
    recovery_rounds: int | None = typer.Option(None, "--recovery-rounds", help="Roll-out-and-relabel rounds after GRPO."),
    reward: str | None = typer.Option(None, "--reward", help="GRPO reward: optimal (any optimal action) or expert (the paper's)."),
    lora: bool | None = typer.Option(None, "--lora/--no-lora", help="Train a LoRA adapter instead of all weights."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a hub model's own Python code to run."),
    assignments: list[str] = typer.Option([], "--set", help="Any config key, e.g. --set grpo.temperature=1.2 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train an agent: SFT then single-turn GRPO (then optional recovery rounds), evaluated on held-out seeds."""
    from rich.console import Console

    from plannerl.train.config import merge_config, parse_assignment, resolve_config, run_name, saved_config
    from plannerl.train.pipeline import train as run_training

    overrides: dict = {}
    for assignment in assignments:
        overrides = merge_config(overrides, parse_assignment(assignment))
    flags = {"task": task, "model": model, "seed": seed, "trust_remote_code": trust_remote_code or None,
             "domain": None if domain is None else str(domain), "problems": problems}
    overrides.update({key: value for key, value in flags.items() if value is not None})
    for section, key, value in (("sft", "steps", sft_steps), ("grpo", "steps", grpo_steps), ("recovery", "rounds", recovery_rounds),
                                ("grpo", "reward", reward), ("lora", "enabled", lora), ("eval", "problems", heldout)):
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    resolved = resolve_config(config, overrides)
    out = out or Path("runs") / f"{run_name(resolved)}-seed{resolved['seed']}"
    if resume:  # continue with the run's own settings; what is given here must agree with them
        resolved = resolve_config(config, overrides, base=saved_config(out))
    console = Console()
    summary = run_training(resolved, out, resume=resume, force=force, say=console.print, progress=not quiet)
    from plannerl.agents.distributed import is_main_process

    if not is_main_process():  # under torchrun / accelerate launch the main process prints the summary
        return
    console.print(_summary_table(summary))
    console.print(f"run folder: {summary['run']}  (final model: {summary['model']})")


def _summary_table(summary: dict):
    from rich.table import Table

    table = Table(title=f"{summary['task']}: evaluation")
    for column in ("stage", "split", "task", "SR", "ASAT", "ASST", "episodes"):
        table.add_column(column)
    for stage, splits in summary["evaluation"].items():
        for split, groups in splits.items():
            for group, values in groups.items():
                asst = values["asst"]["mean"]
                table.add_row(stage, split, group, f"{values['sr']['mean']:.2f}", f"{values['asat']['mean']:.1f}",
                              "-" if asst is None else f"{asst:.1f}", str(values["episodes"]))
    return table
