"""Quality benchmark for training: SFT-only vs SFT+GRPO vs +recovery, and the cross-task matrix.

For each training task, runs the `plannerl train` pipeline (the same `plannerl.train.pipeline.train`)
with one config into OUT/<task>, evaluating the model after each stage on that task, over the
evaluation seeds (42..420 step 42) and the held-out seeds of the config; then the final model
plays every task of `--eval-tasks` on both splits (the cross-task matrix). Prints, per trained
task and stage, SR / ASAT / ASST on each split, the training time (wall clock and CPU, this
machine), and the SR matrix (rows: trained on; columns: evaluated on); writes everything to
OUT/bench.json and the matrix reports to OUT/<task>/eval/matrix-<split>.json.

The issue's target: SR >= 0.9 on each of cheese_sandwich, burger, cheese_burger and
double_cheese_burger, on both splits, with at most 30 minutes of training per task on a
2-core CPU.

Run: `python bench/train.py --config plannerl/train/defaults.toml --out runs/bench [--tasks a,b] [--markdown]`
(an existing OUT/<task> run is resumed, so an interrupted benchmark continues).
"""

from __future__ import annotations

import argparse
import json
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
    from plannerl.train.config import merge_config, parse_assignment, resolve_config
    from plannerl.train.pipeline import train

    extra: dict = {"task": task, "eval": {"tasks": [task]}}
    for assignment in overrides:
        extra = merge_config(extra, parse_assignment(assignment))
    config = resolve_config(config_file, extra)
    run_dir = out / task
    resume = (run_dir / "config.json").is_file()
    started, cpu = time.monotonic(), time.process_time()
    summary = train(config, run_dir, resume=resume, say=lambda text: print(f"[{task}] {text}", flush=True))
    summary["bench_seconds"] = round(time.monotonic() - started, 1)
    summary["bench_cpu_seconds"] = round(time.process_time() - cpu, 1)
    summary["resumed"] = resume
    print(f"[{task}] matrix: final model on {', '.join(eval_tasks)}", flush=True)
    summary["matrix"] = matrix_row(config, run_dir, eval_tasks)
    return summary


def matrix_row(config: dict, run_dir: Path, eval_tasks: list[str]) -> dict:
    """The final model on every evaluation task, both splits: {split: {task: metrics}}; a split's
    report already in the run folder (an interrupted benchmark) is read, not played again."""
    from plannerl.agents.evaluate import group_results, metrics, play, problems_from_tasks, write_report
    from plannerl.agents.policies import ModelPolicy
    from plannerl.seeds import parse_seeds

    evaluation, row = config["eval"], {}
    for split, key in (("seeds", "seeds"), ("heldout", "heldout_seeds")):
        path = run_dir / "eval" / f"matrix-{split}.json"
        if path.is_file():
            report = json.loads(path.read_text())
            row[split] = {entry["group"]: entry["metrics"] for entry in report["groups"]}
            continue
        policy = ModelPolicy(str(run_dir / "model"), label="final", constrained=evaluation["constrained"], choice=evaluation["choice"],
                             batch_size=evaluation["batch_size"])
        results = play(problems_from_tasks(eval_tasks, parse_seeds(evaluation[key])), policy, invalid=evaluation["invalid"],
                       history_len=config["data"]["history_len"])
        write_report(path, results, {"stage": "final", "split": split, "model": str(run_dir / "model")})
        row[split] = {group: metrics(episodes) for (_, group), episodes in group_results(results).items()}
    return row


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
    parser.add_argument("--config", default=str(ROOT / "plannerl" / "train" / "defaults.toml"))
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
    print_table(["trained on", "training minutes", "pipeline minutes (with evaluation)", "pipeline CPU minutes", "rows",
                 "visited rows", "resumed"],
                [[task, f"{s['seconds'].get('training_total', 0) / 60:.1f}", f"{s['bench_seconds'] / 60:.1f}",
                  f"{s['bench_cpu_seconds'] / 60:.1f}", str(s["rows"]), str(s["visited_rows"]), str(s["resumed"])]
                 for task, s in summaries.items()], args.markdown)
    eval_tasks = args.eval_tasks.split(",")
    for split, label in (("seeds", "seeds 42..420"), ("heldout", "held-out seeds")):
        print()
        matrix = [[task] + [f"{s['matrix'][split].get(t, {}).get('sr', {}).get('mean', float('nan')):.2f}" for t in eval_tasks]
                  for task, s in summaries.items()]
        print_table([f"SR ({label}): trained on \\ evaluated on", *eval_tasks], matrix, args.markdown)
    write_json(out / "bench.json", summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
