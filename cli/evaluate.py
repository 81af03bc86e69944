"""`plannerl eval` (policies played in the simulator, metrics, reports) and `plannerl play`."""

from __future__ import annotations

from pathlib import Path

import typer

INVALID_HELP = "Invalid answers: retry (feedback, new try without a step, 5 tries per step), step (uses a step), stop (ends the episode)."


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("eval")(eval_command)
    app.command("play")(play_command)


def eval_command(
    problems: list[Path] = typer.Argument(None, help="Explicit PROBLEM files of any domain (domain found beside each, or --domain)."),
    policy: list[str] = typer.Option(["oracle"], "--policy", "-p",
                                     help="oracle, random, or a model folder / cached hub name; LABEL=MODEL names the matrix row. "
                                          "Repeat for several."),
    task: list[str] = typer.Option([], "--task", "-t", help="A generated task (repeat for several)."),
    seeds: str = typer.Option("42:420:42", "--seeds", help="Instance seeds for --task: 7, 0:10 or 42:420:42 (the paper's ten)."),
    base: bool = typer.Option(False, "--base", help="Evaluate each --task on its unrandomised layout instead of --seeds."),
    domain: Path = typer.Option(None, "--domain", help="Domain file for the PROBLEM files."),
    report: Path = typer.Option(None, "--report", help="Write metrics and every episode to this JSON file."),
    invalid: str = typer.Option("retry", "--invalid", help=INVALID_HELP),
    max_steps: int = typer.Option(None, "--max-steps", help="Step limit for every episode (default: the paper's, else 1.5 x optimal)."),
    runs: int = typer.Option(1, "--runs", help="Play every instance this many times (for random or sampling policies)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random policy and of sampling."),
    sample: bool = typer.Option(False, "--sample", help="Models sample instead of greedy decoding."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    constrained: bool = typer.Option(False, "--constrained", help="Models pick the most likely valid action (no free text)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Episodes a model answers per forward pass."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest model answer, in tokens."),
    history_len: int = typer.Option(None, "--history-len",
                                    help="Past actions shown in the prompt (default: what the model was trained with, else 5)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a hub model's own code to run."),
    matrix_png: Path = typer.Option(None, "--matrix-png", help="Save the policy x task success-rate matrix as a PNG heatmap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-step trace; only the summary."),
) -> None:
    """Play policies in the PDDL simulator and report SR, ASAT, ASST, optimal SR and invalid-answer rate."""

    from rich.console import Console

    from plannerl.agents.evaluate import (
        RichTrace,
        Trace,
        iter_problems_from_files,
        iter_problems_from_tasks,
    )
    from plannerl.agents.policies import make_policy, shared_history_len
    from plannerl.errors import PlannerlError

    if not task and not problems:
        raise PlannerlError("nothing to evaluate: give --task TASK (with --seeds) or PROBLEM files")
    if domain is not None and not problems:
        raise PlannerlError("--domain applies to PROBLEM files; none given")
    console = Console()
    chosen = []  # lazy: each instance's optimal search runs when the evaluation reaches it
    from plannerl.seeds import parse_seeds

    if task:
        chosen.append(iter_problems_from_tasks(task, [None] if base else parse_seeds(seeds), max_steps=max_steps))
    if problems:
        chosen.append(iter_problems_from_files(problems, domain=domain, max_steps=max_steps))
    model_options = {"sample": sample, "temperature": temperature, "constrained": constrained, "batch_size": batch_size,
                     "max_new_tokens": max_new_tokens, "trust_remote_code": trust_remote_code}
    policies = [make_policy(spec, seed=seed, **model_options) for spec in policy]
    history_len = shared_history_len(policies, history_len)
    config = {"policies": [p.name for p in policies], "tasks": list(task), "seeds": None if base or not task else seeds, "base": base,
              "problems": [str(p) for p in problems or []], "invalid": invalid, "max_steps": max_steps, "runs": runs,
              "seed": seed, "sample": sample, "temperature": temperature if sample else None, "constrained": constrained,
              "max_new_tokens": max_new_tokens, "history_len": history_len}
    trace = Trace() if quiet else RichTrace(console)
    from plannerl.agents.distributed import evaluate_sharded, init_process_group, is_main_process, world_size

    if init_process_group():  # under torchrun / accelerate launch: each process plays its shard, one merged report
        if is_main_process():
            console.print(f"sharded evaluation: world {world_size()}, instance i played by rank i mod {world_size()}")
        seed_list = ([None] if base else parse_seeds(seeds)) if task else []
        results = evaluate_sharded(policies, task, seed_list, problems or [], domain=domain, max_steps=max_steps, invalid=invalid,
                                   runs=runs, history_len=history_len, trace=trace if is_main_process() else Trace(),
                                   report=report, config=config)
        if not is_main_process():
            return
    else:
        results = _evaluate_here(policies, chosen, invalid, runs, history_len, trace, report, config, console)
    _print_results(results, console, matrix_png, report)


def _evaluate_here(policies, chosen, invalid, runs, history_len, trace, report, config, console):
    from itertools import chain

    from plannerl.agents.evaluate import evaluate_policies

    try:
        return evaluate_policies(policies, chain(*chosen), invalid=invalid, runs=runs, history_len=history_len, trace=trace,
                                    report=report, config=config)
    except KeyboardInterrupt:
        if report is not None:
            console.print(f"[yellow]interrupted: the episodes finished so far are in {report}[/]")
        raise


def _print_results(results, console, matrix_png, report) -> None:
    from plannerl.agents.evaluate import matrix_table, sr_matrix, summary_table

    console.print(summary_table(results))
    matrix = sr_matrix(results)
    if len(matrix["rows"]) > 1 or len(matrix["columns"]) > 1:
        console.print(matrix_table(matrix))
    if matrix_png is not None:
        from plannerl.agents.plots import save_matrix_png

        save_matrix_png(matrix_png, matrix["rows"], matrix["columns"], matrix["sr"])
        console.print(f"matrix heatmap: {matrix_png}")
    if report is not None:
        console.print(f"report: {report}")


def play_command(
    target: str = typer.Argument(..., help="A task name (played on the instance of --seed) or a PROBLEM file."),
    seed: int = typer.Option(42, "--seed", help="Instance seed for a task name."),
    base: bool = typer.Option(False, "--base", help="Play the task's unrandomised layout instead of --seed."),
    domain: Path = typer.Option(None, "--domain", help="Domain file for a PROBLEM file."),
    invalid: str = typer.Option("retry", "--invalid", help=INVALID_HELP),
    max_steps: int = typer.Option(None, "--max-steps", help="Step limit (default: the paper's, else 1.5 x optimal)."),
    history_len: int = typer.Option(5, "--history-len", help="Past actions shown in the prompt."),
) -> None:
    """Play a task yourself: type a listed number, a unique prefix or any action; ? lists valid actions, q quits."""
    from rich.console import Console

    from plannerl.agents.evaluate import RichTrace, play, problems_from_files, problems_from_tasks
    from plannerl.agents.policies import HumanPolicy

    console = Console()
    path = Path(target)
    if path.suffix == ".pddl" or path.exists():
        problems = problems_from_files([path], domain=domain, max_steps=max_steps)
    else:
        problems = problems_from_tasks([target], [None if base else seed], max_steps=max_steps)
    play(problems, HumanPolicy(console=console), invalid=invalid, history_len=history_len, trace=RichTrace(console))
