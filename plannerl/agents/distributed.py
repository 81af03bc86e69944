"""Several processes, one result: rank helpers, main-process-only writes, sharded evaluation.

plannerl runs on the standard launchers (`torchrun`, `accelerate launch`), which start one
process per device and describe the job in environment variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Nothing here starts processes itself.

- Training (`plannerl.train.pipeline`): the TRL trainers already run data parallel under
  torch.distributed; every file of the run folder (config, rows, base model, checkpoints,
  metrics, models, reports) is written once, by the main process, while the others wait at a
  barrier and then read what it wrote (`main_process_first`).
- Evaluation (`evaluate_sharded`): instance i of the global order (tasks in the order given,
  seeds in spec order, then files) is played by the process with rank i mod world size; the
  episodes are gathered and merged into one report identical to the single-process report
  for the same seeds (oracle, random, greedy or constrained models: every choice depends on
  the episode, never on which process or batch played it).

Barriers and gathers use a gloo group of their own, so they work on CPU and beside NCCL.
torch is imported only inside functions: `import plannerl` stays fast.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from plannerl.agents.evaluate import evaluate_policies, iter_problems_from_files, iter_problems_from_tasks, write_report
from plannerl.errors import PlannerlError

_GLOO_GROUP = None


def world_size() -> int:
    """Processes in the job (1 when not launched by torchrun / accelerate)."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's global rank (0 when not launched by a distributed launcher)."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine: the GPU it uses."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """Only the main process writes files and prints summaries."""
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise PlannerlError(f"environment variable {name}={raw!r} must be an integer (set by torchrun / accelerate launch)") from None


def init_process_group() -> bool:
    """Join the launcher's process group (NCCL for GPUs with gloo beside it, gloo on CPU).

    Returns True when running distributed. A group someone else created (accelerate, a TRL
    trainer) is reused: accelerate itself reuses ours when the trainer starts later.
    """
    if not is_distributed():
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank() % torch.cuda.device_count())
            backend = "cpu:gloo,cuda:nccl"
        else:
            backend = "gloo"
        dist.init_process_group(backend=backend)
        # leave the group before the interpreter exits: a gloo thread still running at exit
        # aborted a rank now and then ("terminate called without an active exception")
        atexit.register(_leave_process_group)
    return True


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _gloo_group():
    """A gloo group for barriers and Python-object gathers (NCCL cannot gather CPU objects)."""
    global _GLOO_GROUP
    import torch.distributed as dist

    init_process_group()
    if _GLOO_GROUP is None:
        _GLOO_GROUP = dist.new_group(backend="gloo")
    return _GLOO_GROUP


def barrier() -> None:
    """Wait until every process gets here (nothing to do in a single process)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    dist.barrier(group=_gloo_group())


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (and writes its files); the others run it after,
    and find those files already there. A block that raises on the main process skips the
    barrier: the launcher then stops the other processes when the main one exits non-zero."""
    if not is_distributed():
        yield
        return
    if is_main_process():
        yield
        barrier()
    else:
        barrier()
        yield


def gather_objects(value) -> list:
    """Every process's `value` (picklable), in rank order, on every process."""
    if not is_distributed():
        return [value]
    import torch.distributed as dist

    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, value, group=_gloo_group())
    return gathered


def shard_indices(count: int, shard: int, shards: int) -> list[int]:
    """The items of a global order of `count` that shard `shard` of `shards` takes: i mod shards."""
    if shards < 1 or not 0 <= shard < shards:
        raise PlannerlError(f"shard {shard} of {shards}: need 0 <= shard < shards")
    return list(range(shard, count, shards))


# ---------------------------------------------------------------------------------------------
# Sharded evaluation


@dataclass
class _MergedProblem:
    optimal_length: int
    group: str


class EpisodeRecord:
    """A finished episode as gathered from another process: what metrics and reports read
    (`plannerl.agents.metrics.metrics`, `build_report`, `plannerl.agents.display.summary_table` take it like an EpisodeResult)."""

    def __init__(self, data: dict, episode: int) -> None:
        self.data = data
        self.episode = episode
        self.policy = data["policy"]
        self.run = data["run"]
        self.steps = data["steps"]
        self.success = data["success"]
        self.optimal_success = data["optimal_success"]
        self.answers = data["answers"]
        self.invalid_answers = data["invalid_answers"]
        self.end = data["end"]
        self.actions = data["actions"]
        self.problem = _MergedProblem(data["optimal_length"], data["group"])

    def to_json(self) -> dict:
        return self.data


def _global_sources(task_names: Sequence[str], seeds: Sequence[int | None], files: Sequence[str | Path]) -> list[tuple]:
    """The global instance order of `plannerl eval`: every task x every seed, then every file."""
    return [("task", name, seed) for name in task_names for seed in seeds] + [("file", path) for path in files]


def iter_shard_problems(task_names: Sequence[str], seeds: Sequence[int | None], files: Sequence[str | Path] = (), *,
                        domain: str | Path | None = None, max_steps: int | None = None, shard: int = 0, shards: int = 1,
                        indices: list[int] | None = None, skipped: list[str] | None = None):
    """This shard's instances, labelled lazily (only its own optimal searches run).

    Every task name, seed list and file is checked first, on every process, so a typo fails
    everywhere at once. The global index of each instance yielded is appended to `indices`;
    instances past the planner's state limit go to `skipped` (`iter_problems_from_tasks`).
    """
    if task_names:
        iter_problems_from_tasks(task_names, seeds, max_steps=max_steps)  # checks now; labels nothing
    if files:
        iter_problems_from_files(files, domain=domain, max_steps=max_steps)  # reads and grounds every file now
    sources = _global_sources(task_names, seeds, files)
    for index in shard_indices(len(sources), shard, shards):
        source = sources[index]
        if source[0] == "task":
            problems = iter_problems_from_tasks([source[1]], [source[2]], max_steps=max_steps, skipped=skipped)
        else:
            problems = iter_problems_from_files([source[1]], domain=domain, max_steps=max_steps)
        for problem in problems:
            if indices is not None:
                indices.append(index)
            yield problem


def shard_payload(results, policy_names: Sequence[str], indices: Sequence[int]) -> list[tuple]:
    """A shard's episodes as picklable rows (policy number, run, global episode, episode JSON)."""
    number = {name: position for position, name in reversed(list(enumerate(policy_names)))}
    return [(number[result.policy], result.run, indices[result.episode], result.to_json()) for result in results]


def merge_payloads(payloads: Sequence[list[tuple]]) -> list[EpisodeRecord]:
    """Every shard's episodes in the single-process order: policy (as given), run, instance."""
    rows = sorted((row for payload in payloads for row in payload), key=lambda row: row[:3])
    return [EpisodeRecord(data, episode) for _, _, episode, data in rows]


def evaluate_sharded(policies: Sequence, task_names: Sequence[str], seeds: Sequence[int | None], files: Sequence[str | Path] = (),
                     *, domain: str | Path | None = None, max_steps: int | None = None, invalid: str = "retry", runs: int = 1,
                     history_len: int = 5, trace=None, report: str | Path | None = None,
                     config: dict | None = None, skipped: list[str] | None = None) -> list[EpisodeRecord]:
    """`plannerl.agents.evaluate.evaluate_policies` split across the launcher's processes.

    Each process plays its shard (instance index mod world size), the episodes are gathered on
    every process, and the main process writes the merged report: byte for byte the report one
    process writes for the same seeds. An interrupted sharded run writes no report. Every
    shard's skipped instances are gathered into `skipped` (sorted, so any world size lists them alike).
    """
    names = [policy.name for policy in policies]
    if len(set(names)) != len(names):
        raise PlannerlError(f"sharded evaluation needs distinct policy names, got {', '.join(names)} (name them LABEL=SPEC)")
    indices: list[int] = []
    own_skipped: list[str] = []
    problems = iter_shard_problems(task_names, seeds, files, domain=domain, max_steps=max_steps, shard=rank(), shards=world_size(),
                                   indices=indices, skipped=own_skipped)
    if not _global_sources(task_names, seeds, files):
        raise PlannerlError("nothing to evaluate: give --task TASK or PROBLEM files")
    first = next(problems, None)
    results = []
    if first is not None:
        results = evaluate_policies(policies, chain([first], problems), invalid=invalid, runs=runs, history_len=history_len,
                                    trace=trace)
    gathered = gather_objects((shard_payload(results, names, indices), own_skipped))
    merged = merge_payloads([payload for payload, _ in gathered])
    all_skipped = sorted(reason for _, shard_skipped in gathered for reason in shard_skipped)
    if skipped is not None:
        skipped.extend(all_skipped)
    if report is not None and is_main_process():
        write_report(report, merged, config or {}, skipped=all_skipped)
    barrier()
    return merged
