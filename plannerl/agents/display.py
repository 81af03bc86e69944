"""Rich output of an evaluation: the live per-answer trace and the summary and matrix tables.

Tables keep every name whole: where the full table fits the console it is printed as is;
where it does not (an 80-column terminal, long task or policy names) each (policy, task)
group is printed one metric per row instead, because Rich would otherwise shrink the columns
and cut names and headers to "chees…".
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from plannerl.agents.episodes import MAX_TRIES, EpisodeResult, Trace, Turn
from plannerl.agents.metrics import failure_causes, group_results, metrics
from plannerl.agents.problems import EvalProblem

SUMMARY_TITLE = "Evaluation summary (mean ± std over episodes)"
MATRIX_TITLE = "SR: trained on (rows) x evaluated on (columns)"
# (label, metrics key, digits): the order of the summary's columns, or of its rows when narrow
SUMMARY_METRICS = (("SR", "sr", 2), ("ASAT", "asat", 1), ("ASST", "asst", 1), ("optimal SR", "optimal_sr", 2),
                   ("invalid rate", "invalid_rate", 2), ("optimal length", "mean_optimal_length", 1))


class RichTrace(Trace):
    """Prints each answer as it is judged: step, action, valid or why not, goals still unmet."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def episode_start(self, problem: EvalProblem, policy: str, run: int) -> None:
        run_text = f" run {run}" if run else ""
        title = (f"{escape(policy)} on {escape(_label(problem))}{run_text}: optimal {problem.optimal_length} steps, "
                 f"limit {problem.step_limit}, {len(problem.task.unmet_goals(problem.task.init))} goals unmet")
        if Text.from_markup(title).cell_len <= self.console.width - 2:
            self.console.rule(title, align="left")
        else:  # a rule would cut its title short: the line, then the whole title wrapped
            self.console.rule()
            self.console.print(title)

    def turn(self, problem: EvalProblem, run: int, turn: Turn, tries: int) -> None:
        where = f"[dim]{escape(_label(problem))}[/] {turn.step:3d}/{problem.step_limit}"
        if turn.valid:
            self.console.print(f"{where} [green]ok[/]   {escape(turn.action or '')}  [dim]goals unmet: {turn.goals_unmet}[/]")
            return
        shown = turn.answer if len(turn.answer) <= 80 else turn.answer[:77] + "..."
        attempt = f"try {tries}/{MAX_TRIES} " if not turn.uses_step and tries else ""
        self.console.print(f"{where} [red]bad[/]  {attempt}{escape(repr(shown))}: {escape(turn.feedback or '')}")

    def episode_end(self, result: EpisodeResult) -> None:
        problem = result.problem
        if result.success:
            tag = "[green]optimal[/]" if result.optimal_success else f"[yellow]{result.steps - problem.optimal_length} over optimal[/]"
            text = f"[bold green]success[/] in {result.steps} steps ({tag})"
        else:
            text = f"[bold red]failed[/] ({result.end.replace('_', ' ')}) after {result.steps} steps"
        self.console.print(f"[dim]{escape(_label(problem))}[/] {text}, {result.invalid_answers} invalid of {result.answers} answers")


def _label(problem: EvalProblem) -> str:
    if problem.task_name is not None:
        return f"{problem.task_name}#{'base' if problem.seed is None else problem.seed}"
    return problem.source or problem.name


def _fmt(stat: dict, digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


class FittedTable:
    """A table that is printed whole where it fits the console, else as its narrow form."""

    def __init__(self, wide: Table, narrow: Table) -> None:
        self.wide = wide
        self.narrow = narrow

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        natural = Measurement.get(console, options.update_width(1_000_000), self.wide).maximum
        yield self.wide if natural <= options.max_width else self.narrow


def _table(title: str, names: Sequence[str], values: Sequence[str]) -> Table:
    """Name columns (left, folded onto a further line if need be, never cut) then value columns."""
    table = Table(title=title)
    for name in names:
        table.add_column(name, overflow="fold")
    for value in values:
        table.add_column(value, justify="right")
    return table


def summary_table(results: Sequence[EpisodeResult]) -> FittedTable:
    """Every metric as mean ± std for each (policy, task): one row per group, or where that row
    would not fit, one row per metric with the group's policy and task down the first column."""
    wide = _table(SUMMARY_TITLE, ("policy", "task"), ("episodes", *(label for label, _, _ in SUMMARY_METRICS)))
    narrow = _table(SUMMARY_TITLE, ("policy / task", "metric"), ("mean ± std",))
    for (policy, group), episodes in group_results(results).items():
        m = metrics(episodes)
        cells = [("episodes", str(m["episodes"])), *((label, _fmt(m[key], digits)) for label, key, digits in SUMMARY_METRICS)]
        wide.add_row(policy, group, *(value for _, value in cells))
        names = [policy, f"  {group}"] + [""] * (len(cells) - 2)
        for number, (name, (label, value)) in enumerate(zip(names, cells)):
            narrow.add_row(name, label, value, end_section=number == len(cells) - 1)
    return FittedTable(wide, narrow)


CAUSE_WORDS = {"loop": "in a loop (the same 2-4 actions twice in a row)", "step_limit": "at the step limit without a loop",
               "invalid_tries": "after 5 invalid tries at one step", "invalid_answer": "on an invalid answer (stop mode)",
               "quit": "quit"}


def failure_lines(results: Sequence[EpisodeResult]) -> list[str]:
    """One line per (policy, task) that failed somewhere, saying why (`failure_causes`)."""
    lines = []
    for (policy, group), episodes in group_results(results).items():
        causes = failure_causes(episodes)
        if causes:
            said = ", ".join(f"{count} {CAUSE_WORDS.get(cause, cause)}" for cause, count in
                             sorted(causes.items(), key=lambda item: (-item[1], item[0])))
            lines.append(f"{policy} on {group}: {sum(causes.values())} of {len(episodes)} failed: {said}")
    return lines


def matrix_table(matrix: dict) -> FittedTable:
    """The generalisation matrix: rows trained on, columns evaluated on; where the task columns
    would not fit, each policy's name then one row per task it was evaluated on."""
    wide = _table(MATRIX_TITLE, ("policy \\ task",), matrix["columns"])
    narrow = _table(MATRIX_TITLE, ("policy / task",), ("SR",))
    for row, values in zip(matrix["rows"], matrix["sr"]):
        cells = ["-" if v is None else f"{v:.2f}" for v in values]
        wide.add_row(row, *cells)
        narrow.add_row(row, "")
        for number, (column, cell) in enumerate(zip(matrix["columns"], cells)):
            narrow.add_row(f"  {column}", cell, end_section=number == len(cells) - 1)
    return FittedTable(wide, narrow)
