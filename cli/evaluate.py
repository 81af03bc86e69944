"""`plannerl eval` (policies played in the simulator, metrics, reports) and `plannerl play`: options and printing.

The library is imported inside the commands: plannerl.agents.eval_run pulls in the policies,
search and task generator (~0.25 s), and `plannerl --help` must stay under 0.3 s."""

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
    avoid_revisits: bool = typer.Option(False, "--avoid-revisits",
                                        help="With --constrained: never step back to a state the episode has been in "
                                             "while another valid action leads elsewhere."),
    choice: str = typer.Option("sum", "--choice",
                               help="With --constrained: sum (the valid answer with the highest summed log-probability), "
                                    "greedy (the valid answer greedy decoding writes, token by token) or hybrid (the sum "
                                    "without the numbers an answer's start already decides)."),
    precision: str = typer.Option("fp32", "--precision",
                                  help="Model weights and activations: fp32, or bf16 (about half the cost per forward pass "
                                       "on CPUs with native bf16 and GPUs; scores round, so results are its own)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Episodes a model answers per forward pass."),
    threads: int = typer.Option(None, "--threads",
                                help="torch CPU threads for models (default 1: stable beside other jobs; 2 or more are "
                                     "faster when the cores are free)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest model answer, in tokens."),
    history_len: int = typer.Option(None, "--history-len",
                                    help="Past actions shown in the prompt (default: what the model was trained with, else 5)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a hub model's own code to run."),
    matrix_png: Path = typer.Option(None, "--matrix-png", help="Save the policy x task success-rate matrix as a PNG heatmap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-step trace; only the summary."),
) -> None:
    """Play policies in the PDDL simulator and report SR, ASAT, ASST, optimal SR and invalid-answer rate."""
    from rich.console import Console

    from plannerl.agents.display import RichTrace
    from plannerl.agents.eval_run import EvalSpec, run_evaluation

    spec = EvalSpec(policies=policy, tasks=task, seeds=seeds, base=base, problems=problems or [], domain=domain, report=report,
                    matrix_png=matrix_png, invalid=invalid, max_steps=max_steps, runs=runs, seed=seed, sample=sample,
                    temperature=temperature, constrained=constrained, avoid_revisits=avoid_revisits, choice=choice,
                    precision=precision, batch_size=batch_size, threads=threads,
                    max_new_tokens=max_new_tokens,
                    history_len=history_len, trust_remote_code=trust_remote_code)
    console = Console()
    outcome = run_evaluation(spec, trace=None if quiet else RichTrace(console), say=console.print)
    if outcome is not None:  # None on the other processes of a sharded run: the main one prints
        _print_outcome(outcome, console)


def _print_outcome(outcome, console) -> None:
    from plannerl.agents.display import failure_lines, matrix_table, summary_table

    console.print(summary_table(outcome.results))
    for line in failure_lines(outcome.results):  # where the agent went wrong, in one line per policy and task
        console.print(line, soft_wrap=True)
    matrix = outcome.matrix
    if len(matrix["rows"]) > 1 or len(matrix["columns"]) > 1:
        console.print(matrix_table(matrix))
    for label, path in (("matrix heatmap", outcome.matrix_png), ("report", outcome.report)):
        if path is not None:
            console.print(f"{label}: {path}", soft_wrap=True)  # one line, whole, to copy


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

    from plannerl.agents.display import RichTrace
    from plannerl.agents.episodes import play
    from plannerl.agents.policies import HumanPolicy
    from plannerl.agents.problems import problems_for_target

    console = Console()
    problems = problems_for_target(target, seed=None if base else seed, domain=domain, max_steps=max_steps)
    play(problems, HumanPolicy(console=console), invalid=invalid, history_len=history_len, trace=RichTrace(console))
