"""The models a run trains: device and precision, loading for training, saving with the prompt
style they learned, and the built-in model a run starts from."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from plannerl.agents.distributed import barrier, is_main_process
from plannerl.agents.model import build_default_model, load_model, save_model
from plannerl.errors import PlannerlError
from plannerl.train.config import prompt_style
from plannerl.train.run import Run


def training_device(config: dict) -> str:
    import torch

    wanted = config["runtime"]["device"]
    if wanted == "cuda" and not torch.cuda.is_available():
        raise PlannerlError("runtime.device = cuda, but no CUDA GPU is available")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def precision_flags(config: dict) -> dict:
    """bf16/fp16 flags for the trainers. "auto": on CPU, bf16 autocast only where the CPU has
    native bf16 (AVX512-BF16/AMX): on an AVX2-only CPU it measured 17x slower than fp32. On a
    GPU, bf16 for hub models but fp32 for the built-in one: it is tiny (nothing to gain), and in
    bf16 its GRPO sampling hit a CUDA device-side assert (non-finite probabilities) on an H100."""
    import torch

    wanted = config["runtime"]["precision"]
    device = training_device(config)
    if wanted == "auto":
        if device == "cuda" and config["model"] == "builtin":
            wanted = "fp32"
        elif device == "cuda":
            wanted = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            wanted = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    if wanted == "fp16" and device == "cpu":
        raise PlannerlError("runtime.precision = fp16 needs a GPU; use bf16 or fp32 on CPU")
    return {"bf16": wanted == "bf16", "fp16": wanted == "fp16", "use_cpu": device == "cpu"}


def load_for_training(model_dir: str | Path, config: dict):
    """Model and tokenizer to train; a LoRA adapter on top when lora.enabled."""
    dtype = "auto" if training_device(config) == "cuda" else None
    model, tokenizer = load_model(model_dir, trust_remote_code=config["trust_remote_code"], dtype=dtype)
    if training_device(config) == "cpu":
        model = model.float()  # weights stay fp32 on CPU; bf16 (where fast) is autocast, not storage
    if config["lora"]["enabled"]:
        from peft import LoraConfig, get_peft_model

        lora = config["lora"]
        model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    return model, tokenizer


def save_trained(model, tokenizer, out_dir: Path, style: str, history_len: int) -> Path:
    """Save a trained model with the prompt style and history length it was trained on in its
    config.json (`plannerl_prompt`, `plannerl_history_len`), so every later reader (evaluation,
    `plannerl play`) renders the prompts it learned from."""
    if hasattr(model, "merge_and_unload"):  # a LoRA model: fold the adapter into the weights
        model = model.merge_and_unload()
    model.config.plannerl_prompt = style
    model.config.plannerl_history_len = history_len
    return save_model(model, tokenizer, out_dir)


def finish_stage(run: Run, stage: str, model, tokenizer) -> Path:
    """Save the stage's model, then drop its trainer checkpoints (only an unfinished stage needs them)."""
    out = run.path(stage, "model")
    if is_main_process():  # one process writes; the others wait until the folder is whole
        out = save_trained(model, tokenizer, out, prompt_style(run.config), run.config["data"]["history_len"])
        for checkpoint in run.path(stage).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    barrier()
    return out


def base_model(run: Run, rows: list[dict]) -> Path:
    """The model training starts from: built here (tokenizer learned from the rows' own text)
    or the configured folder / cached hub model."""
    config = run.config
    if config["model"] != "builtin":
        return Path(config["model"])
    base = run.path("base")
    if not base.is_dir():
        sample = random.Random(config["seed"]).sample(rows, min(2000, len(rows)))
        texts = [row["prompt"] for row in sample] + [row["completion"] for row in rows]
        build_default_model(base, seed=config["seed"], texts=texts, size=config["builtin"]["size"],
                            vocab_size=config["builtin"]["vocab_size"], merges=config["builtin"]["merges"])
    return base
