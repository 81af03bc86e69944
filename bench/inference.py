"""Inference speed of a model policy beside the raw cost of one forward pass (issue #19).

The states are those of the oracle's plans on the paper's seeds (what an evaluation of a
good agent visits). For each task and batch size, over the same prompts batched the same way:

- floor: one plain forward pass over the prompts (left-padded, no cache, the last position's
  logits only): what any answer costs at least;
- tree: constrained scoring as `ModelPolicy` does it (`plannerl.agents.scoring.score_candidates`:
  the prompt pass, then every candidate of a prompt in one prefix-tree row);
- copies: the previous scorer (`score_by_copies`: each candidate on its own copy of the prompt's cache);
- choice: a whole constrained answer (render, tokenise, score, pick): `ModelPolicy.act`;
- greedy: the same with `choice="greedy"` (greedy decoding over the valid answers: only the
  tree nodes where answers part run, `parts_only`);
- text: a whole free-text answer (greedy, KV cache, stops at the end of the line).

Times are per action (per prompt); `x floor` is the ratio to the floor of the same run.
Without --model the built-in model is built here, untrained: it costs what a trained one
costs per token; its free text runs to the length of the longest valid answer.

Run: `python bench/inference.py [--model DIR] [--threads 1] [--device cpu] [--backend native|transformers]
[--precision fp32|bf16] [--markdown]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tables import print_table  # noqa: E402

from plannerl.agents.episodes import Observation, play  # noqa: E402
from plannerl.agents.policies import ModelPolicy, OraclePolicy, answer_texts  # noqa: E402
from plannerl.agents.problems import problems_from_tasks  # noqa: E402
from plannerl.seeds import parse_seeds  # noqa: E402


class Recorder(OraclePolicy):
    """The oracle, remembering every observation it answered."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def act(self, observations):
        self.seen.extend(observations)
        return super().act(observations)


def oracle_states(task: str, seeds: list[int], count: int) -> list[Observation]:
    recorder = Recorder()
    play(problems_from_tasks([task], seeds), recorder)
    return recorder.seen[:count]


def per_item(run, items: list, batch: int, repeats: int) -> float:
    """Best-of-`repeats` seconds per item of `run(chunk)` over `items` in chunks of `batch`."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for first in range(0, len(items), batch):
            run(items[first:first + batch])
        best = min(best, (time.perf_counter() - started) / len(items))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a trained model folder (default: the built-in model, built untrained here)")
    parser.add_argument("--tasks", default="burger,double_cheese_burger")
    parser.add_argument("--seeds", default="42:420:42")
    parser.add_argument("--states", type=int, default=128, help="states per task")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--style", help="prompt style to read (default: the model's; full = a hub model's prompt)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=["native", "transformers"], default="native",
                        help="the forward pass: plannerl's own (what ModelPolicy runs a built-in model on) or transformers'")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="weights and activations (bf16: `plannerl eval --precision bf16`)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import torch

    from plannerl.agents.model import build_default_model, configure_torch_cpu, load_model
    from plannerl.agents.scoring import left_padded, score_by_copies, score_candidates

    configure_torch_cpu(args.threads)
    model_dir = args.model
    if model_dir is None:
        model_dir = build_default_model(Path(tempfile.mkdtemp()) / "model", seed=0)
    policy = ModelPolicy(str(model_dir), constrained=True)
    if args.backend == "transformers":
        policy.model, policy.tokenizer = load_model(model_dir)
        policy.model.eval()
    policy.model.to(args.device, torch.bfloat16 if args.precision == "bf16" else torch.float32)
    if args.model is None:  # what `plannerl train` records for the built-in model by default
        policy.prompt_style, policy.history_len = "todo", 1
    policy.prompt_style = args.style or policy.prompt_style
    tokenizer, model, pad = policy.tokenizer, policy.model, policy.tokenizer.pad_token_id
    greedy_policy = ModelPolicy(str(model_dir), constrained=True, choice="greedy")
    greedy_policy.model, greedy_policy.tokenizer = model, tokenizer
    greedy_policy.prompt_style, greedy_policy.history_len = policy.prompt_style, policy.history_len
    text_policy = ModelPolicy(str(model_dir))
    text_policy.model, text_policy.tokenizer, text_policy.prompt_style = model, tokenizer, policy.prompt_style

    def floor(chunk):
        ids, mask = left_padded([ids for ids, _ in chunk], pad, args.device)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)

    def scorer(score):
        def run(chunk):
            with torch.no_grad():
                score(model, [ids for ids, _ in chunk], [options for _, options in chunk], pad)
        return run

    rows = []
    for task in args.tasks.split(","):
        states = oracle_states(task, parse_seeds(args.seeds), args.states)
        for obs in states:
            obs.history_len = policy.history_len or 5
        encoded = [(ids, [policy._answer_ids(text) for text in answers]) for ids, answers in zip(
            tokenizer(policy.prompt_texts(states), add_special_tokens=False)["input_ids"],
            [answer_texts(obs.task, obs.state, obs.valid_actions(), policy.prompt_style) for obs in states])]
        if args.model is None:
            text_policy.max_new_tokens = max(len(ids) for _, options in encoded for ids in options)
        tokens = sum(len(ids) for ids, _ in encoded) / len(encoded)
        candidates = sum(len(options) for _, options in encoded) / len(encoded)
        for batch in map(int, args.batches.split(",")):
            base = per_item(floor, encoded, batch, args.repeats)
            times = {"tree": per_item(scorer(score_candidates), encoded, batch, args.repeats),
                     "copies": per_item(scorer(score_by_copies), encoded, batch, 1),
                     "choice": per_item(policy.act, states, batch, args.repeats),
                     "greedy": per_item(greedy_policy.act, states, batch, args.repeats),
                     "text": per_item(text_policy.act, states, batch, 1)}
            rows.append([task, str(batch), f"{tokens:.0f}", f"{candidates:.1f}", f"{base * 1000:.1f}",
                         *(f"{times[k] * 1000:.1f} ({times[k] / base:.2f}x)" for k in times),
                         f"{1 / times['choice']:.0f} / {1 / times['greedy']:.0f}"])
    headers = ["task", "batch", "tokens/prompt", "answers/state", "floor ms", "tree ms (x floor)", "copies ms (x floor)",
               "choice ms (x floor)", "greedy ms (x floor)", "text ms (x floor)", "choices/s (sum / greedy)"]
    title = (f"ms per action, {args.backend} forward pass, {args.precision}, {policy.prompt_style} prompts, "
             f"{args.threads} torch thread(s), {args.device}, "
             f"{args.states} states per task")
    print_table(headers, rows, args.markdown, title=title, align="right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
