"""Supervised fine-tuning: prompt -> expert answer (TRL SFTTrainer, loss on the answer only),
or the choice objective (the optimal answers against the other valid ones, scored exactly as
constrained decoding scores them)."""

from __future__ import annotations

import random
from pathlib import Path

from plannerl.agents.model import encode_prompt, prompt_text
from plannerl.agents.scoring import score_candidates
from plannerl.errors import PlannerlError
from plannerl.tasks.answers import answer_line
from plannerl.train.config import sft_objective
from plannerl.train.models import finish_stage, load_for_training, precision_flags
from plannerl.train.run import Run, train_with_resume, trainer_callback


def tokenize_rows(tokenizer, rows: list[dict], max_length: int = 0) -> dict:
    """input_ids = prompt tokens + completion tokens + EOS, with a mask over the completion.

    The prompt is tokenized alone, exactly as at generation time (`plannerl.agents.model.encode_prompt`),
    so training never sees a token merged across the prompt/answer boundary. Rows longer than
    `max_length` (when set) are refused, naming how many and the longest: never dropped silently.
    """
    input_ids, masks = [], []
    for row in rows:
        prompt_ids = encode_prompt(tokenizer, prompt_text(tokenizer, row["prompt"], row.get("messages")))
        answer_ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        input_ids.append(prompt_ids + answer_ids)
        masks.append([0] * len(prompt_ids) + [1] * len(answer_ids))
    lengths = [len(ids) for ids in input_ids]
    too_long = [n for n in lengths if max_length and n > max_length]
    if too_long:
        raise PlannerlError(f"{len(too_long)} of {len(rows)} rows are longer than sft.max_length = {max_length} tokens "
                            f"(longest {max(too_long)}); raise sft.max_length (0 fits every row)")
    return {"input_ids": input_ids, "completion_mask": masks, "longest": max(lengths, default=0)}


def run_sft(run: Run, stage: str, model_dir: Path, rows: list[dict], *, steps: int, learning_rate: float | None = None,
            callbacks=()) -> Path:
    """Supervised fine-tuning on prompt -> expert answer; the trained model goes to run/<stage>/model.
    `learning_rate` (None: sft.learning_rate) lets a recovery round fine-tune gently."""
    out = run.path(stage, "model")
    if out.is_dir():
        return out
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config, sft = run.config, run.config["sft"]
    model, tokenizer = load_for_training(model_dir, config)
    learning_rate = sft["learning_rate"] if learning_rate is None else learning_rate
    if sft_objective(config) == "choice":
        return run_choice(run, stage, model, tokenizer, rows, steps=steps, learning_rate=learning_rate, callbacks=callbacks)
    tokens = tokenize_rows(tokenizer, rows, sft["max_length"])
    dataset = Dataset.from_dict({"input_ids": tokens["input_ids"], "completion_mask": tokens["completion_mask"]})
    args = SFTConfig(
        output_dir=str(run.path(stage)), max_steps=steps, per_device_train_batch_size=sft["batch_size"],
        gradient_accumulation_steps=sft["grad_accum"], learning_rate=learning_rate, lr_scheduler_type="cosine",
        warmup_steps=sft["warmup_steps"], weight_decay=sft["weight_decay"], logging_steps=sft["logging_steps"],
        save_steps=sft["save_steps"], save_total_limit=2, seed=config["seed"], data_seed=config["seed"],
        completion_only_loss=True, max_length=None, activation_checkpointing=False, report_to="none", ddp_find_unused_parameters=False,
        train_sampling_strategy="group_by_length", dataloader_num_workers=0, disable_tqdm=not run.progress,
        **precision_flags(config),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[trainer_callback(run, stage), *callbacks])
    train_with_resume(run, stage, trainer)
    return finish_stage(run, stage, trainer.model, tokenizer)


def choice_rows(tokenizer, rows: list[dict], *, negatives: int, seed: int) -> dict:
    """Per row: the prompt's tokens, and candidate answers (every optimal action's, then up to
    `negatives` other valid actions' drawn with a seeded generator), each `Action: <sentence>`
    + EOS exactly as constrained decoding scores them; `optimal` marks the optimal ones and
    `expert` the canonical one."""
    rng = random.Random(seed)
    columns: dict[str, list] = {"prompt_ids": [], "candidates": [], "optimal": [], "expert": []}
    for row in rows:
        optimal = list(row["optimal_actions"])
        wrong = [a for a in row["valid_actions"] if a not in set(optimal)]
        answers = optimal + rng.sample(wrong, min(negatives, len(wrong)))
        columns["prompt_ids"].append(encode_prompt(tokenizer, prompt_text(tokenizer, row["prompt"], row.get("messages"))))
        columns["candidates"].append([tokenizer(answer_line(a), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                                      for a in answers])
        columns["optimal"].append([int(k < len(optimal)) for k in range(len(answers))])
        columns["expert"].append(optimal.index(row["expert_action"]))
    return columns


def choice_loss(model, batch: dict, pad: int):
    """Mean over rows of -log P(an optimal answer | the row's candidates) - log p(expert answer) / its length.

    Each candidate's score is its summed token log-likelihood after the prompt, the score
    constrained decoding ranks valid actions by; the first term is the softmax over a row's
    candidates, so the model is taught exactly the choice it will make (any optimal action is
    right, and it learns what the wrong ones look like). The second term is ordinary SFT on the
    expert answer, so free generation (GRPO's sampling) still writes answers. Scores come from
    `plannerl.agents.scoring.score_candidates`, the function constrained decoding ranks with."""
    import torch

    candidates = batch["candidates"]
    scores = score_candidates(model, batch["prompt_ids"], candidates, pad)
    device = scores.device
    losses, start = [], 0
    for options, optimal, expert in zip(candidates, batch["optimal"], batch["expert"]):
        row = scores[start:start + len(options)]
        right = torch.tensor(optimal, dtype=torch.bool, device=device)
        losses.append(torch.logsumexp(row, 0) - torch.logsumexp(row[right], 0) - row[expert] / len(options[expert]))
        start += len(options)
    return torch.stack(losses).mean()


def run_choice(run: Run, stage: str, model, tokenizer, rows: list[dict], *, steps: int, learning_rate: float,
               callbacks=()) -> Path:
    """SFT with the choice objective (`choice_loss`) through a transformers Trainer, so
    checkpoints, resume, Ctrl-C and metrics work as in the other stages."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    config, sft = run.config, run.config["sft"]
    dataset = Dataset.from_dict(choice_rows(tokenizer, rows, negatives=sft["negatives"], seed=config["seed"]))
    pad = tokenizer.pad_token_id

    class ChoiceTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return choice_loss(model, inputs, pad)

    args = TrainingArguments(
        output_dir=str(run.path(stage)), max_steps=steps, per_device_train_batch_size=sft["batch_size"],
        gradient_accumulation_steps=sft["grad_accum"], learning_rate=learning_rate, lr_scheduler_type="cosine",
        warmup_steps=sft["warmup_steps"], weight_decay=sft["weight_decay"], logging_steps=sft["logging_steps"],
        save_steps=sft["save_steps"], save_total_limit=2, seed=config["seed"], data_seed=config["seed"], report_to="none",
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not run.progress,
        ddp_find_unused_parameters=False, **precision_flags(config),
    )
    trainer = ChoiceTrainer(model=model, args=args, train_dataset=dataset, data_collator=_columns,
                            callbacks=[trainer_callback(run, stage), *callbacks])
    train_with_resume(run, stage, trainer)
    return finish_stage(run, stage, trainer.model, tokenizer)


def _columns(examples: list[dict]) -> dict:
    """A batch as lists per column (choice_loss pads it itself)."""
    return {key: [example[key] for example in examples] for key in examples[0]}
