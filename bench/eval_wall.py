"""Benchmark: the wall time of a whole `plannerl eval`, as a user runs it (issue: fast inference).

The same command line (a trained model, `--constrained`, a task's seeds) is run as a fresh
process in several settings, each `--repeats` times, on the same machine in the same run:

- `fp32, sum`: plannerl's defaults, with the optimal-length cache off: the reference;
- `bf16, greedy`: bfloat16 weights and greedy choice over the valid answers, cache off;
- the same with the optimal-length cache (`plannerl.planning.lengths`) empty (cold: it
  searches and fills the cache) and then filled (warm: the same instances search nothing);
- warm with `--threads 2` (faster only when both cores are free).

Printed: the median wall seconds of each setting, its speed-up against the reference, and
whether its report is byte-identical to the same precision's uncached report (the cache must
not change a result; bf16 is compared with bf16, since it rounds scores).

Run: `python bench/eval_wall.py --model runs/double_cheese_burger/model` (`--task`,
`--seeds` default to double_cheese_burger and the paper's ten seeds; `--repeats 2`, `--markdown`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

SETTINGS = [  # (name, extra options, cache: "off" | "cold" | "warm", uncached report it must equal)
    ("fp32, sum", [], "off", None),
    ("bf16, greedy", ["--precision", "bf16", "--choice", "greedy"], "off", None),
    ("bf16, greedy, cache cold", ["--precision", "bf16", "--choice", "greedy"], "cold", "bf16, greedy"),
    ("bf16, greedy, cache warm", ["--precision", "bf16", "--choice", "greedy"], "warm", "bf16, greedy"),
    ("bf16, greedy, cache warm, 2 threads", ["--precision", "bf16", "--choice", "greedy", "--threads", "2"], "warm",
     "bf16, greedy"),
    ("fp32, sum, cache warm", [], "warm", "fp32, sum"),
]


def run_eval(args, options: list[str], cache: str, report: Path) -> float:
    """Seconds of one `plannerl eval` process, start to exit."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PLANNERL_CACHE=cache)
    command = [sys.executable, "-c", "from plannerl.cli.main import run; run()", "eval", "--policy", args.model, "--task", args.task,
               "--seeds", args.seeds, "--constrained", "-q", "--report", str(report), *options]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"plannerl eval failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", default="double_cheese_burger")
    parser.add_argument("--seeds", default="42:420:42")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        times: dict[str, list[float]] = {name: [] for name, *_ in SETTINGS}
        reports: dict[str, bytes] = {}
        for repeat in range(args.repeats):
            cache = scratch / f"cache{repeat}"  # empty for each repeat's cold run, then filled by it
            for name, options, mode, _ in SETTINGS:
                report = scratch / f"{len(reports)}-{repeat}.json"
                times[name].append(run_eval(args, options, "off" if mode == "off" else str(cache), report))
                reports.setdefault(name, report.read_bytes())
        reference = statistics.median(times[SETTINGS[0][0]])
        rows = []
        for name, _, _, equal_to in SETTINGS:
            seconds = statistics.median(times[name])
            same = "reference" if equal_to is None else ("yes" if reports[name] == reports[equal_to] else "NO")
            rows.append([name, f"{seconds:.2f}", f"{reference / seconds:.2f}x", same])
    print_table(["setting", "wall s (median)", "speed-up", "report identical to uncached"], rows, args.markdown,
                title=f"plannerl eval --constrained, {args.task} seeds {args.seeds}, {args.repeats} run(s) each")


if __name__ == "__main__":
    main()
