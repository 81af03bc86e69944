"""How a model's constrained choice is made (`--choice sum` or `greedy`), state by state.

On the states of the oracle's plans for the given tasks and seeds (seeds no run trained on),
the share of states where the model's choice among the valid answers is an optimal action:
by summed log-probability (`sum`, plannerl's default) and by greedy decoding over the valid
answers (`greedy`), from the same per-token scores (`plannerl.agents.scoring`), with the
number of states where the two differ. Per-state accuracy is what an episode compounds: a
20-step plan at 0.95 per state succeeds far less often than at 0.99.

Then, per task, where the greedy choice goes wrong: for each kind of optimal action (its PDDL
schema: move, pick-up, stack, cook, ...) how many states needed it and which kind the model chose instead;
`--show N` prints the first N such states' prompts beside the chosen and the optimal answers
(reading them found the generalist's failures: a held item that is not next carried to the
stack instead of put down, a raw patty carried past the stove; docs/training.md, session 11).

Run: `python bench/choice.py --model runs/double_cheese_burger/model --tasks burger,cheese_sandwich --seeds 7000:7019`
(`--show 5`, `--markdown`)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference import oracle_states  # noqa: E402
from tables import print_table  # noqa: E402

from plannerl.agents.policies import ModelPolicy, answer_texts  # noqa: E402
from plannerl.agents.scoring import greedy_choice, score_answers  # noqa: E402
from plannerl.seeds import parse_seeds  # noqa: E402


def choice_accuracy(policy: ModelPolicy, task: str, seeds: list[int], history_len: int) -> dict:
    """States, optimal-choice counts by sum and by greedy, states where the two differ; and the
    greedy choice's mistakes: `needed` (optimal action kind -> states), `chosen` ((optimal kind,
    chosen kind) -> wrong states) and `wrong` ((prompt, chosen answer, optimal answers) each)."""
    states = oracle_states(task, seeds, len(seeds) * 1000)  # every state: no plan is that long
    for obs in states:
        obs.history_len = history_len
    counts = {"states": 0, "sum": 0, "greedy": 0, "differ": 0, "needed": Counter(), "chosen": Counter(), "wrong": []}
    for start in range(0, len(states), policy.batch_size):
        batch = states[start:start + policy.batch_size]
        valid = [obs.valid_actions() for obs in batch]
        texts = [answer_texts(obs.task, obs.state, actions, policy.prompt_style) for obs, actions in zip(batch, valid)]
        prompt_texts = policy.prompt_texts(batch)
        prompts = policy.tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
        candidates = [[policy._answer_ids(text) for text in options] for options in texts]
        per_token = score_answers(policy.model, prompts, candidates, policy.tokenizer.pad_token_id, per_token=True)
        for obs, prompt, actions, answers, ids, scores in zip(batch, prompt_texts, valid, texts, candidates, per_token):
            optimal = set(obs.problem.oracle.optimal_actions(obs.state))
            by_sum = max(range(len(ids)), key=lambda k: (sum(scores[k]), -k))
            by_greedy = greedy_choice(ids, scores)
            counts["states"] += 1
            counts["sum"] += actions[by_sum] in optimal
            counts["greedy"] += actions[by_greedy] in optimal
            counts["differ"] += by_sum != by_greedy
            best = [k for k, action in enumerate(actions) if action in optimal]
            wanted = obs.task.actions[actions[best[0]]].schema
            counts["needed"][wanted] += 1
            if actions[by_greedy] not in optimal:
                counts["chosen"][wanted, obs.task.actions[actions[by_greedy]].schema] += 1
                counts["wrong"].append((prompt, answers[by_greedy], [answers[k] for k in best]))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--seeds", default="7000:7019")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print the first N wrongly chosen states per task")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    policy = ModelPolicy(args.model, constrained=True, threads=1, batch_size=16)
    history_len = policy.history_len if policy.history_len is not None else 1
    rows, mistakes, shown = [], [], []
    for task in args.tasks.split(","):
        found = choice_accuracy(policy, task, parse_seeds(args.seeds), history_len)
        n = found["states"]
        rows.append([task, str(n), f"{found['sum'] / n:.3f}", f"{found['greedy'] / n:.3f}", str(found["differ"])])
        for kind, needed in found["needed"].most_common():
            instead = [(chosen, count) for (wanted, chosen), count in found["chosen"].most_common() if wanted == kind]
            wrong = sum(count for _, count in instead)
            mistakes.append([task, kind, str(needed), f"{1 - wrong / needed:.3f}",
                             ", ".join(f"{chosen} {count}" for chosen, count in instead) or "-"])
        shown += [(task, *example) for example in found["wrong"][:args.show]]
    print_table(["task", "states", "optimal choice: sum", "optimal choice: greedy", "states where they differ"], rows,
                args.markdown)
    print()
    print_table(["task", "optimal action", "states", "optimal choice: greedy", "wrong greedy choices, by kind"], mistakes,
                args.markdown)
    for task, prompt, chosen, best in shown:
        print(f"\n[{task}]\n{prompt.rstrip()}\n  chosen:  {chosen}\n  optimal: {' | '.join(best[:4])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
