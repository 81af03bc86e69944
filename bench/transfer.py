"""Generalisation benchmark (issue #17): models trained on a mix or on sub-goals, played on the shipped recipes.

For each `NAME=CONFIG` run, trains `plannerl train --config CONFIG` into OUT/NAME (an existing
run folder is resumed, a finished one, with summary.json, only read), then reads the run's own
evaluation of every task in its `[eval] tasks`, after its last evaluated stage, on the paper's
seeds and the held-out seeds, and with `--fresh SPEC` plays the run's final model on every task
of `[eval] tasks` on those seeds too (seeds the run never trained, validated or tuned on; the
report is kept in OUT/NAME/eval/fresh-SPEC.json and read back next time). Prints per run and
task: SR, ASST and ASST over the optimal length of the same episodes (1.00 = every success took
a shortest plan), then the SR matrix (rows: run; columns: task) and the training minutes;
writes it all to OUT/transfer.json.

The issue's targets: the generalist (no shipped recipe trained on) SR >= 0.8 on each of the six
shipped recipes with <= 60 minutes of training; a double_cheese_burger model SR >= 0.9 on
cheese_sandwich, burger, cheese_burger and itself; the six-recipe mix SR >= 0.9 on each; ASST
within 10% of optimal throughout.

Run: `python bench/transfer.py --out runs [--run NAME=CONFIG ...] [--fresh 7000:7049] [--markdown]`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.atomic import write_json  # noqa: E402
from plannerl.errors import PlannerlError  # noqa: E402

RUNS = {"generalist": "configs/generalist.toml", "six_tasks": "configs/six_tasks.toml",
        "dcb_subgoals": "configs/double_cheese_burger.toml"}
SPLITS = {"seeds": "42..420", "heldout": "5000..5019"}


def training_minutes(config_file: str, run_dir: Path) -> float:
    """Train (or resume) the run unless it has finished (summary.json written), then its
    training time from the run's timings.json."""
    from plannerl.train.config import resolve_config
    from plannerl.train.pipeline import train

    if not (run_dir / "summary.json").is_file():
        config = resolve_config(ROOT / config_file if not Path(config_file).is_file() else config_file)
        train(config, run_dir, resume=(run_dir / "config.json").is_file(),
              say=lambda text: print(f"[{run_dir.name}] {text}", flush=True))
    return json.loads((run_dir / "timings.json").read_text())["seconds"].get("training_total", 0) / 60


def task_metrics(report: dict) -> dict:
    """Per task of an evaluation report: SR, ASST and ASST / optimal length over the successes."""
    per_task: dict[str, dict] = {}
    for episode in report["episodes"]:
        per_task.setdefault(episode["group"], []).append(episode)
    result = {}
    for task, episodes in per_task.items():
        wins = [e for e in episodes if e["success"]]
        steps, optimal = sum(e["steps"] for e in wins), sum(e["optimal_length"] for e in wins)
        result[task] = {"episodes": len(episodes), "sr": len(wins) / len(episodes),
                        "asst": steps / len(wins) if wins else None, "asst_ratio": steps / optimal if wins else None}
    return result


def last_stage_reports(run_dir: Path, config: dict) -> tuple[str, dict]:
    """(stage, {split: report}) for the last stage of `[eval] stages` the run evaluated."""
    for stage in reversed(config["eval"]["stages"]):
        paths = {split: run_dir / "eval" / f"{stage}-{split}.json" for split in SPLITS}
        if all(path.is_file() for path in paths.values()):
            return stage, {split: json.loads(path.read_text()) for split, path in paths.items()}
    raise PlannerlError(f"{run_dir}: no evaluation report of any stage in {config['eval']['stages']}")


def fresh_report(run_dir: Path, config: dict, seeds: str) -> dict:
    """The final model of the run played (constrained, as the run's own evaluation) on every
    evaluation task on `seeds`, by `plannerl eval`; its report is cached in the run folder."""
    path = run_dir / "eval" / f"fresh-{seeds.replace(':', '_')}.json"
    if not path.is_file():
        tasks = [arg for task in config["eval"]["tasks"] or config["tasks"] or [config["task"]] for arg in ("--task", task)]
        command = [sys.executable, "-m", "plannerl.cli", "eval", "--policy", str(run_dir / "model"), *tasks, "--seeds", seeds,
                   "--constrained", "--choice", config["eval"].get("choice", "sum"), "--batch-size", str(config["eval"]["batch_size"]),
                   "--report", str(path), "--quiet"]
        if subprocess.run(command).returncode != 0:
            raise PlannerlError(f"{run_dir}: plannerl eval on fresh seeds {seeds} failed")
    return json.loads(path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--run", action="append", default=[], help="NAME=CONFIG (default: the three runs of issue #17)")
    parser.add_argument("--fresh", default="", help="SEEDS: also play the final models on these seeds (e.g. 7000:7049)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    splits = dict(SPLITS, **({"fresh": args.fresh.replace(":", "..")} if args.fresh else {}))
    runs = dict(item.split("=", 1) for item in args.run) if args.run else RUNS
    results = {}
    try:
        for name, config_file in runs.items():
            run_dir = Path(args.out) / name
            minutes = training_minutes(config_file, run_dir)
            config = json.loads((run_dir / "config.json").read_text())
            stage, reports = last_stage_reports(run_dir, config)
            if args.fresh:
                reports["fresh"] = fresh_report(run_dir, config, args.fresh)
            results[name] = {"stage": stage, "training_minutes": minutes,
                             "splits": {split: task_metrics(report) for split, report in reports.items()}}
    except PlannerlError as exc:
        print(f"bench/transfer.py: error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for name, result in results.items():
        for task in result["splits"]["seeds"]:
            cells = [name, result["stage"], task]
            for split in splits:
                values = result["splits"][split][task]
                cells += [f"{values['sr']:.2f}", "-" if values["asst"] is None else f"{values['asst']:.1f}",
                          "-" if values["asst_ratio"] is None else f"{values['asst_ratio']:.2f}"]
            rows.append(cells)
    headers = ["run", "stage", "evaluated on"] + [f"{h} {s}" for s in splits.values() for h in ("SR", "ASST", "ASST/opt")]
    print_table(headers, rows, args.markdown)
    tasks = list(dict.fromkeys(task for result in results.values() for task in result["splits"]["seeds"]))
    for split, label in splits.items():
        print()
        matrix = [[name] + [f"{result['splits'][split][t]['sr']:.2f}" if t in result["splits"][split] else "-" for t in tasks]
                  for name, result in results.items()]
        print_table([f"SR (seeds {label}): run \\ task", *tasks], matrix, args.markdown)
    print()
    print_table(["run", "training minutes"], [[n, f"{r['training_minutes']:.1f}"] for n, r in results.items()], args.markdown)
    write_json(Path(args.out) / "transfer.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
