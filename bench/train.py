"""Quality benchmark for training: SFT-only vs SFT+GRPO vs +recovery, and the cross-task matrix.

For each training task, runs the `plannerl train` pipeline (the same `plannerl.train.train`)
with one config into OUT/<task>, evaluating the model after each stage on every task of
`--eval-tasks`, over the evaluation seeds (42..420 step 42) and the held-out seeds of the
config. Prints, per trained task and stage, SR / ASAT / ASST on each split, the training time
(wall clock, this machine), and the SR matrix (rows: trained on; columns: evaluated on) of the
final stage; writes everything to OUT/bench.json.

The issue's target: SR >= 0.9 on each of cheese_sandwich, burger, cheese_burger and
double_cheese_burger, on both splits, with at most 30 minutes of training per task on a
2-core CPU.

Run: `python bench/train.py --config configs/default.toml --out runs/bench [--tasks a,b] [--markdown]`
(an existing OUT/<task> run is resumed, so an interrupted benchmark continues).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.atomic import write_json  # noqa: E402
from plannerl.errors import PlannerlError  # noqa: E402

PAPER_TASKS = ["cheese_sandwich", "burger", "cheese_burger", "double_cheese_burger"]


def bench_task(task: str, config_file: str | None, out: Path, eval_tasks: list[str], overrides: list[str]) -> dict:
    from plannerl.train import merge_config, parse_assignment, resolve_config, train

    extra: dict = {"task": task, "eval": {"tasks": eval_tasks}}
    for assignment in overrides:
        extra = merge_config(extra, parse_assignment(assignment))
    config = resolve_config(config_file, extra)
    run_dir = out / task
    resume = (run_dir / "config.json").is_file()
    started = time.monotonic()
    summary = train(config, run_dir, resume=resume, say=lambda text: print(f"[{task}] {text}", flush=True))
    summary["bench_seconds"] = round(time.monotonic() - started, 1)
    summary["resumed"] = resume
    return summary


def rows_for(summary: dict) -> list[list[str]]:
    rows = []
    for stage, splits in summary["evaluation"].items():
        for group in splits.get("seeds", {}):
            cells = [summary["task"], stage, group]
            for split in ("seeds", "heldout"):
                values = splits.get(split, {}).get(group)
                if values is None:
                    cells += ["-", "-", "-"]
                    continue
                asst = values["asst"]["mean"]
                cells += [f"{values['sr']['mean']:.2f}", f"{values['asat']['mean']:.1f}", "-" if asst is None else f"{asst:.1f}"]
            rows.append(cells)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS), help="tasks to train on")
    parser.add_argument("--eval-tasks", default=",".join(PAPER_TASKS), help="tasks every model is evaluated on")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config KEY=VALUE, repeatable")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    summaries = {}
    try:
        for task in args.tasks.split(","):
            summaries[task] = bench_task(task, args.config, out, args.eval_tasks.split(","), args.overrides)
    except PlannerlError as exc:
        print(f"bench/train.py: error: {exc}", file=sys.stderr)
        return 2
    headers = ["trained on", "stage", "evaluated on", "SR 42..420", "ASAT", "ASST", "SR held-out", "ASAT", "ASST"]
    print_table(headers, [row for summary in summaries.values() for row in rows_for(summary)], args.markdown)
    print()
    print_table(["trained on", "training minutes", "whole call minutes", "rows", "visited rows", "resumed"],
                [[task, f"{s['seconds'].get('training_total', 0) / 60:.1f}", f"{s['bench_seconds'] / 60:.1f}", str(s["rows"]),
                  str(s["visited_rows"]), str(s["resumed"])] for task, s in summaries.items()], args.markdown)
    print()
    eval_tasks = args.eval_tasks.split(",")
    matrix = []
    for task, summary in summaries.items():
        final = list(summary["evaluation"].values())[-1] if summary["evaluation"] else {}
        matrix.append([task] + [f"{final.get('seeds', {}).get(t, {}).get('sr', {}).get('mean', float('nan')):.2f}" for t in eval_tasks])
    print_table(["SR (seeds 42..420): trained on \\ evaluated on", *eval_tasks], matrix, args.markdown)
    write_json(out / "bench.json", summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
