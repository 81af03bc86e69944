"""Multi-turn evaluation: every policy plays every instance in the PDDL simulator, and one report.

The pieces, in the order an evaluation uses them:

- `plannerl.agents.problems`: the instances (generated tasks x seeds, or problem files), each
  labelled with its optimal length and step limit.
- `plannerl.agents.episodes`: one episode, answer by answer, and the invalid-answer modes.
- `plannerl.agents.metrics`: SR, ASAT, ASST, optimal SR and invalid-answer rate, the SR matrix
  and the JSON report.
- `plannerl.agents.display`: the live trace and the summary tables.
- `plannerl.agents.eval_run`: what `plannerl eval` runs (policies, instances, sharding, files).

This module holds `evaluate_policies`, the loop over policies and instances, and names the
public parts of the others, so `from plannerl.agents.evaluate import play, metrics, ...` works.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

from plannerl.agents.episodes import (
    INVALID_MODES,
    MAX_TRIES,
    EpisodeResult,
    Observation,
    QuitEpisode,
    Trace,
    Turn,
    check_play_options,
    play,
)
from plannerl.agents.metrics import REPORT_FORMAT, build_report, group_results, metrics, sr_matrix, write_report
from plannerl.agents.problems import (
    EvalProblem,
    iter_problems_from_files,
    iter_problems_from_tasks,
    make_problem,
    problems_for_target,
    problems_from_files,
    problems_from_tasks,
)
from plannerl.errors import PlannerlError

__all__ = [
    "INVALID_MODES", "MAX_TRIES", "REPORT_FORMAT", "EpisodeResult", "EvalProblem", "Observation", "QuitEpisode", "Trace", "Turn",
    "build_report", "evaluate_policies", "group_results", "iter_problems_from_files", "iter_problems_from_tasks", "make_problem",
    "metrics", "play", "problems_for_target", "problems_from_files", "problems_from_tasks", "sr_matrix", "write_report",
]


def evaluate_policies(policies: Sequence, problems: Iterable[EvalProblem], *, invalid: str = "retry", runs: int = 1,
                      history_len: int = 5, trace: Trace | None = None, report: str | Path | None = None,
                      config: dict | None = None, skipped: Sequence[str] = ()) -> list[EpisodeResult]:
    """Every policy plays every problem; the report is written even when Ctrl-C stops the run.

    `problems` may be lazy (`iter_problems_from_tasks`): they are taken a batch at a time (the
    largest policy batch), and every policy plays that batch before the next is labelled. The
    results (and the report) are ordered by policy, run and problem whatever the play order.
    On an interruption (or any error) the report holds the episodes finished so far and says
    `"interrupted": true`; the exception is then re-raised. `skipped` (the list a lazy
    `iter_problems_from_tasks` fills with the instances it left out) goes into the report as
    it stands when the report is written.
    """
    check_play_options(invalid, runs)
    finished: list[tuple[int, EpisodeResult]] = []
    complete = False
    chunk = max([1, *(int(getattr(policy, "batch_size", 1)) for policy in policies)])
    source = iter(problems)
    seen = 0
    try:
        while batch := list(islice(source, chunk)):
            for number, policy in enumerate(policies):
                play(batch, policy, invalid=invalid, runs=runs, history_len=history_len, trace=trace, first_episode=seen,
                     on_result=lambda result, number=number: finished.append((number, result)))
            seen += len(batch)
        if not seen:
            if skipped:
                raise PlannerlError(f"nothing to evaluate: every instance was skipped ({skipped[0]})")
            raise PlannerlError("nothing to evaluate: give --task TASK or PROBLEM files")
        complete = True
    finally:
        finished.sort(key=lambda item: (item[0], item[1].run, item[1].episode))
        results = [result for _, result in finished]
        if report is not None and (seen or finished):
            write_report(report, results, config or {}, interrupted=not complete, skipped=skipped)
    return results


