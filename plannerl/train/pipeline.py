"""The training pipeline behind `plannerl train`: instances -> rows -> SFT -> GRPO -> recovery -> evaluation.

Read top to bottom:

1. configuration: defaults, TOML config files, checks (an unknown key is an error);
2. the run folder: refuses to mix runs, resolved config, metrics per step, curves, Ctrl-C;
3. data: expert rows from generated instances, and rows for the states a policy visits;
4. SFT (TRL SFTTrainer, loss on the completion only, no row dropped for length);
5. single-turn GRPO (TRL GRPOTrainer) on prompts filtered for reward signal;
6. recovery rounds (DAgger-style): roll the policy out, label what it saw, train again;
7. evaluation on held-out seeds, and `train()`, which runs it all and resumes after an interrupt.

Every stage writes its result into the run folder (a model folder is swapped in whole), and a
stage whose result is already there is skipped, so `--resume` redoes at most the interrupted
stage, from its last trainer checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
import signal
import time
import warnings
from pathlib import Path

from plannerl.agents.distributed import barrier, grpo_generation, init_process_group, is_main_process, main_process_first
from plannerl.atomic import write_bytes, write_json, write_jsonl
from plannerl.errors import PlannerlError

# ---------------------------------------------------------------------------------------------
# 1. Configuration

DEFAULTS: dict = {
    "task": "burger",                 # the training task (a generator recipe name)
    "model": "builtin",               # "builtin" (built here), a local HF folder, or a cached hub name
    "seed": 0,
    "trust_remote_code": False,
    "runtime": {
        "threads": 1,                 # torch CPU threads; 1 is deliberate (see plannerl.agents.model.configure_torch_cpu)
        "precision": "auto",          # auto | bf16 | fp16 | fp32 (auto: bf16 where the device runs it fast)
        "device": "auto",             # auto | cpu | cuda
        "vllm": "auto",               # GRPO generation: auto (vLLM if installed and on a GPU) | off | colocate | server
    },
    "data": {
        "train_seeds": "1000:1499",   # instance seeds for training rows; must not meet the evaluation seeds
        "off_expert": 1,              # per expert state, this many states one random non-optimal action away
        "hold_probability": 0.6,      # training instances only: chance the robot starts holding an item (Robotouille: 0.25)
        "history_len": 1,
        "prompt": "auto",             # auto | full | compact (auto: compact for the built-in model, full for hub models)
    },
    "builtin": {"size": "tiny", "vocab_size": 2048},
    "lora": {"enabled": False, "r": 16, "alpha": 32, "dropout": 0.05},
    "sft": {
        "steps": 600,
        "batch_size": 32,
        "grad_accum": 1,
        "learning_rate": 1e-3,        # from scratch; TRL's 2e-5 default is for fine-tuning pretrained models
        "warmup_steps": 20,
        "weight_decay": 0.0,
        "max_length": 0,              # 0: fit the longest row; otherwise rows longer than this are refused
        "objective": "answer",        # answer: likelihood of the expert answer (TRL SFT) | choice: optimal vs other valid answers
        "negatives": 12,              # choice: wrong valid answers per row it is compared against
        "save_steps": 100,
        "logging_steps": 10,
    },
    "grpo": {
        "steps": 10,
        "reward": "optimal",          # optimal (any optimal action) | expert (the paper's)
        "format_weight": 0.0,
        "num_generations": 8,
        "prompts_per_step": 4,
        "temperature": 1.0,
        "beta": 0.0,
        "loss_type": "dapo",
        "learning_rate": 2e-5,
        "filter_pool": 512,           # rows scored for reward signal before GRPO
        "min_signal": 0.2,            # keep prompts whose group would be mixed with at least this probability
        "save_steps": 20,
        "logging_steps": 1,
    },
    "recovery": {
        "rounds": 1,
        "seeds": "3000:3019",         # instances the policy is rolled out on
        "sft_steps": 100,
        "learning_rate": 1e-4,        # of the round's SFT: the model is trained already, so a fine-tuning rate, not sft's
        "grpo_steps": 0,
        "constrained": True,          # roll out with decoding constrained to valid actions
        "validation_seeds": "4000:4019",  # a round's model is kept only if it solves at least as many of these ("": keep always)
    },
    "eval": {
        "tasks": [],                  # tasks to evaluate on; [] = the training task
        "seeds": "42:420:42",
        "heldout_seeds": "5000:5019",
        "constrained": True,
        "invalid": "retry",
        "batch_size": 8,
        "stages": ["sft", "grpo", "recovery"],   # evaluate the model after each of these stages that ran
    },
}

STAGE_NAMES = ("sft", "grpo", "recovery")
_CHOICES = {
    "runtime.precision": ("auto", "bf16", "fp16", "fp32"),
    "runtime.device": ("auto", "cpu", "cuda"),
    "runtime.vllm": ("auto", "off", "colocate", "server"),
    "grpo.reward": ("optimal", "expert"),
    "data.prompt": ("auto", "full", "compact", "todo"),
    "sft.objective": ("answer", "choice"),
    "grpo.loss_type": ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"),
    "eval.invalid": ("retry", "step", "stop"),
}


def load_config_file(path: str | Path) -> dict:
    """A TOML config file, checked against the known keys (values overlay the defaults)."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlannerlError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlannerlError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlannerlError(f"{path}: not valid TOML: {exc}") from None
    check_config(data, source=str(path), text=text)
    return data


def check_config(data: dict, *, source: str = "config", text: str | None = None, prefix: str = "") -> None:
    """Every key known, every value of the default's type and within its range or choices."""
    defaults = _lookup(DEFAULTS, prefix) if prefix else DEFAULTS
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        where = f"{source}:{_line_of(text, key)}" if text and _line_of(text, key) else source
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise PlannerlError(f"{where}: unknown config key {dotted!r} (known here: {known})")
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise PlannerlError(f"{where}: {dotted} must be a [{dotted}] table")
            check_config(value, source=source, text=text, prefix=dotted + ".")
            continue
        _check_value(dotted, value, default, where)


def _check_value(dotted: str, value, default, where: str) -> None:
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise PlannerlError(f"{where}: {dotted} must be a {kind.__name__}, got {value!r}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise PlannerlError(f"{where}: {dotted} must be a list of strings, got {value!r}")
    if dotted in _CHOICES and value not in _CHOICES[dotted]:
        raise PlannerlError(f"{where}: {dotted} must be one of {', '.join(_CHOICES[dotted])}, got {value!r}")
    if kind in (int, float) and value < 0:
        raise PlannerlError(f"{where}: {dotted} must not be negative, got {value!r}")
    if dotted == "data.hold_probability" and value > 1:
        raise PlannerlError(f"{where}: data.hold_probability must be from 0 to 1, got {value!r}")
    if dotted == "grpo.num_generations" and value < 2:
        raise PlannerlError(f"{where}: grpo.num_generations must be at least 2 (GRPO compares completions within a group)")
    if dotted in ("sft.batch_size", "sft.grad_accum", "grpo.prompts_per_step", "runtime.threads", "eval.batch_size") and value < 1:
        raise PlannerlError(f"{where}: {dotted} must be at least 1, got {value!r}")
    if dotted == "eval.stages" and any(stage not in STAGE_NAMES for stage in value):
        raise PlannerlError(f"{where}: eval.stages entries must be among {', '.join(STAGE_NAMES)}, got {value!r}")


def _line_of(text: str | None, key: str) -> int | None:
    if not text:
        return None
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=|^\s*\[{re.escape(key)}\]", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.strip(".").split("."):
        node = node[part]
    return node


def merge_config(base: dict, overlay: dict) -> dict:
    """`overlay`'s values replace `base`'s, table by table; neither input is changed."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_assignment(text: str) -> dict:
    """`--set grpo.temperature=1.2` -> {"grpo": {"temperature": 1.2}} (value read as TOML)."""
    import tomllib

    if "=" not in text:
        raise PlannerlError(f"--set {text!r}: expected KEY=VALUE, e.g. grpo.temperature=1.2")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set task=burger
    overlay: dict = value
    for part in reversed(key.split(".")):
        overlay = {part: overlay}
    check_config(overlay, source="--set")
    return overlay


def resolve_config(config_file: str | Path | None = None, overrides: dict | None = None, *, base: dict | None = None) -> dict:
    """Defaults (or `base`, a resumed run's saved config), then the config file, then
    command-line overrides, checked."""
    config = copy.deepcopy(base if base is not None else DEFAULTS)
    if config_file is not None:
        config = merge_config(config, load_config_file(config_file))
    if overrides:
        check_config(overrides, source="command line")
        config = merge_config(config, overrides)
    _check_seed_sets(config)
    return config


def _check_seed_sets(config: dict) -> None:
    from plannerl.seeds import parse_seeds

    train = set(parse_seeds(config["data"]["train_seeds"]))
    evaluation = {f"eval.{key}": set(parse_seeds(config["eval"][key])) for key in ("seeds", "heldout_seeds")}
    for name, seeds in evaluation.items():
        if train & seeds:
            raise PlannerlError(f"data.train_seeds and {name} share seed {min(train & seeds)}: "
                                f"evaluation instances must not be trained on")
    if not config["recovery"]["rounds"]:
        return
    rollout = set(parse_seeds(config["recovery"]["seeds"]))
    for name, seeds in evaluation.items():
        if rollout & seeds:
            raise PlannerlError(f"recovery.seeds and {name} share seed {min(rollout & seeds)}")
    if config["recovery"]["validation_seeds"]:
        validation = set(parse_seeds(config["recovery"]["validation_seeds"]))
        for name, seeds in {"data.train_seeds": train, "recovery.seeds": rollout, **evaluation}.items():
            if validation & seeds:
                raise PlannerlError(f"recovery.validation_seeds and {name} share seed {min(validation & seeds)}: "
                                    "validation instances must be seen by neither training nor evaluation")


def saved_config(run_dir: str | Path) -> dict:
    """The resolved config a run folder was started with."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise PlannerlError(f"{run_dir}: nothing to resume (no {CONFIG_NAME}); run without --resume to start")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlannerlError(f"{path}: unreadable run config: {exc}") from None
    check_config(config, source=str(path))
    return merge_config(DEFAULTS, config)


def config_difference(saved: dict, requested: dict, prefix: str = "") -> str | None:
    """The first key whose value differs, as `key: saved -> requested`, or None."""
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} -> {b!r}"
    return None


# ---------------------------------------------------------------------------------------------
# 2. The run folder

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "learning_curves.png"


class TrainingInterrupted(PlannerlError):
    """Ctrl-C during training: a checkpoint was saved; `--resume` continues from it."""

    exit_code = 130


class Run:
    """The run folder: resolved config, metrics per step, learning curves, stage outputs."""

    def __init__(self, root: str | Path, config: dict, *, resume: bool = False, force: bool = False) -> None:
        self.root = Path(root)
        self.config = config
        if is_main_process():  # under torchrun / accelerate the other processes use the folder the main one claimed
            self._claim(resume, force)
        self.metrics: list[dict] = self._read_metrics()
        self.interrupt_requested = False
        self.progress = True  # trainers' own progress bars

    def _claim(self, resume: bool, force: bool) -> None:
        config_path = self.root / CONFIG_NAME
        if self.root.exists() and not self.root.is_dir():
            raise PlannerlError(f"{self.root}: is a file, not a run folder")
        holds_run = config_path.is_file()
        if self.root.exists() and any(self.root.iterdir()) and not holds_run:
            raise PlannerlError(f"{self.root}: folder is not empty and holds no plannerl run; choose another --out")
        if holds_run and force:
            shutil.rmtree(self.root)
        elif holds_run and resume:
            saved = json.loads(config_path.read_text())
            difference = config_difference(saved, self.config)
            if difference:
                raise PlannerlError(f"{self.root}: --resume with a different config ({difference}); "
                                    f"use the same settings, or --force to start over")
        elif holds_run:
            raise PlannerlError(f"{self.root}: already holds a training run; pass --resume to continue it "
                                f"or --force to replace it")
        elif resume:
            raise PlannerlError(f"{self.root}: nothing to resume (no {CONFIG_NAME}); run without --resume to start")
        write_json(config_path, self.config)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # metrics -----------------------------------------------------------------------------
    def _read_metrics(self) -> list[dict]:
        path = self.path(METRICS_NAME)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def forget_metrics_after(self, stage: str, step: int) -> None:
        """Drop a stage's records past `step` (they are logged again when training resumes there)."""
        self.metrics = [m for m in self.metrics if not (m["stage"] == stage and m["step"] > step)]
        if is_main_process():
            write_jsonl(self.path(METRICS_NAME), self.metrics)

    def log(self, stage: str, step: int, values: dict) -> None:
        record = {"stage": stage, "step": step}
        record.update({k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()
                       if isinstance(v, int | float | str)})
        self.metrics.append(record)
        if is_main_process():
            write_jsonl(self.path(METRICS_NAME), self.metrics)

    def plot_curves(self) -> Path | None:
        """learning_curves.png: SFT loss and GRPO reward per step for every stage that logged."""
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series: dict[str, tuple[list[int], list[float]]] = {}
        for record in self.metrics:
            for key in ("loss", "reward"):
                if key in record and not (key == "loss" and record["stage"].startswith("grpo")):
                    xs, ys = series.setdefault(f"{record['stage']} {key}", ([], []))
                    xs.append(record["step"])
                    ys.append(record[key])
        if not series:
            return None
        figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.2), squeeze=False)
        for axis, (name, (xs, ys)) in zip(axes[0], series.items()):
            axis.plot(xs, ys, marker="." if len(xs) < 50 else None)
            axis.set_title(name)
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        plt.close(figure)
        return write_bytes(self.path(CURVES_NAME), buffer.getvalue())

    # Ctrl-C --------------------------------------------------------------------------------
    def catch_interrupts(self):
        """Inside the block, the first Ctrl-C only asks training to save and stop at the next
        step; a second one stops at once."""
        run = self

        class _Catch:
            def __enter__(self):
                self.previous = None
                try:
                    self.previous = signal.signal(signal.SIGINT, self._handle)
                except ValueError:  # not the main thread: leave signals alone
                    pass
                return self

            def _handle(self, signum, frame):
                if run.interrupt_requested:
                    raise KeyboardInterrupt
                run.interrupt_requested = True

            def __exit__(self, *exc):
                if self.previous is not None:
                    signal.signal(signal.SIGINT, self.previous)
                return False

        return _Catch()

    def check_interrupt(self, where: str) -> None:
        if self.interrupt_requested:
            raise TrainingInterrupted(f"interrupted during {where}; progress is saved in {self.root}: "
                                      f"continue with plannerl train --out {self.root} --resume")


def _trainer_callback(run: Run, stage: str):
    """Records the trainer's logs in the run's metrics and turns Ctrl-C into save-and-stop."""
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            values = {k: v for k, v in (logs or {}).items() if not k.startswith("train_") and k != "total_flos"}
            if values and state.global_step:
                run.log(stage, state.global_step, values)

        def on_step_end(self, args, state, control, **kwargs):
            if run.interrupt_requested:
                control.should_save = True
                control.should_training_stop = True
            return control

    return RunCallback()


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest trainer checkpoint that was written completely (its trainer state is saved last)."""
    found = []
    for path in folder.glob("checkpoint-*"):
        if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(path.name.split("-")[-1]), path))
    return max(found)[1] if found else None


# ---------------------------------------------------------------------------------------------
# Devices and precision


def _device(config: dict) -> str:
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
    device = _device(config)
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


# ---------------------------------------------------------------------------------------------
# 3. Data


def prompt_style(config: dict) -> str:
    """The prompt style rows are rendered in: todo for the built-in model (it learns the format
    from the rows, tokens are its cost, and the goal facts left name the next item: measured on
    double_cheese_burger, SFT SR 0.80 / 0.60 with compact, 1.00 / 0.85 with todo), full for hub
    models (they read the words)."""
    style = config["data"]["prompt"]
    if style == "auto":
        return "todo" if config["model"] == "builtin" else "full"
    return style


def expert_rows_for(task_name: str, seeds: list[int], *, history_len: int, off_expert: int, seed: int,
                    style: str = "full", hold_probability: float | None = None, progress=None) -> list[dict]:
    """Rows for every expert state of each instance, plus `off_expert` states per expert state
    one random suboptimal action away (labelled by the oracle), so SFT sees slightly wrong states.

    `hold_probability` (None: the generator's 0.25) is the chance that an instance starts with
    the robot holding an item. Those starts are where a model trained on Robotouille's rate
    failed most (it walked off with the item instead of putting it down), so training
    instances may oversample them; evaluation instances always use the generator's rate."""
    from plannerl.tasks.datasets import expert_rows
    from plannerl.tasks.generate import generate_instance, solve_instance

    rows: list[dict] = []
    for seed_value in seeds:
        ranges = {} if hold_probability is None else {"hold_probability": hold_probability}
        instance = generate_instance(task_name, seed_value, **ranges)
        task, oracle, _ = solve_instance(instance)
        expert = expert_rows(task, task_name=task_name, instance=instance.name, oracle=oracle, history_len=history_len)
        rng = random.Random(f"{seed}:{task_name}:{seed_value}")
        for row in expert:
            state, history = _replay(task, row["history_pddl"])
            rows.append(_styled(row, task, state, history, style, history_len))
            wrong = [a for a in task.applicable(state) if a not in oracle.optimal_actions(state)]
            for action in rng.sample(wrong, min(off_expert, len(wrong))):
                row = _label_or_none(task, task.apply(state, action), oracle, history + [action], task_name, instance.name,
                                     history_len, "off_expert", style)
                if row is not None:
                    rows.append(row)
        if progress:
            progress()
    return rows


def _label_or_none(task, state: int, oracle, history: list[int], task_name: str, instance: str, history_len: int,
                   source: str, style: str) -> dict | None:
    """The oracle's row for a state, or None for a goal state or a dead end (nothing to learn)."""
    from plannerl.errors import NoPlanError
    from plannerl.tasks.datasets import label_state

    if task.is_goal(state):
        return None
    try:
        row = label_state(task, state, oracle, history=history, task_name=task_name, instance=instance,
                          source=source, history_len=history_len)
    except NoPlanError:
        return None
    return _styled(row, task, state, history, style, history_len)


def _styled(row: dict, task, state: int, history: list[int], style: str, history_len: int) -> dict:
    """The row with its prompt and answers in `style`; a compact row has no chat messages (it
    is plain text) and its answers are the state's compact sentences (the PDDL forms stay)."""
    if style == "full":
        return row
    from plannerl.tasks.answers import answer_line
    from plannerl.tasks.styles import get_style

    prompt_style = get_style(style)
    row = {key: value for key, value in row.items() if key != "messages"}
    row["prompt"] = prompt_style.prompt(task, state, history=history, history_len=history_len)
    for column in ("optimal_actions", "valid_actions"):
        actions = [task.find_action(pddl) for pddl in row[column + "_pddl"]]
        row[column] = prompt_style.action_sentences(task, state, actions)
    row["expert_action"] = prompt_style.action_sentences(task, state, [task.find_action(row["expert_action_pddl"])])[0]
    row["completion"] = answer_line(row["expert_action"])
    return row


def _replay(task, actions_pddl: list[str]) -> tuple[int, list[int]]:
    state, history = task.init, []
    for text in actions_pddl:
        action = task.find_action(text)
        state = task.apply(state, action)
        history.append(action)
    return state, history


# ---------------------------------------------------------------------------------------------
# 4. SFT


def tokenize_rows(tokenizer, rows: list[dict], max_length: int = 0) -> dict:
    """input_ids = prompt tokens + completion tokens + EOS, with a mask over the completion.

    The prompt is tokenized alone, exactly as at generation time (`plannerl.agents.model.encode_prompt`),
    so training never sees a token merged across the prompt/answer boundary. Rows longer than
    `max_length` (when set) are refused, naming how many and the longest: never dropped silently.
    """
    from plannerl.agents.model import encode_prompt, prompt_text

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


def _load_for_training(model_dir: str | Path, config: dict):
    """Model and tokenizer to train; a LoRA adapter on top when lora.enabled."""
    from plannerl.agents.model import load_model

    dtype = "auto" if _device(config) == "cuda" else None
    model, tokenizer = load_model(model_dir, trust_remote_code=config["trust_remote_code"], dtype=dtype)
    if _device(config) == "cpu":
        model = model.float()  # weights stay fp32 on CPU; bf16 (where fast) is autocast, not storage
    if config["lora"]["enabled"]:
        from peft import LoraConfig, get_peft_model

        lora = config["lora"]
        model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    return model, tokenizer


def _save_trained(model, tokenizer, out_dir: Path, style: str, history_len: int) -> Path:
    """Save a trained model with the prompt style and history length it was trained on in its
    config.json (`plannerl_prompt`, `plannerl_history_len`), so every later reader (evaluation,
    `plannerl play`) renders the prompts it learned from."""
    from plannerl.agents.model import save_model

    if hasattr(model, "merge_and_unload"):  # a LoRA model: fold the adapter into the weights
        model = model.merge_and_unload()
    model.config.plannerl_prompt = style
    model.config.plannerl_history_len = history_len
    return save_model(model, tokenizer, out_dir)


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
    model, tokenizer = _load_for_training(model_dir, config)
    learning_rate = sft["learning_rate"] if learning_rate is None else learning_rate
    if sft["objective"] == "choice":
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
                         callbacks=[_trainer_callback(run, stage), *callbacks])
    _train_with_resume(run, stage, trainer)
    return _finish_stage(run, stage, trainer.model, tokenizer)


def choice_rows(tokenizer, rows: list[dict], *, negatives: int, seed: int) -> dict:
    """Per row: the prompt's tokens, and candidate answers (every optimal action's, then up to
    `negatives` other valid actions' drawn with a seeded generator), each `Action: <sentence>`
    + EOS exactly as constrained decoding scores them; `optimal` marks the optimal ones and
    `expert` the canonical one."""
    from plannerl.agents.model import encode_prompt, prompt_text

    rng = random.Random(seed)
    columns: dict[str, list] = {"prompt_ids": [], "candidates": [], "optimal": [], "expert": []}
    for row in rows:
        optimal = list(row["optimal_actions"])
        wrong = [a for a in row["valid_actions"] if a not in set(optimal)]
        answers = optimal + rng.sample(wrong, min(negatives, len(wrong)))
        columns["prompt_ids"].append(encode_prompt(tokenizer, prompt_text(tokenizer, row["prompt"], row.get("messages"))))
        columns["candidates"].append([tokenizer(f"Action: {a}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
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
    `plannerl.agents.policies.score_candidates`, the function constrained decoding ranks with."""
    import torch

    from plannerl.agents.policies import score_candidates

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
                            callbacks=[_trainer_callback(run, stage), *callbacks])
    _train_with_resume(run, stage, trainer)
    return _finish_stage(run, stage, trainer.model, tokenizer)


def _columns(examples: list[dict]) -> dict:
    """A batch as lists per column (choice_loss pads it itself)."""
    return {key: [example[key] for example in examples] for key in examples[0]}


def _finish_stage(run: Run, stage: str, model, tokenizer) -> Path:
    """Save the stage's model, then drop its trainer checkpoints (only an unfinished stage needs them)."""
    out = run.path(stage, "model")
    if is_main_process():  # one process writes; the others wait until the folder is whole
        out = _save_trained(model, tokenizer, out, prompt_style(run.config), run.config["data"]["history_len"])
        for checkpoint in run.path(stage).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    barrier()
    return out


def _train_with_resume(run: Run, stage: str, trainer) -> None:
    if not run.progress:  # without tqdm a Trainer prints every log dict instead; metrics.jsonl has them
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    checkpoint = _last_checkpoint(run.path(stage))
    if checkpoint is not None:
        step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
        run.forget_metrics_after(stage, step)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    run.check_interrupt(f"{stage} (step {trainer.state.global_step})")


# ---------------------------------------------------------------------------------------------
# 5. Single-turn GRPO


def answer_probabilities(model, tokenizer, rows: list[dict], *, temperature: float, reward: str,
                         batch_size: int = 8) -> list[float]:
    """For each row, the probability that one sampled answer earns the reward: the summed
    probability (at the sampling temperature) of the rewarded answers, each scored with one
    teacher-forced pass instead of sampling."""
    import torch

    from plannerl.agents.model import encode_prompt, prompt_text

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
    saved = run.path(stage, "prompts.jsonl")
    if saved.is_file():
        return [json.loads(line) for line in saved.read_text().splitlines()]
    from plannerl.agents.model import load_model

    grpo = run.config["grpo"]
    pool = random.Random(run.config["seed"]).sample(rows, min(grpo["filter_pool"], len(rows)))
    model, tokenizer = load_model(model_dir, trust_remote_code=run.config["trust_remote_code"])
    if _device(run.config) == "cuda":
        model = model.cuda()
    probs = answer_probabilities(model, tokenizer, pool, temperature=grpo["temperature"], reward=grpo["reward"])
    kept = []
    for row, p in zip(pool, probs):
        chance = signal_probability(p, grpo["num_generations"])
        if chance >= grpo["min_signal"]:
            kept.append(dict(row, p_rewarded=round(p, 6)))
    run.log(stage + "-filter", 0, {"pool": len(pool), "kept": len(kept),
                                   "mean_p_rewarded": round(sum(probs) / max(1, len(probs)), 6),
                                   "always_right": sum(p > 0.999 for p in probs)})
    write_jsonl(saved, kept)
    return kept


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

    from plannerl.agents.model import prompt_text
    from plannerl.tasks.rewards import reward_functions

    config, grpo = run.config, run.config["grpo"]
    model, tokenizer = _load_for_training(model_dir, config)
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
                          callbacks=[_trainer_callback(run, stage), *callbacks])
    _train_with_resume(run, stage, trainer)
    return _finish_stage(run, stage, trainer.model, tokenizer)


# ---------------------------------------------------------------------------------------------
# 6. Recovery: train on the states the policy itself visits


def _rollouts(run: Run, seeds: str, model_dir: Path, label: str, progress=None) -> list:
    """The model playing the training task's instances `seeds` the way recovery rolls out:
    greedy, `recovery.constrained`, the retry rule and the paper's step limits."""
    from plannerl.agents.evaluate import play, problems_from_tasks
    from plannerl.agents.policies import ModelPolicy
    from plannerl.seeds import parse_seeds

    config = run.config
    problems = problems_from_tasks([config["task"]], parse_seeds(seeds))
    policy = ModelPolicy(str(model_dir), label=label, constrained=config["recovery"]["constrained"],
                         batch_size=config["eval"]["batch_size"])
    return play(problems, policy, invalid="retry", history_len=config["data"]["history_len"],
                on_result=(lambda _: progress()) if progress else None)


def visited_rows(run: Run, stage: str, model_dir: Path, progress=None) -> list[dict]:
    """Roll the model out on `recovery.seeds` (greedy, retry rule) and label every state it
    visited with the oracle: the states that follow its own mistakes get their optimal
    actions too. A row whose state the model left by a non-optimal action has `mistake` true
    (see `recovery_rows`). Saved in run/<stage>/rows.jsonl."""
    saved = run.path(stage, "rows.jsonl")
    if saved.is_file():
        return [json.loads(line) for line in saved.read_text().splitlines()]
    config = run.config
    results = _rollouts(run, config["recovery"]["seeds"], model_dir, stage, progress)
    rows, seen = [], set()
    for result in results:
        problem, task = result.problem, result.problem.task
        state, history = task.init, []
        for action_text in [turn.action for turn in result.turns if turn.valid] + [None]:
            key = (problem.name, state, tuple(history[-config["data"]["history_len"]:]))
            if key not in seen:
                seen.add(key)
                row = _label_or_none(task, state, problem.oracle, list(history), config["task"], problem.name,
                                     config["data"]["history_len"], "visited", prompt_style(config))
                if row is not None:
                    row["mistake"] = action_text is not None and action_text not in row["optimal_actions_pddl"]
                    rows.append(row)
            if action_text is not None:
                history.append(task.find_action(action_text))
                state = task.apply(state, history[-1])
    successes = sum(result.success for result in results)
    run.log(stage + "-rollout", 0, {"episodes": len(results), "successes": successes, "rows": len(rows),
                                    "mistakes": sum(row["mistake"] for row in rows)})
    write_jsonl(saved, rows)
    return rows


def validation_successes(run: Run, model_dir: Path, progress=None) -> int:
    """How many `recovery.validation_seeds` instances the model solves (greedy, retry rule,
    the paper's step limits); saved in run/validation/<stage>.json, named by the stage that made
    the model, so no model is played twice (the next round starts from the one this round kept)
    and a resumed run does not play them again."""
    name = _stage_of(run, model_dir)
    saved = run.path("validation", f"{name}.json")
    if saved.is_file():
        return json.loads(saved.read_text())["successes"]
    results = _rollouts(run, run.config["recovery"]["validation_seeds"], model_dir, name, progress)
    successes = sum(result.success for result in results)
    write_json(saved, {"model": str(model_dir), "episodes": len(results), "successes": successes,
                       "failed_seeds": [result.problem.seed for result in results if not result.success]})
    run.check_interrupt(f"validation of {name}")
    return successes


def _stage_of(run: Run, model_dir: Path) -> str:
    """The stage whose model `model_dir` is ("sft", "recovery-1", ...); "base" for the model
    training started from."""
    try:
        return Path(model_dir).relative_to(run.root).parts[0]
    except ValueError:  # a hub or local model outside the run folder
        return "base"


def recovery_rows(rows: list[dict], visited: list[dict]) -> list[dict]:
    """A recovery round's SFT data: the expert rows, every visited row, and the mistake rows
    repeated until they are about a quarter of the whole.

    Why: a round's rollouts make tens of mistakes against thousands of expert rows, and the
    mistakes sit exactly where the model is wrong (measured: a held item at the start, which
    the model carried away instead of putting down). Unweighted, a 100-step round would see
    each of them about once, and a round barely moved the model."""
    mistakes = [row for row in visited if row.get("mistake")]
    repeat = max(1, round((len(rows) + len(visited)) / (3 * len(mistakes)))) if mistakes else 0
    return rows + visited + mistakes * repeat


# ---------------------------------------------------------------------------------------------
# 7. Evaluation and the whole pipeline


def evaluate_model(run: Run, stage: str, model_dir: Path, progress=None) -> dict:
    """SR/ASAT/ASST of the model on the evaluation seeds and the held-out seeds, per task;
    each split's full report (every episode) is written to run/eval/<stage>-<split>.json."""
    from plannerl.agents.evaluate import group_results, metrics, play, problems_from_tasks, write_report
    from plannerl.agents.policies import ModelPolicy
    from plannerl.seeds import parse_seeds

    config, evaluation = run.config, run.config["eval"]
    tasks = evaluation["tasks"] or [config["task"]]
    summary = {}
    for split, key in (("seeds", "seeds"), ("heldout", "heldout_seeds")):
        path = run.path("eval", f"{stage}-{split}.json")
        if path.is_file():
            report = json.loads(path.read_text())
            summary[split] = {entry["group"]: entry["metrics"] for entry in report["groups"]}
            continue
        problems = problems_from_tasks(tasks, parse_seeds(evaluation[key]))
        policy = ModelPolicy(str(model_dir), label=stage, constrained=evaluation["constrained"],
                             batch_size=evaluation["batch_size"])
        results = play(problems, policy, invalid=evaluation["invalid"], history_len=config["data"]["history_len"],
                       on_result=(lambda _: progress()) if progress else None)
        write_report(path, results, {"stage": stage, "split": split, "model": str(model_dir), "train_config": config})
        summary[split] = {group: metrics(episodes) for (_, group), episodes in group_results(results).items()}
        run.check_interrupt(f"evaluation of {stage}")
    return summary


def _publish(run: Run, model_dir: Path) -> Path:
    """Copy the final model into run/model (swapped in whole)."""
    from plannerl.agents.model import replace_folder

    final = run.path("model")
    staging = run.path(".model.saving")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    replace_folder(staging, final)
    return final


def _base_model(run: Run, rows: list[dict]) -> Path:
    """The model training starts from: built here (tokenizer learned from the rows' own text)
    or the configured folder / cached hub model."""
    from plannerl.agents.model import build_default_model

    config = run.config
    if config["model"] != "builtin":
        return Path(config["model"])
    base = run.path("base")
    if not base.is_dir():
        sample = random.Random(config["seed"]).sample(rows, min(2000, len(rows)))
        texts = [row["prompt"] for row in sample] + [row["completion"] for row in rows]
        build_default_model(base, seed=config["seed"], texts=texts, size=config["builtin"]["size"],
                            vocab_size=config["builtin"]["vocab_size"])
    return base


def _training_rows(run: Run, progress_factory) -> list[dict]:
    path = run.path("data", "train.jsonl")
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines()]
    from plannerl.seeds import parse_seeds

    config = run.config
    seeds = parse_seeds(config["data"]["train_seeds"])
    with progress_factory("instances -> rows", len(seeds)) as advance:
        rows = expert_rows_for(config["task"], seeds, history_len=config["data"]["history_len"],
                               off_expert=config["data"]["off_expert"], seed=config["seed"], style=prompt_style(config),
                               hold_probability=config["data"]["hold_probability"], progress=advance)
    run.check_interrupt("data generation")
    write_jsonl(path, rows)
    return rows


class _Quiet:
    """A progress bar that shows nothing (tests, --quiet)."""

    def __init__(self, *args) -> None:
        pass

    def __enter__(self):
        return lambda: None

    def __exit__(self, *exc):
        return False


def rich_progress(description: str, total: int):
    """A rich progress bar as a context manager yielding `advance()`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class _Bar:
        def __enter__(self):
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.progress.start()
            task = self.progress.add_task(description, total=total)
            return lambda: self.progress.advance(task)

        def __exit__(self, *exc):
            self.progress.stop()
            return False

    return _Bar()


def train(config: dict, out_dir: str | Path, *, resume: bool = False, force: bool = False, callbacks=(),
          say=print, progress: bool = True) -> dict:
    """Run the whole pipeline into `out_dir` and return its summary (also run/summary.json).

    Wall-clock times go to run/timings.json (per stage, summed over the sessions of a resumed
    run), not into the summary or the metrics, so the same config and seed write the same
    summary and metrics."""
    from plannerl.agents.model import configure_torch_cpu, resolve_model_source

    if config["model"] != "builtin":
        resolve_model_source(config["model"])  # a bad --model fails now, not after the data is built
    configure_torch_cpu(config["runtime"]["threads"])
    if init_process_group() and not is_main_process():  # torchrun / accelerate launch: the main process reports
        say, progress = (lambda *args, **kwargs: None), False
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")  # TRL's own deprecated-name uses
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    bars = rich_progress if progress else _Quiet
    with main_process_first():
        run = Run(out_dir, config, resume=resume, force=force)
    run.progress = progress
    timings, sessions = _earlier_timings(run) if resume else ({}, 0)
    sessions += 1
    clock = time.monotonic()

    def save_timings() -> None:
        if is_main_process():
            write_json(run.path("timings.json"), {"seconds": timings, "sessions": sessions})

    def lap(name: str) -> None:
        """Add the time since the last lap to stage `name` and save the timings at once, so an
        interrupted session keeps the stages it finished (one cut midway counts from its resume)."""
        nonlocal clock
        timings[name] = round(timings.get(name, 0.0) + time.monotonic() - clock, 1)
        clock = time.monotonic()
        save_timings()

    stage_models: dict[str, Path] = {}
    with run.catch_interrupts():
        with main_process_first():  # the main process builds and writes them, the others read them
            rows = _training_rows(run, bars)
            model_dir = _base_model(run, rows)
        say(f"data: {len(rows)} training rows from {config['task']} seeds {config['data']['train_seeds']}")
        lap("data_and_base_model")
        if config["sft"]["steps"]:
            say(f"sft: {config['sft']['steps']} steps")
            model_dir = stage_models["sft"] = run_sft(run, "sft", model_dir, rows, steps=config["sft"]["steps"],
                                                      callbacks=callbacks)
            lap("sft")
        if config["grpo"]["steps"]:
            say(f"grpo: {config['grpo']['steps']} steps, reward {config['grpo']['reward']}")
            say(grpo_generation(config["runtime"]["vllm"])[1])
            model_dir = stage_models["grpo"] = run_grpo(run, "grpo", model_dir, rows, steps=config["grpo"]["steps"],
                                                        callbacks=callbacks)
            lap("grpo")
        visited: list[dict] = []
        recovery = config["recovery"]
        for k in range(1, recovery["rounds"] + 1):
            stage = f"recovery-{k}"
            say(f"{stage}: rolling out on seeds {recovery['seeds']}, then sft {recovery['sft_steps']} steps")
            with bars(f"{stage} rollouts", len(_seeds(recovery["seeds"]))) as advance, main_process_first():
                visited += visited_rows(run, stage, model_dir, advance)
            candidate = model_dir
            if recovery["sft_steps"]:
                candidate = run_sft(run, stage, candidate, recovery_rows(rows, visited), steps=recovery["sft_steps"],
                                    learning_rate=recovery["learning_rate"], callbacks=callbacks)
            if recovery["grpo_steps"]:
                candidate = run_grpo(run, stage + "-grpo", candidate, visited, steps=recovery["grpo_steps"],
                                     callbacks=callbacks)
            if recovery["validation_seeds"]:
                model_dir = _validated(run, stage, model_dir, candidate, bars, say)
            else:
                model_dir = candidate
            stage_models["recovery"] = model_dir
            lap(stage)
        final = _publish(run, model_dir) if is_main_process() else run.path("model")
        barrier()
        timings["training_total"] = round(sum(v for k, v in timings.items() if k != "training_total" and not k.startswith("eval_")), 1)
        evaluations = {}
        for stage in config["eval"]["stages"]:
            if stage in stage_models:
                say(f"eval: {stage} model")
                total = len(config["eval"]["tasks"] or [config["task"]]) * (
                    len(_seeds(config["eval"]["seeds"])) + len(_seeds(config["eval"]["heldout_seeds"])))
                with bars(f"eval {stage}", total) as advance, main_process_first():
                    evaluations[stage] = evaluate_model(run, stage, stage_models[stage], advance)
                lap(f"eval_{stage}")
    summary = {"run": str(run.root), "task": config["task"], "rows": len(rows), "visited_rows": len(visited),
               "model": str(final), "stages": sorted(stage_models), "evaluation": evaluations}
    if is_main_process():
        run.plot_curves()
        write_json(run.path("summary.json"), summary)
    save_timings()  # with training_total, also when no evaluation stage ran
    return dict(summary, seconds=timings)


def _earlier_timings(run: Run) -> tuple[dict[str, float], int]:
    """The seconds per stage that earlier sessions of a resumed run spent, and how many sessions
    those were: a stage finished before the interrupt is skipped now, so its time must come from
    there. A damaged timings file costs the earlier times, not the run."""
    path = run.path("timings.json")
    try:
        saved = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        saved = {}
    seconds = saved.get("seconds", {})
    sessions = saved.get("sessions", 1)
    return ({k: float(v) for k, v in seconds.items() if k != "training_total" and isinstance(v, (int, float))},
            sessions if isinstance(sessions, int) else 1)


def _validated(run: Run, stage: str, before: Path, after: Path, bars, say) -> Path:
    """The model a recovery round ends with: its trained model if that solves at least as many
    validation instances as the model it started from, else the model it started from.

    Why: a round fine-tunes on a few tens of mistake rows, repeated; measured on
    double_cheese_burger, that fixed the rollouts' mistakes but broke other held starts (SR
    held-out 0.90 -> 0.75), while on cheese_burger it helped (0.85 -> 0.90). Validation seeds,
    which neither training nor evaluation uses, tell the two apart."""
    total = len(_seeds(run.config["recovery"]["validation_seeds"]))
    with bars(f"{stage} validation", 2 * total) as advance, main_process_first():
        solved_before = validation_successes(run, before, advance)
        solved_after = validation_successes(run, after, advance)
    kept = solved_after >= solved_before
    run.log(stage + "-validation", 0, {"before": solved_before, "after": solved_after, "kept": kept})
    say(f"{stage}: validation {solved_before}/{total} -> {solved_after}/{total}: "
        + ("keeping the round's model" if kept else "the round made it worse; keeping the model it started from"))
    return after if kept else before


def _seeds(spec: str) -> list[int]:
    from plannerl.seeds import parse_seeds

    return parse_seeds(spec)
