"""Single-turn vs multi-turn GRPO from one start model (issue #20): SR, steps and CPU minutes.

Trains each variant with `examples/trl_multiturn.py` from the same start model, on the same
training seeds and for the same number of GRPO steps (a variant whose OUT/NAME/result.json
exists is only read), then plays the start model and every trained one on the paper's seeds
and on `--fresh` seeds (constrained, the retry rule, the paper's step limits) and prints SR,
ASST over the optimal length of the same episodes, and the training CPU minutes.

Variants: single / multi turns x expert / visited starts, answers sampled among the valid
actions; `--text` adds both turn modes with free-text samples.

Run: `python bench/multiturn.py --model runs/x/sft/model --task cheese_burger --out runs/cmp [--steps 60]
[--learning-rate 5e-5] [--train-seeds 3000:3049] [--only single_visited,multi_visited] [--text] [--markdown]`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.agents.model import configure_torch_cpu  # noqa: E402


def variants(text: bool) -> dict[str, list[str]]:
    found = {f"{turns}_{starts}": ["--turns", turns, "--sample", "choice", "--starts", starts]
             for starts in ("expert", "visited") for turns in ("single", "multi")}
    if text:
        found |= {f"{turns}_text": ["--turns", turns, "--sample", "text"] for turns in ("single", "multi")}
    return found


def train(name: str, flags: list[str], args) -> dict:
    out = Path(args.out) / name
    if not (out / "result.json").is_file():
        command = [sys.executable, str(ROOT / "examples" / "trl_multiturn.py"), "--model", args.model, "--task", args.task,
                   "--steps", str(args.steps), "--train-seeds", args.train_seeds, "--learning-rate", str(args.learning_rate),
                   "--out", str(out), *flags]
        print("training", name, flush=True)
        subprocess.run(command, check=True, env=dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def evaluate(model: str, task: str, seeds: str) -> tuple[float, float | None]:
    """SR and the successes' steps over their optimal lengths, as `plannerl eval --constrained` plays."""
    from plannerl.agents.episodes import play
    from plannerl.agents.policies import ModelPolicy
    from plannerl.agents.problems import problems_from_tasks
    from plannerl.seeds import parse_seeds

    policy = ModelPolicy(model, constrained=True)
    results = play(problems_from_tasks([task], parse_seeds(seeds)), policy, history_len=policy.history_len or 1)
    wins = [r for r in results if r.success]
    ratio = sum(r.steps for r in wins) / sum(r.problem.optimal_length for r in wins) if wins else None
    return len(wins) / len(results), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", default="cheese_burger")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--train-seeds", default="3000:3049")
    parser.add_argument("--fresh", default="6000:6099", help="evaluation seeds never trained or tuned on")
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--text", action="store_true", help="also the free-text sampling variants")
    parser.add_argument("--only", default="", help="comma-separated variant names to run (default: all)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    configure_torch_cpu(1)

    models = {"start model": (args.model, None)}
    for name, flags in variants(args.text).items():
        if args.only and name not in args.only.split(","):
            continue
        models[name] = (str(Path(args.out) / name / "model"), train(name, flags, args))
    rows = []
    for name, (folder, result) in models.items():
        paper, paper_ratio = evaluate(folder, args.task, "42:420:42")
        fresh, fresh_ratio = evaluate(folder, args.task, args.fresh)
        rows.append([name, str(result["rows"]) if result else "-", f"{result['cpu_minutes']:.1f}" if result else "-",
                     f"{paper:.2f}", f"{fresh:.2f}", f"{fresh_ratio:.2f}" if fresh_ratio else "-"])
    print_table(["variant", "rows", "CPU min", "SR 42..420", f"SR {args.fresh}", "ASST/opt"], rows, args.markdown,
                title=f"{args.task}: {args.steps} GRPO steps at learning rate {args.learning_rate} from {args.model}")


if __name__ == "__main__":
    main()
