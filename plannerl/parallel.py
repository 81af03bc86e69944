"""A parallel map over seeds whose output does not depend on the number of workers.

Generation, labelling and benchmarks all solve one instance per seed; this is the one place
that spreads such work over processes, stops the workers cleanly on Ctrl-C and turns a dead
worker into one error line.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import TypeVar

from plannerl.errors import PlannerlError

T = TypeVar("T")


def map_seeds(work: Callable[[int], T], seeds: Iterable[int], *, jobs: int = 1,
              progress: Callable[[T], None] | None = None) -> list[T]:
    """`[work(seed) for seed in seeds]`, spread over `jobs` worker processes when jobs > 1.

    Each seed's work depends on nothing but the seed, and results come back in seed order, so
    the output is the same whatever `jobs` is. `progress(result)` runs in this process as each
    result arrives (completion order). `work` must be picklable (a module-level function or a
    `functools.partial` of one). Workers are started with "spawn" (no forked copy of a parent's
    threads or locks) and ignore SIGINT: Ctrl-C reaches this process, which kills the workers
    and re-raises KeyboardInterrupt. A worker's error (a PlannerlError for an unsolvable seed)
    kills the others and is raised here; a worker that dies is a PlannerlError saying so.
    """
    check_jobs(jobs)
    seeds = list(seeds)
    if jobs == 1 or len(seeds) < 2:
        results = []
        for seed in seeds:
            results.append(work(seed))
            if progress is not None:
                progress(results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ordered: list = [None] * len(seeds)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=context, initializer=_ignore_sigint) as pool:
        try:
            with _sigint_ignored():  # the workers start on the first submissions
                futures = {pool.submit(work, seed): index for index, seed in enumerate(seeds)}
            for future in as_completed(futures):
                ordered[futures[future]] = future.result()
                if progress is not None:
                    progress(ordered[futures[future]])
        except BaseException as exc:
            workers = list(pool._processes.values())  # the executor has no public way to stop running work
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.kill()
                worker.join()
            if isinstance(exc, BrokenProcessPool):
                raise PlannerlError(f"a worker process died while solving ({exc}); --jobs 1 shows which seed") from None
            raise
    return ordered


def check_jobs(jobs: int) -> int:
    """A worker count is a positive integer (checked before any folder is made)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise PlannerlError(f"jobs: expected a positive number of worker processes, got {jobs!r}")
    return jobs


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while worker processes start, so that they ignore it from their first
    instruction (an ignored signal stays ignored across exec; the pool's initializer only runs
    once a worker is up): a terminal's Ctrl-C reaches the whole process group, and only this
    process should act on it. Outside the main thread signals cannot be touched: the
    initializer alone does it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
