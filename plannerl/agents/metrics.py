"""Metrics over finished episodes, their grouping by policy and task, and the JSON report.

Each episode: success s, steps n, answers a, invalid answers v, the instance's optimal length n*.

- SR = mean of s.
- ASAT = mean of n over all episodes. n counts the steps the episode used: applied actions,
  plus invalid answers in `step` mode. A failed episode counts the steps it used before it
  ended: the step limit when it ran out of steps, fewer when it ended on the 5th invalid try
  (`retry`) or the first invalid answer (`stop`).
- ASST = mean of n over successful episodes; None when no episode succeeded.
- optimal SR = mean of (s and n == n*).
- invalid-answer rate = sum(v) / sum(a) over the episodes (None when no answer was given).

Each metric also carries the population standard deviation over episodes (instance seeds x
runs) of its per-episode quantity (for the invalid-answer rate: of v / a per episode).
Everything here reads only the episode fields an `EpisodeResult` and a gathered
`plannerl.agents.distributed.EpisodeRecord` share, so sharded runs report the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from plannerl.agents.episodes import EpisodeResult
from plannerl.atomic import write_json

REPORT_FORMAT = 1


def _mean_std(values: Sequence[float]) -> dict:
    """Mean and population std, rounded so reports compare byte for byte."""
    if not values:
        return {"mean": None, "std": None}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": round(mean, 6), "std": round(std, 6)}


def metrics(results: Sequence[EpisodeResult]) -> dict:
    """SR, ASAT, ASST, optimal SR and invalid-answer rate, each as mean and std over episodes."""
    successes = [r for r in results if r.success]
    answers = sum(r.answers for r in results)
    invalid = sum(r.invalid_answers for r in results)
    invalid_rate = _mean_std([r.invalid_answers / r.answers for r in results if r.answers])
    invalid_rate["mean"] = round(invalid / answers, 6) if answers else None
    return {
        "episodes": len(results),
        "successes": len(successes),
        "answers": answers,
        "invalid_answers": invalid,
        "sr": _mean_std([float(r.success) for r in results]),
        "asat": _mean_std([float(r.steps) for r in results]),
        "asst": _mean_std([float(r.steps) for r in successes]),
        "optimal_sr": _mean_std([float(r.optimal_success) for r in results]),
        "invalid_rate": invalid_rate,
        "mean_optimal_length": _mean_std([float(r.problem.optimal_length) for r in results]),
    }


LOOP = "loop"
LONGEST_CYCLE = 4


def repeats_a_cycle(actions: Sequence[str], longest: int = LONGEST_CYCLE) -> bool:
    """True when the same 2..`longest` actions run twice in a row somewhere (a, b, a, b or
    a, b, c, a, b, c): the agent went round in a loop, a state revisited and left the same way."""
    return any(actions[i:i + n] == actions[i + n:i + 2 * n]
               for n in range(2, longest + 1) for i in range(len(actions) - 2 * n + 1))


def failure_causes(results: Iterable[EpisodeResult]) -> dict[str, int]:
    """Why the failed episodes failed: "loop" (`repeats_a_cycle`, the commonest failure of a
    trained agent), else how they ended (step_limit: wandered without a loop; invalid_tries,
    invalid_answer, quit)."""
    causes: dict[str, int] = {}
    for result in results:
        if not result.success:
            cause = LOOP if repeats_a_cycle(result.actions) else result.end
            causes[cause] = causes.get(cause, 0) + 1
    return causes


def group_results(results: Iterable[EpisodeResult]) -> dict[tuple[str, str], list[EpisodeResult]]:
    """(policy, task-or-domain) -> its episodes, in first-seen order."""
    groups: dict[tuple[str, str], list[EpisodeResult]] = {}
    for result in results:
        groups.setdefault((result.policy, result.problem.group), []).append(result)
    return groups


def sr_matrix(results: Sequence[EpisodeResult]) -> dict:
    """The generalisation matrix: rows are policies (trained on), columns tasks (evaluated on)."""
    groups = group_results(results)
    rows = list(dict.fromkeys(policy for policy, _ in groups))
    columns = list(dict.fromkeys(column for _, column in groups))
    values = [[metrics(groups[(row, column)])["sr"]["mean"] if (row, column) in groups else None for column in columns]
              for row in rows]
    return {"rows": rows, "columns": columns, "sr": values}


def build_report(results: Sequence[EpisodeResult], config: dict, *, interrupted: bool = False,
                 skipped: Sequence[str] = ()) -> dict:
    """Everything a run measured, with no timings: the same seed gives the same bytes.
    `skipped` (the instances left out, each with its reason) is listed only when there are some."""
    groups = group_results(results)
    report = {
        "format": REPORT_FORMAT,
        "config": config,
        "interrupted": interrupted,
        "metrics": metrics(results),
        "groups": [{"policy": policy, "group": group, "metrics": metrics(episodes)} for (policy, group), episodes in groups.items()],
        "matrix": sr_matrix(results),
        "episodes": [result.to_json() for result in results],
    }
    if skipped:
        report["skipped"] = list(skipped)
    return report


def write_report(path: str | Path, results: Sequence[EpisodeResult], config: dict, *, interrupted: bool = False,
                 skipped: Sequence[str] = ()) -> Path:
    """Write `build_report` atomically: an interrupted write never leaves half a report."""
    return write_json(path, build_report(results, config, interrupted=interrupted, skipped=skipped))

