"""Optimal lengths remembered across runs, so evaluating the same instances again searches nothing.

An evaluation labels every instance with its optimal length before scoring it: one optimal
search each, which is most of `plannerl eval`'s wall time for a small model (the paper's ten
double_cheese_burger seeds: about 1.5 s of searches against 2 s of model answers) and minutes
for lettuce_tomato_sandwich. The same instances come back all the time: every stage of a
training run evaluates the same seeds, and users evaluate each new model on the same seeds.

The optimal length is a fact about the compiled task, whatever planner found it, so it is
stored under a digest of the task itself (facts, initial state, goal, every ground action's
masks): a changed domain, problem, generator or grounding gives another digest, never a stale
answer. A search that stopped at the state limit is remembered too, with that limit and the
search's version (`SEARCH_VERSION`): a later search of the same version under the same or a
lower limit would stop as well, so it is not run again; a stronger search tries again (session
19's heuristic solves in 3 s a held-out lettuce_tomato_sandwich start remembered past 5M states).

Where: `$PLANNERL_CACHE` when set (`off` turns the cache off), else
`$XDG_CACHE_HOME/plannerl` or `~/.cache/plannerl`; one small JSON file per task under
`optimal/`. The cache is best effort: an unreadable or unwritable entry is searched again, never
an error, and deleting the folder at any time is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from plannerl.errors import PlannerlError, StateLimitError
from plannerl.pddl.task import Task

FORMAT = "plannerl-optimal-length-1"
OFF = ("off", "0", "none", "false")


def cache_dir() -> Path | None:
    """The folder lengths are kept in, or None when `$PLANNERL_CACHE` turns the cache off."""
    configured = os.environ.get("PLANNERL_CACHE")
    if configured is not None:
        return None if configured.strip().lower() in OFF or not configured.strip() else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plannerl"


def task_digest(task: Task) -> str:
    """A digest of everything an optimal search reads: equal digests, equal optimal lengths."""
    digest = hashlib.sha256(FORMAT.encode())
    digest.update("\n".join(map(str, task.facts)).encode())
    digest.update(f"\n{task.init} {task.goal_pos} {task.goal_neg}\n".encode())
    for action in task.actions:
        digest.update(f"{action.pddl} {action.pre} {action.neg} {action.add} {action.delete}\n".encode())
    return digest.hexdigest()


def optimal_length(task: Task, oracle) -> int | None:
    """h*(init) of `task` (None: no plan), from the cache when this exact task was solved before,
    else by `oracle` (a `plannerl.planning.oracle.Oracle` of `task`) and then remembered.

    Raises `StateLimitError` as the search would, also when a search under at least the oracle's
    state limit is remembered to have stopped there.
    """
    from plannerl.planning.search import DEFAULT_MAX_STATES, SEARCH_VERSION

    limit = oracle.max_states or DEFAULT_MAX_STATES
    folder = cache_dir()
    path = None if folder is None else _entry(folder, task_digest(task))
    record = _read(path)
    if "optimal_length" in record:
        return record["optimal_length"]
    if record.get("no_plan") is True:
        return None
    exceeded = record.get("exceeded_states")
    if isinstance(exceeded, int) and exceeded >= limit and record.get("search") == SEARCH_VERSION:
        raise StateLimitError(f"no plan found: stopped after {limit} states (state limit)")
    try:
        length = oracle.h_star(task.init)
    except StateLimitError:
        _write(path, {"exceeded_states": limit, "search": SEARCH_VERSION})
        raise
    _write(path, {"no_plan": True} if length is None else {"optimal_length": length})
    return length


def _entry(folder: Path, digest: str) -> Path:
    return folder / "optimal" / digest[:2] / f"{digest}.json"


def _read(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return {}
    length = record.get("optimal_length")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 0):
        return {}
    return record


def _write(path: Path | None, record: dict) -> None:
    if path is None:
        return
    from plannerl.atomic import write_bytes

    try:
        write_bytes(path, json.dumps({"format": FORMAT, **record}).encode())
    except PlannerlError:
        pass  # a read-only or full cache costs a search next time, nothing more

