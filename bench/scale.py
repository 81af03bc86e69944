"""Benchmark: optimal planning at Robotouille scale, plannerl against Fast Downward on the same instances.

Instances: randomised double_cheese_burger kitchens from plannerl's generator with an exact
number of stations and distractor items per bucket (the buckets of issue 9's table, up to 25
stations and 8 distractors), seeds from 1 up. For each instance, in the same run:

- plannerl, in a fresh child process (so its peak memory is its own): read and ground the
  problem, build the heuristic, search (`plannerl.planning.search.optimal_search`): `plan` wall time,
  `plan CPU` (the child's CPU time for the same work: on a loaded machine wall time is not
  the planner's), and `expanded`; then label every state of the expert trajectory with the oracle
  (`Oracle.trajectory`): `label s`; `peak MB` is the child's maximum resident set size.
- Fast Downward (up-fast-downward's driver, whole process: translator and search) with A* and
  iPDB and with A* and LM-cut, each under `--fd-limit` seconds ("> 60 s" when it ran out).
  `FD best` is the faster of the two per instance; `ratio` is FD best / plannerl plan time,
  median over the bucket (> 1: plannerl is faster; a timeout counts as the limit, so the ratio
  is then a lower bound, shown with ">").
Lengths are compared wherever Fast Downward finished; a disagreement is printed and the exit
status is 1.

Then the throughput line: `--instances N` randomised double_cheese_burger instances at the
generator's default ranges (0-24 extra stations, 0-8 distractors), generated, solved and fully
labelled with `--jobs` worker processes (`plannerl.tasks.generate.map_seeds`), extrapolated to
1,000 instances against issue 9's 10-minute and issue 4's 2-minute targets.

Run: `python bench/scale.py [--quick] [--seeds N] [--fd-limit S] [--instances N] [--jobs J] [--markdown]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.errors import LimitError  # noqa: E402
from plannerl.parallel import map_seeds  # noqa: E402
from plannerl.pddl.up_bridge import run_fast_downward_process  # noqa: E402
from plannerl.tasks.generate import DEFAULT_RANGES, generate_instance, solve_instance  # noqa: E402
from plannerl.tasks.recipes import COOKING_DOMAIN, load_recipe  # noqa: E402

TASK = "double_cheese_burger"
BUCKETS = [(13, 0), (16, 2), (19, 4), (22, 6), (25, 8)]
FD_CONFIGS = {"iPDB": "astar(ipdb())", "LM-cut": "astar(lmcut())"}
TARGETS = {"median plan s": 1.0, "worst plan s": 5.0, "peak MB": 1024, "label s": 2.0}

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from plannerl.planning.oracle import Oracle
from plannerl.planning.planner import load_task
from plannerl.planning.search import optimal_search
imported, cpu = time.perf_counter(), time.process_time()
task = load_task(sys.argv[1], sys.argv[2])
result = optimal_search(task)
planned, plan_cpu = time.perf_counter(), time.process_time() - cpu
labels = Oracle(task).trajectory(result.plan)
labelled = time.perf_counter()
print(json.dumps({"plan_s": planned - imported, "plan_cpu_s": plan_cpu, "label_s": labelled - planned, "expanded": result.expanded,
                  "length": result.length, "labels": len(labels),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def plannerl_child(problem: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(COOKING_DOMAIN), str(problem)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout)


def fast_downward(problem: Path, search: str, limit: float) -> dict:
    try:
        found = run_fast_downward_process(COOKING_DOMAIN, problem, time_limit=limit, search=search)
    except LimitError:
        return {"seconds": None, "length": None}
    return {"seconds": found.seconds, "length": found.length}


def bucket_instance(stations: int, distractors: int, seed: int):
    extra = stations - len(load_recipe(TASK).base_stations)
    return generate_instance(TASK, seed, extra_stations=extra, distractors=distractors, best_binding=False)


def measure_bucket(stations: int, distractors: int, seeds: int, fd_limit: float, folder: Path) -> dict:
    rows = []
    for seed in range(1, seeds + 1):
        instance = bucket_instance(stations, distractors, seed)
        problem = folder / instance.file_name
        problem.write_text(instance.problem_text)
        ours = plannerl_child(problem)
        theirs = {name: fast_downward(problem, search, fd_limit) for name, search in FD_CONFIGS.items()}
        rows.append({"seed": seed, "stations": instance.stations, "ours": ours, "fd": theirs})
        print(f"  {stations} stations, {distractors} distractors, seed {seed}: plannerl {ours}, Fast Downward {theirs}",
              file=sys.stderr, flush=True)
    return {"stations": stations, "distractors": distractors, "rows": rows}


def fully_labelled(seed: int) -> int:
    """One default-range instance generated, solved and labelled on every trajectory state: the rows' labels."""
    instance = generate_instance(TASK, seed)
    _, oracle, plan = solve_instance(instance)
    return len(oracle.trajectory(plan))


def throughput(instances: int, jobs: int) -> dict:
    start = time.perf_counter()
    labels = map_seeds(fully_labelled, range(1, instances + 1), jobs=jobs)
    seconds = time.perf_counter() - start
    return {"instances": instances, "jobs": jobs, "seconds": seconds, "labels": sum(labels)}


def _seconds(value: float | None, limit: float) -> str:
    return f"> {limit:g} s" if value is None else f"{value:.2f} s"


def bucket_line(bucket: dict, fd_limit: float) -> tuple[list[str], list[str]]:
    """The table row and any length disagreements."""
    rows = bucket["rows"]
    ok = [r for r in rows if "error" not in r["ours"]]
    errors = [r for r in rows if "error" in r["ours"]]
    problems = [f"{bucket['stations']}/{bucket['distractors']} seed {r['seed']}: plannerl failed: {r['ours']['error']}" for r in errors]
    for r in ok:
        for name, fd in r["fd"].items():
            if fd["length"] is not None and fd["length"] != r["ours"]["length"]:
                problems.append(f"{bucket['stations']}/{bucket['distractors']} seed {r['seed']}: plannerl {r['ours']['length']} "
                                f"steps, Fast Downward {name} {fd['length']}")
    if not ok:
        return [f"{bucket['stations']}", f"{bucket['distractors']}", str(len(rows)), *["-"] * 12], problems
    plan = [r["ours"]["plan_s"] for r in ok]
    fd_cells, best = [], []
    for name in FD_CONFIGS:
        times = [r["fd"][name]["seconds"] for r in ok]
        solved = [t for t in times if t is not None]
        cell = f"{statistics.median(solved):.1f} s" if solved else f"> {fd_limit:g} s"
        if solved and len(solved) < len(times):
            cell += f" ({len(times) - len(solved)} > {fd_limit:g} s)"
        fd_cells.append(cell)
    for r in ok:
        finished = [fd["seconds"] for fd in r["fd"].values() if fd["seconds"] is not None]
        best.append((min(finished), False) if finished else (fd_limit, True))
    ratios = sorted(b / p for (b, _), p in zip(best, plan))
    censored = any(c for _, c in best)
    median_best = statistics.median(b for b, _ in best)
    cells = [
        f"{bucket['stations']}", f"{bucket['distractors']}", str(len(ok)),
        f"{statistics.median(r['ours']['length'] for r in ok):.0f}",
        f"{statistics.median(plan):.2f} s", f"{max(plan):.2f} s", f"{statistics.median(r['ours']['plan_cpu_s'] for r in ok):.2f} s",
        f"{statistics.median(r['ours']['expanded'] for r in ok):.0f}",
        f"{max(r['ours']['peak_mb'] for r in ok):.0f}",
        f"{statistics.median(r['ours']['label_s'] for r in ok):.2f} s / {max(r['ours']['label_s'] for r in ok):.2f} s",
        *fd_cells,
        ("> " if censored else "") + f"{median_best:.1f} s",
        ("> " if censored else "") + f"{statistics.median(ratios):.1f}x",
    ]
    return cells, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed per bucket, Fast Downward limit 20 s, 20 instances of throughput")
    parser.add_argument("--seeds", type=int, default=3, help="instances per bucket")
    parser.add_argument("--fd-limit", type=float, default=60.0, help="seconds per Fast Downward run")
    parser.add_argument("--instances", type=int, default=100, help="instances for the throughput line (1000: the target itself)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the throughput line")
    parser.add_argument("--buckets", default=",".join(f"{s}/{d}" for s, d in BUCKETS), help="stations/distractors, comma-separated")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.fd_limit, args.instances = 1, 20.0, 20
    buckets = [tuple(int(x) for x in part.split("/")) for part in args.buckets.split(",")]

    started = time.perf_counter()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="plannerl-scale-") as scratch:
        results = [measure_bucket(s, d, args.seeds, args.fd_limit, Path(scratch)) for s, d in buckets]
    flow = throughput(args.instances, args.jobs)

    header = ["stations", "distractors", "instances", "length", "plan median", "plan worst", "plan CPU median", "expanded", "peak MB",
              "label median / worst", "FD iPDB", "FD LM-cut", "FD best", "FD best / plan"]
    lines, problems = [], []
    for bucket in results:
        cells, wrong = bucket_line(bucket, args.fd_limit)
        lines.append(cells)
        problems += wrong
    print(f"{TASK}, seeds 1-{args.seeds} per bucket; Fast Downward limit {args.fd_limit:g} s per run; "
          f"load average {load:.2f} at the start on {os.cpu_count()} CPUs")
    print_table(header, lines, args.markdown)
    ok = [r["ours"] for b in results for r in b["rows"] if "error" not in r["ours"]]
    if ok:
        plan = [r["plan_s"] for r in ok]
        cpu = [r["plan_cpu_s"] for r in ok]
        print(f"plan CPU time: median {statistics.median(cpu):.2f} s, worst {max(cpu):.2f} s")
        checks = {"median plan s": statistics.median(plan), "worst plan s": max(plan),
                  "peak MB": max(r["peak_mb"] for r in ok), "label s": max(r["label_s"] for r in ok)}
        verdicts = [f"{name} {value:.2f} (<= {TARGETS[name]:g}: {'met' if value <= TARGETS[name] else 'NOT met'})"
                    for name, value in checks.items()]
        print("targets (issue 9): " + "; ".join(verdicts))
    per_1000 = 1000 * flow["seconds"] / flow["instances"]
    ranges = DEFAULT_RANGES
    print(f"throughput: {flow['instances']} {TASK} instances at the default ranges (extra stations {ranges.extra_stations}, "
          f"distractors {ranges.distractors}), generated, solved and labelled ({flow['labels']} states) with --jobs {flow['jobs']}: "
          f"{flow['seconds']:.1f} s = {flow['instances'] / flow['seconds']:.2f} instances/s; 1,000 instances: {per_1000:.0f} s "
          f"(issue 9 target 600 s: {'met' if per_1000 <= 600 else 'NOT met'}; issue 4 target 120 s: "
          f"{'met' if per_1000 <= 120 else 'NOT met'}); load average {os.getloadavg()[0]:.2f} at the end")
    print(f"whole run {time.perf_counter() - started:.0f} s")
    for line in problems:
        print("DISAGREEMENT " + line)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
