"""The run folder: one training run's config, metrics, curves, stage outputs and Ctrl-C handling.

Every stage writes its result into the folder (a model folder is swapped in whole) and a stage
whose result is already there is skipped (`Run.cached`, `finish_stage`), so `--resume` redoes at
most the interrupted stage, from its last trainer checkpoint.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plannerl.agents.distributed import is_main_process
from plannerl.agents.model import replace_folder
from plannerl.atomic import read_jsonl, write_bytes, write_json, write_jsonl
from plannerl.errors import PlannerlError
from plannerl.train.config import CONFIG_NAME, DEFAULTS, config_difference, merge_config

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "learning_curves.png"
TIMINGS_NAME = "timings.json"


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
            # a key the saved run lacks came with a later plannerl, and its default is what the run used
            saved = merge_config(DEFAULTS, json.loads(config_path.read_text()))
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

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """A stage result kept in the run folder: read from run/<name> when it is there (a resumed
        run or a later stage), else `compute()`d and written there first. `.jsonl` holds a list
        of rows, anything else one JSON value; both are written whole (temp file, then rename)."""
        path = self.path(name)
        if path.is_file():
            return read_jsonl(path) if path.suffix == ".jsonl" else json.loads(path.read_text())
        value = compute()
        if path.suffix == ".jsonl":
            write_jsonl(path, value)
        else:
            write_json(path, value)
        return value

    # metrics -----------------------------------------------------------------------------
    def _read_metrics(self) -> list[dict]:
        path = self.path(METRICS_NAME)
        if not path.is_file():
            return []
        return read_jsonl(path)

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


def trainer_callback(run: Run, stage: str):
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


def last_checkpoint(folder: Path) -> Path | None:
    """The newest trainer checkpoint that was written completely (its trainer state is saved last)."""
    found = []
    for path in folder.glob("checkpoint-*"):
        if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(path.name.split("-")[-1]), path))
    return max(found)[1] if found else None


def train_with_resume(run: Run, stage: str, trainer) -> None:
    if not run.progress:  # without tqdm a Trainer prints every log dict instead; metrics.jsonl has them
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    checkpoint = last_checkpoint(run.path(stage))
    if checkpoint is not None:
        step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
        run.forget_metrics_after(stage, step)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    run.check_interrupt(f"{stage} (step {trainer.state.global_step})")

def publish(run: Run, model_dir: Path) -> Path:
    """Copy the final model into run/model (swapped in whole)."""
    final = run.path("model")
    staging = run.path(".model.saving")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    replace_folder(staging, final)
    return final


class StageClock:
    """Wall-clock seconds per stage in run/timings.json, summed over the sessions of a resumed
    run (a stage finished before an interrupt is skipped now, so its time comes from there).
    Kept out of the summary and the metrics, so the same config and seed write the same ones."""

    def __init__(self, run: Run, resume: bool) -> None:
        self.run = run
        self.seconds, sessions = self._earlier() if resume else ({}, 0)
        self.sessions = sessions + 1
        self.clock = time.monotonic()

    def _earlier(self) -> tuple[dict[str, float], int]:
        """A damaged timings file costs the earlier times, not the run."""
        path = self.run.path(TIMINGS_NAME)
        try:
            saved = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            saved = {}
        seconds, sessions = saved.get("seconds", {}), saved.get("sessions", 1)
        return ({k: float(v) for k, v in seconds.items() if k != "training_total" and isinstance(v, (int, float))},
                sessions if isinstance(sessions, int) else 1)

    def lap(self, name: str) -> None:
        """Add the time since the last lap to stage `name` and save at once, so an interrupted
        session keeps the stages it finished (one cut midway counts from its resume)."""
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - self.clock, 1)
        self.clock = time.monotonic()
        self.save()

    def total_training(self) -> None:
        self.seconds["training_total"] = round(sum(v for k, v in self.seconds.items()
                                                   if k != "training_total" and not k.startswith("eval_")), 1)

    def save(self) -> None:
        if is_main_process():
            write_json(self.run.path(TIMINGS_NAME), {"seconds": self.seconds, "sessions": self.sessions})
