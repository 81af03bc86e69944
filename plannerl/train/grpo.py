"""Single-turn GRPO (TRL GRPOTrainer) on the prompts whose answer groups carry a reward signal.

A group of completions for a prompt the model always (or never) answers right has zero
advantage everywhere and teaches nothing, so the prompts are first scored by the probability
that one sampled answer is rewarded (teacher-forced, no sampling) and only mixed ones are kept.
"""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

from plannerl.agents.distributed import main_process_first
from plannerl.agents.model import encode_prompt, load_model, prompt_text
from plannerl.errors import PlannerlError
from plannerl.tasks.rewards import reward_functions
from plannerl.train.models import finish_stage, load_for_training, precision_flags, training_device
from plannerl.train.run import Run, train_with_resume, trainer_callback

VLLM_MODES = ("auto", "off", "colocate", "server")


def grpo_generation(mode: str, *, vllm_installed: bool | None = None, gpu: bool | None = None) -> tuple[dict, str]:
    """TRL GRPOConfig flags for the completions' generation, and one line saying which was chosen.

    `runtime.vllm`: auto (vLLM colocated when it is installed and a GPU is present, else
    transformers' generate), off, colocate (vLLM inside each training process, sharing its GPU)
    or server (a separate `trl vllm-serve` process at TRL's default 0.0.0.0:8000). Asking for vLLM where it
    cannot run is an error; auto never is.
    """
    if mode not in VLLM_MODES:
        raise PlannerlError(f"runtime.vllm must be one of {', '.join(VLLM_MODES)}, got {mode!r}")
    if mode == "off":
        return {}, "grpo generation: transformers (runtime.vllm = off)"
    if vllm_installed is None:
        vllm_installed = importlib.util.find_spec("vllm") is not None
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    missing = "vLLM is not installed" if not vllm_installed else "no GPU is present" if not gpu else None
    if missing and mode == "auto":
        return {}, f"grpo generation: transformers ({missing})"
    if missing:
        raise PlannerlError(f"runtime.vllm = {mode}, but {missing}; use runtime.vllm = auto or off")
    chosen = "colocate" if mode == "auto" else mode
    return {"use_vllm": True, "vllm_mode": chosen}, f"grpo generation: vLLM ({chosen} mode)"


def answer_probabilities(model, tokenizer, rows: list[dict], *, temperature: float, reward: str,
                         batch_size: int = 8) -> list[float]:
    """For each row, the probability that one sampled answer earns the reward: the summed
    probability (at the sampling temperature) of the rewarded answers, each scored with one
    teacher-forced pass instead of sampling."""
    import torch

    pairs = []  # (row index, prompt ids, answer ids)
    for index, row in enumerate(rows):
        prefix = row["completion"][: len(row["completion"]) - len(row["expert_action"])]
        answers = [row["expert_action"]] if reward == "expert" else row["optimal_actions"]
        prompt_ids = encode_prompt(tokenizer, prompt_text(tokenizer, row["prompt"], row.get("messages")))
        for answer in answers:
            ids = tokenizer(prefix + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            pairs.append((index, prompt_ids, ids))
    totals = [0.0] * len(rows)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            part = pairs[start:start + batch_size]
            width = max(len(p) + len(a) for _, p, a in part)
            ids = torch.full((len(part), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for row, (_, p, a) in enumerate(part):
                ids[row, :len(p) + len(a)] = torch.tensor(p + a)
                mask[row, :len(p) + len(a)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float() / temperature
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, (index, p, a) in enumerate(part):
                positions = torch.arange(len(p) - 1, len(p) - 1 + len(a), device=device)
                totals[index] += math.exp(float(logprobs[row, positions, torch.tensor(a, device=device)].sum()))
    return [min(1.0, total) for total in totals]


def signal_probability(p: float, group: int) -> float:
    """Chance that a group of `group` answers is mixed (some rewarded, some not): only mixed
    groups have a non-zero advantage in GRPO."""
    return 1.0 - p ** group - (1.0 - p) ** group


def select_grpo_rows(run: Run, model_dir: Path, rows: list[dict], stage: str) -> list[dict]:
    """Rows whose groups are likely to carry a learning signal, scored on a seeded sample of
    `grpo.filter_pool` rows; the choice is saved so a resumed run trains on the same prompts."""
    grpo = run.config["grpo"]

    def select() -> list[dict]:
        pool = random.Random(run.config["seed"]).sample(rows, min(grpo["filter_pool"], len(rows)))
        model, tokenizer = load_model(model_dir, trust_remote_code=run.config["trust_remote_code"])
        if training_device(run.config) == "cuda":
            model = model.cuda()
        probs = answer_probabilities(model, tokenizer, pool, temperature=grpo["temperature"], reward=grpo["reward"])
        kept = [dict(row, p_rewarded=round(p, 6)) for row, p in zip(pool, probs)
                if signal_probability(p, grpo["num_generations"]) >= grpo["min_signal"]]
        run.log(stage + "-filter", 0, {"pool": len(pool), "kept": len(kept),
                                       "mean_p_rewarded": round(sum(probs) / max(1, len(probs)), 6),
                                       "always_right": sum(p > 0.999 for p in probs)})
        return kept

    return run.cached(f"{stage}/prompts.jsonl", select)


def run_grpo(run: Run, stage: str, model_dir: Path, rows: list[dict], *, steps: int, callbacks=()) -> Path:
    """Single-turn GRPO from `model_dir` on the rows with reward signal; model to run/<stage>/model."""
    out = run.path(stage, "model")
    if out.is_dir():
        return out
    with main_process_first():
        kept = select_grpo_rows(run, model_dir, rows, stage)
    if len(kept) < 1:
        run.log(stage, 0, {"skipped": "no prompt with reward signal"})
        return model_dir
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    config, grpo = run.config, run.config["grpo"]
    model, tokenizer = load_for_training(model_dir, config)
    columns = ("optimal_actions", "optimal_actions_pddl", "expert_action", "expert_action_pddl")
    dataset = Dataset.from_dict({
        "prompt": [prompt_text(tokenizer, row["prompt"], row.get("messages")) for row in kept],
        **{column: [row[column] for row in kept] for column in columns},
    })
    longest_answer = max(len(tokenizer(row["completion"], add_special_tokens=False)["input_ids"]) for row in kept)
    functions, weights = reward_functions(grpo["reward"], grpo["format_weight"])
    args = GRPOConfig(
        output_dir=str(run.path(stage)), max_steps=steps, learning_rate=grpo["learning_rate"], lr_scheduler_type="constant",
        per_device_train_batch_size=grpo["num_generations"] * grpo["prompts_per_step"],
        num_generations=grpo["num_generations"], temperature=grpo["temperature"], top_p=1.0, top_k=0,
        beta=grpo["beta"], loss_type=grpo["loss_type"], reward_weights=weights,
        max_completion_length=longest_answer + 8, logging_steps=grpo["logging_steps"], save_steps=grpo["save_steps"],
        save_total_limit=2, seed=config["seed"], activation_checkpointing=False, report_to="none", ddp_find_unused_parameters=False,
        dataloader_num_workers=0, disable_tqdm=not run.progress, **precision_flags(config),
        **grpo_generation(config["runtime"]["vllm"])[0],
    )
    trainer = GRPOTrainer(model=model, reward_funcs=functions, args=args, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=[trainer_callback(run, stage), *callbacks])
    train_with_resume(run, stage, trainer)
    return finish_stage(run, stage, trainer.model, tokenizer)
