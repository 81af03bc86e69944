"""Benchmark: seeded instances and single-turn rows per second, and prompt lengths, per task.

For each task, a sample of seeds goes through the whole `plannerl data` pipeline in memory:
generate the layout, solve every goal binding that could matter (`bindings/inst`), label the
expert trajectory with the oracle, render every row. Times are split into planning (generation
and optimal search) and labelling (oracle lookups, rendering, action sentences). An instance
whose search hits `--time-limit` counts as a timeout and its time is still charged.

Instances come from the generator's default ranges (Robotouille's: 0-24 extra stations, 0-8
distractors). The same seeds then go through the same work with `--jobs` worker processes
(`plannerl.tasks.generate.map_seeds`, as `plannerl data --jobs N` runs it): `inst/s jN`, `rows/s jN`
and the speed-up over one process.

The issue's target is 1,000 double_cheese_burger instances with full optimal-action labels in
under 2 minutes (8.3 instances/s); `1000 inst jN` extrapolates each task's measured rate with
`--jobs` processes to 1,000 instances and `vs target` is target time / extrapolated time
(>= 1 meets the target). The reference is the target itself: no other tool builds these rows.
`--dcb-instances N` also runs N double_cheese_burger seeds with `--jobs` processes end to end.

Run: `python bench/data.py [--tasks a,b] [--samples N] [--heavy-samples N] [--jobs J] [--dcb-instances N]
[--time-limit S] [--markdown]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plannerl.errors import LimitError  # noqa: E402
from plannerl.parallel import map_seeds  # noqa: E402
from plannerl.tasks.datasets import expert_rows  # noqa: E402
from plannerl.tasks.generate import DEFAULT_RANGES, generate_instance, list_tasks, solve_instance  # noqa: E402
from plannerl.train.rows import instance_rows  # noqa: E402

HEAVY = {"double_cheese_burger", "lettuce_tomato_sandwich"}
TARGET_SECONDS_PER_1000 = 120.0
FIRST_SEED = 1000


def measure(task_name: str, samples: int, time_limit: float) -> dict:
    plan_s = label_s = 0.0
    rows, lengths, bindings, timeouts = [], [], [], 0
    for seed in range(FIRST_SEED, FIRST_SEED + samples):
        start = time.perf_counter()
        try:
            instance = generate_instance(task_name, seed, time_limit=time_limit)
            task, oracle, plan = solve_instance(instance, time_limit=time_limit)
        except LimitError:
            plan_s += time.perf_counter() - start
            timeouts += 1
            continue
        planned = time.perf_counter()
        new = expert_rows(task, task_name=task_name, instance=instance.name, oracle=oracle)
        label_s += time.perf_counter() - planned
        plan_s += planned - start
        rows += new
        lengths.append(len(plan))
        bindings.append(instance.bindings_tried)
    total = plan_s + label_s
    done = samples - timeouts
    chars = [len(r["prompt"]) for r in rows] or [0]
    words = [len(r["prompt"].split()) for r in rows] or [0]
    per_instance = total / samples
    return {
        "task": task_name, "samples": samples, "timeouts": timeouts,
        "inst_s": done / total if total else 0.0, "rows_s": len(rows) / total if total else 0.0,
        "plan_share": plan_s / total if total else 0.0, "label_ms_row": 1000 * label_s / max(len(rows), 1),
        "length": statistics.mean(lengths) if lengths else 0.0, "bindings": statistics.mean(bindings) if bindings else 0.0,
        "optimal": statistics.mean(len(r["optimal_actions"]) for r in rows) if rows else 0.0,
        "chars_mean": statistics.mean(chars), "chars_max": max(chars),
        "words_mean": statistics.mean(words), "words_max": max(words),
        "per_1000_s": 1000 * per_instance,
    }


def rows_or_timeout(task_name: str, time_limit: float, seed: int) -> int | None:
    """Rows of one seed as `plannerl data` makes them (None when a search hits the time limit)."""
    try:
        return len(instance_rows(task_name, seed, time_limit=time_limit)[2])
    except LimitError:
        return None


def measure_jobs(task_name: str, samples: int, jobs: int, time_limit: float, first_seed: int = FIRST_SEED) -> dict:
    start = time.perf_counter()
    counts = map_seeds(partial(rows_or_timeout, task_name, time_limit), range(first_seed, first_seed + samples), jobs=jobs)
    seconds = time.perf_counter() - start
    done = [n for n in counts if n is not None]
    return {"seconds": seconds, "inst_s": len(done) / seconds, "rows_s": sum(done) / seconds, "timeouts": len(counts) - len(done),
            "per_1000_s": 1000 * seconds / samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(list_tasks()))
    parser.add_argument("--samples", type=int, default=20, help="seeds per light task")
    parser.add_argument("--heavy-samples", type=int, default=3, help="seeds for double_cheese_burger and lettuce_tomato_sandwich")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per optimal search")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the parallel columns")
    parser.add_argument("--dcb-instances", type=int, default=0, help="double_cheese_burger seeds run end to end with --jobs (0: none)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    results = []
    for name in args.tasks.split(","):
        samples = args.heavy_samples if name in HEAVY else args.samples
        result = measure(name, samples, args.time_limit)
        result["jobs"] = measure_jobs(name, samples, args.jobs, args.time_limit)
        results.append(result)
        print(f"measured {name}", file=sys.stderr, flush=True)

    j = args.jobs
    header = ["task", "samples", "timeouts", "inst/s j1", "rows/s j1", f"inst/s j{j}", f"rows/s j{j}", f"speed-up j{j}",
              "planning share", "label ms/row", "bindings/inst", "optimal length", "optimal actions/row", "prompt chars mean/max",
              "prompt words mean/max", f"1000 inst j{j}", "vs target"]
    lines = []
    for r in results:
        par = r["jobs"]
        lines.append([r["task"], str(r["samples"]), str(r["timeouts"]), f"{r['inst_s']:.2f}", f"{r['rows_s']:.1f}",
                      f"{par['inst_s']:.2f}", f"{par['rows_s']:.1f}", f"{r['per_1000_s'] / par['per_1000_s']:.2f}x",
                      f"{100 * r['plan_share']:.0f}%", f"{r['label_ms_row']:.2f}", f"{r['bindings']:.2f}", f"{r['length']:.1f}",
                      f"{r['optimal']:.2f}", f"{r['chars_mean']:.0f}/{r['chars_max']}", f"{r['words_mean']:.0f}/{r['words_max']}",
                      f"{par['per_1000_s']:.0f} s", f"{TARGET_SECONDS_PER_1000 / par['per_1000_s']:.3f}x"])
    ranges = DEFAULT_RANGES
    print(f"ranges: extra stations {ranges.extra_stations}, distractors {ranges.distractors}, hold probability "
          f"{ranges.hold_probability}; seeds from {FIRST_SEED}; time limit {args.time_limit:g} s per search; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    if args.dcb_instances:
        run = measure_jobs("double_cheese_burger", args.dcb_instances, j, args.time_limit, first_seed=0)
        verdict = "met" if run["per_1000_s"] <= TARGET_SECONDS_PER_1000 else "NOT met"
        print(f"double_cheese_burger seeds 0-{args.dcb_instances - 1}, --jobs {j}: {run['seconds']:.1f} s, {run['inst_s']:.2f} "
              f"instances/s, {run['rows_s']:.1f} rows/s, {run['timeouts']} timeouts; 1,000 instances: {run['per_1000_s']:.0f} s "
              f"(target {TARGET_SECONDS_PER_1000:.0f} s: {verdict}); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
