"""Training pipeline: config checks, run-folder rules, and a real smoke SFT + GRPO run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plannerl.errors import PlannerlError
from plannerl.progress import rich_progress
from plannerl.train.config import DEFAULTS, DEFAULTS_FILE, config_difference, load_config_file, parse_assignment, resolve_config
from plannerl.train.rows import RowOptions, instance_rows, options_of, replay, task_rows
from plannerl.train.run import Run

ROOT = Path(__file__).resolve().parent.parent


def test_the_defaults_file_and_the_shipped_configs_pass_the_checks():
    assert load_config_file(DEFAULTS_FILE) == resolve_config()
    for path in sorted((ROOT / "configs").glob("*.toml")):
        load_config_file(path)


def test_unknown_config_key_names_file_line_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('task = "burger"\n\n[sft]\nsteps = 3\nstepz = 4\n')
    with pytest.raises(PlannerlError, match=r"bad.toml:5: unknown config key 'sft.stepz'"):
        load_config_file(path)
    path.write_text('[grpo]\nnum_generations = 1\n')
    with pytest.raises(PlannerlError, match="num_generations must be at least 2"):
        load_config_file(path)
    path.write_text('[runtime]\njobs = 0\n')
    with pytest.raises(PlannerlError, match="runtime.jobs must be at least 1"):
        load_config_file(path)
    path.write_text('[sft]\nsteps = "many"\n')
    with pytest.raises(PlannerlError, match="sft.steps must be a int"):
        load_config_file(path)
    path.write_text('[sft\n')
    with pytest.raises(PlannerlError, match="not valid TOML"):
        load_config_file(path)
    with pytest.raises(PlannerlError, match="no such config file"):
        load_config_file(tmp_path / "missing.toml")


def test_set_assignments_and_seed_overlap():
    assert parse_assignment("grpo.temperature=1.5") == {"grpo": {"temperature": 1.5}}
    assert parse_assignment("task=cheese_burger") == {"task": "cheese_burger"}
    with pytest.raises(PlannerlError, match="unknown config key 'grpo.temp'"):
        parse_assignment("grpo.temp=1")
    with pytest.raises(PlannerlError, match="share seed 42"):
        resolve_config(overrides={"data": {"train_seeds": "40:50"}})
    with pytest.raises(PlannerlError, match="recovery.validation_seeds and recovery.seeds share seed 3005"):
        resolve_config(overrides={"recovery": {"validation_seeds": "3005:3010"}})
    assert resolve_config(overrides={"recovery": {"validation_seeds": ""}})["recovery"]["validation_seeds"] == ""
    with pytest.raises(PlannerlError, match="eval.choice must be one of sum, greedy"):
        parse_assignment("eval.choice=best")
    with pytest.raises(PlannerlError, match="eval.choice = 'greedy' picks among valid actions: it needs eval.constrained"):
        resolve_config(overrides={"eval": {"choice": "greedy", "constrained": False}})
    with pytest.raises(PlannerlError, match="it needs recovery.constrained"):
        resolve_config(overrides={"eval": {"choice": "greedy"}, "recovery": {"constrained": False}})
    with pytest.raises(PlannerlError, match="eval.avoid_revisits = true leaves out valid actions: it needs eval.constrained"):
        resolve_config(overrides={"eval": {"avoid_revisits": True, "constrained": False}})
    with pytest.raises(PlannerlError, match="eval.avoid_revisits = true is also how recovery validates"):
        resolve_config(overrides={"eval": {"avoid_revisits": True}, "recovery": {"constrained": False}})
    assert resolve_config(overrides={"eval": {"avoid_revisits": True}})["eval"]["avoid_revisits"] is True


def test_run_folder_refuses_a_different_run_unless_resume_or_force(tmp_path):
    config = resolve_config()
    Run(tmp_path / "run", config)
    with pytest.raises(PlannerlError, match="already holds a training run; pass --resume"):
        Run(tmp_path / "run", config)
    other = resolve_config(overrides={"seed": 5})
    with pytest.raises(PlannerlError, match=r"--resume with a different config \(seed: 0 -> 5\)"):
        Run(tmp_path / "run", other, resume=True)
    Run(tmp_path / "run", config, resume=True)
    older = json.loads((tmp_path / "run" / "config.json").read_text())
    del older["data"]["extra_stations"]  # a run saved before the key existed resumes under its default
    (tmp_path / "run" / "config.json").write_text(json.dumps(older))
    Run(tmp_path / "run", config, resume=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["extra_stations"] == ""
    Run(tmp_path / "run", other, force=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 5
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PlannerlError, match="not empty and holds no plannerl run"):
        Run(tmp_path / "mine", config, force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(PlannerlError, match="nothing to resume"):
        Run(tmp_path / "fresh", config, resume=True)


def test_config_difference_names_the_first_changed_key():
    changed = resolve_config(overrides={"grpo": {"beta": 0.04}})
    assert config_difference(DEFAULTS, changed) == "grpo.beta: 0.0 -> 0.04"
    assert config_difference(DEFAULTS, resolve_config()) is None


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _changed(a: dict, b: dict) -> bool:
    return any(not (a[name] == b[name]).all() for name in a)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_smoke_pipeline_changes_weights_in_sft_and_grpo_and_writes_a_loadable_model(tmp_path, capsys):
    import torch

    from plannerl.agents.model import load_model
    from plannerl.train.pipeline import train

    config = resolve_config(ROOT / "configs" / "smoke.toml")
    run = tmp_path / "run"
    summary = train(config, run, progress=False, say=lambda _: None)
    assert "'loss'" not in capsys.readouterr().out  # quiet: the trainers' log dicts go to metrics.jsonl only

    base, sft, grpo = _weights(run / "base"), _weights(run / "sft" / "model"), _weights(run / "grpo" / "model")
    assert _changed(base, sft)
    assert _changed(sft, grpo)
    # the recovery round's model is kept only if it solves at least as many validation instances
    validation = next(r for r in _metrics(run) if r["stage"] == "recovery-1-validation")
    before, after = (json.loads((run / "validation" / f"{stage}.json").read_text()) for stage in ("grpo", "recovery-1"))
    assert before["episodes"] == after["episodes"] == 1 and validation["kept"] == (after["successes"] >= before["successes"])
    kept = run / ("recovery-1" if validation["kept"] else "grpo") / "model"
    assert not _changed(_weights(kept), _weights(run / "model"))
    model, tokenizer = load_model(run / "model")
    ids = torch.tensor([tokenizer("Action:")["input_ids"]])
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] > ids.shape[1]

    records = _metrics(run)
    assert [r["step"] for r in records if r["stage"] == "sft" and "loss" in r] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in records if r["stage"] == "grpo" and "reward" in r] == [1, 2]
    rollout = next(r for r in records if r["stage"] == "recovery-1-rollout")
    assert rollout["episodes"] == 1 and rollout["rows"] >= 1
    visited = [json.loads(line) for line in (run / "recovery-1" / "rows.jsonl").read_text().splitlines()]
    assert len(visited) == rollout["rows"] and rollout["mistakes"] == sum(row["mistake"] for row in visited)
    for row, after in zip(visited, visited[1:]):  # a mistake: the model left the state by a non-optimal action
        if after["instance"] == row["instance"] and after["history_pddl"][:-1] == row["history_pddl"]:
            assert row["mistake"] == (after["history_pddl"][-1] not in row["optimal_actions_pddl"])
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "config.json").read_text()) == config
    assert summary["stages"] == ["grpo", "recovery", "sft"]
    for stage in ("sft", "grpo", "recovery"):
        for split in ("seeds", "heldout"):
            assert summary["evaluation"][stage][split]["burger"]["episodes"] == 1
            report = json.loads((run / "eval" / f"{stage}-{split}.json").read_text())
            assert len(report["episodes"]) == 1 and report["episodes"][0]["task"] == "burger"
    assert not list(run.glob("*/checkpoint-*")), "finished stages keep no trainer checkpoints"

    # the built-in model trains on todo prompts, and its folder says so, so evaluation renders the same
    first = json.loads((run / "data" / "train.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("Goal: ") and "Valid actions" not in first["prompt"] and "messages" not in first
    assert json.loads((run / "model" / "config.json").read_text())["plannerl_prompt"] == "todo"
    from plannerl.agents.evaluate import Observation, problems_from_tasks
    from plannerl.agents.policies import ModelPolicy, make_policy, shared_history_len
    from plannerl.tasks.render import compact_prompt

    problem = problems_from_tasks(["burger"], [1000])[0]
    observation = Observation(problem, problem.task.init, 0, [], [], 0, 0)
    policy = ModelPolicy(str(run / "model"))
    assert policy.prompt_texts([observation]) == [compact_prompt(problem.task, problem.task.init, todo=True)]
    # the model records its history length, and evaluation renders with it unless told otherwise
    assert policy.history_len == config["data"]["history_len"] == 5
    assert shared_history_len([make_policy("oracle"), policy], None) == 5 and shared_history_len([policy], 1) == 1
    other = ModelPolicy(str(run / "model"))
    other.history_len = 2
    with pytest.raises(PlannerlError, match="different history lengths"):
        shared_history_len([policy, other], None)
    assert first["prompt"] == compact_prompt(problem.task, problem.task.init, todo=True)


@pytest.mark.slow
def test_ctrl_c_leaves_a_checkpoint_and_resume_continues_from_the_saved_step(tmp_path):
    import os
    import signal

    from transformers import TrainerCallback

    from plannerl.train.pipeline import train
    from plannerl.train.run import TrainingInterrupted

    config = resolve_config(ROOT / "configs" / "smoke.toml", {
        "sft": {"steps": 6, "save_steps": 100, "logging_steps": 1}, "grpo": {"steps": 0}, "recovery": {"rounds": 0},
        "eval": {"stages": []}})

    class PressCtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    class Steps(TrainerCallback):
        def __init__(self):
            self.seen = []

        def on_step_end(self, args, state, control, **kwargs):
            self.seen.append(state.global_step)

    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, run, callbacks=[PressCtrlC()], progress=False, say=lambda _: None)
    checkpoints = sorted(p.name for p in (run / "sft").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4"]  # the step after Ctrl-C, although save_steps is 100
    assert not (run / "sft" / "model").exists()
    first = json.loads((run / "timings.json").read_text())
    assert first["sessions"] == 1 and first["seconds"]["data_and_base_model"] > 0 and "sft" not in first["seconds"]

    steps = Steps()
    train(config, run, resume=True, callbacks=[steps], progress=False, say=lambda _: None)
    assert steps.seen == [5, 6]
    # the resumed run's times add to the first session's: the finished data stage keeps its time
    timings = json.loads((run / "timings.json").read_text())
    assert timings["sessions"] == 2 and timings["seconds"]["data_and_base_model"] >= first["seconds"]["data_and_base_model"]
    seconds = timings["seconds"]
    assert seconds["training_total"] == pytest.approx(seconds["data_and_base_model"] + seconds["sft"], abs=0.11)
    assert [r["step"] for r in _metrics(run) if r["stage"] == "sft" and "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert (run / "sft" / "model" / "model.safetensors").is_file()


def test_cli_bad_inputs_give_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "plannerl.cli", "train", *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        return done.returncode, done.stderr.strip()

    bad = tmp_path / "bad.toml"
    bad.write_text("[grpo]\nbeta = 0.1\ngroup = 4\n")
    code, err = cli("--config", str(bad))
    assert code == 2 and err.count("\n") == 0 and "bad.toml:3: unknown config key 'grpo.group'" in err
    code, err = cli("--model", str(tmp_path / "no" / "such" / "model"), "--out", str(tmp_path / "r1"))
    assert code == 2 and ("no such model folder" in err or "not in the Hugging Face cache" in err)
    assert not (tmp_path / "r1").exists(), "a bad --model is refused before the run folder is made"
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "config.json").write_text(json.dumps(resolve_config(overrides={"seed": 9})))
    code, err = cli("--out", str(tmp_path / "r2"))
    assert code == 2 and "already holds a training run" in err
    code, err = cli("--out", str(tmp_path / "r2"), "--resume", "--seed", "1")
    assert code == 2 and "different config (seed: 9 -> 1)" in err


@pytest.mark.slow
def test_choice_objective_scores_like_constrained_decoding_and_learns_the_optimal_choice(tmp_path):
    """The choice loss is computed from the same scores constrained decoding ranks (checked
    against ModelPolicy's own scoring), and a few steps on four states make the policy pick an
    optimal action in each."""
    import math

    import torch

    from plannerl.agents.model import build_default_model, load_model
    from plannerl.agents.policies import ModelPolicy
    from plannerl.agents.scoring import score_answers
    from plannerl.train.sft import choice_loss, choice_rows

    rows = _rows("burger", [1000], RowOptions(style="compact", history_len=1, off_expert=1))[:4]
    folder = build_default_model(tmp_path / "base", texts=[row["prompt"] for row in rows], size="micro")
    model, tokenizer = load_model(folder)
    batch = choice_rows(tokenizer, rows, negatives=6, seed=0)
    assert all(sum(optimal) == len(row["optimal_actions"]) for optimal, row in zip(batch["optimal"], rows))
    assert all(len(options) <= len(row["optimal_actions"]) + 6 for options, row in zip(batch["candidates"], rows))

    policy = ModelPolicy(str(folder))
    candidate_args = (batch["prompt_ids"], batch["candidates"], tokenizer.pad_token_id)
    expected = []
    for scores, optimal, expert, options in zip(score_answers(policy.model, *candidate_args), batch["optimal"],
                                                batch["expert"], batch["candidates"]):
        right = [s for s, o in zip(scores, optimal) if o]
        expected.append(math.log(sum(map(math.exp, scores))) - math.log(sum(map(math.exp, right)))
                        - scores[expert] / len(options[expert]))
    with torch.no_grad():
        assert float(choice_loss(model, batch, tokenizer.pad_token_id)) == pytest.approx(sum(expected) / 4, rel=1e-4)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        choice_loss(model, batch, tokenizer.pad_token_id).backward()
        optimizer.step()
    policy.model = model.eval()  # the trained weights, scored by constrained decoding
    for scores, optimal in zip(score_answers(policy.model, *candidate_args), batch["optimal"]):
        assert optimal[max(range(len(scores)), key=scores.__getitem__)] == 1


def test_compact_rows_answer_in_the_compact_sentences_of_their_state():
    """A compact row's answers (expert, optimal, valid) are the state's compact sentences, in
    the same order as their PDDL forms, so rewards, the choice loss and evaluation agree."""
    from plannerl.tasks.actions import parse_action
    from plannerl.tasks.generate import generate_instance

    rows = _rows("burger", [1000], RowOptions(style="compact", history_len=1, off_expert=1))
    task = generate_instance("burger", 1000).load_task()
    moves = 0
    for row in rows:
        state, _ = replay(task, row["history_pddl"])
        for column in ("optimal_actions", "valid_actions"):
            for sentence, pddl in zip(row[column], row[column + "_pddl"], strict=True):
                assert task.actions[parse_action(task, state, sentence).action].pddl == pddl
        assert task.actions[parse_action(task, state, row["completion"]).action].pddl == row["expert_action_pddl"]
        moves += row["expert_action"].startswith("Move robot1 to ")
    assert moves >= 3


def test_hold_probability_oversamples_held_starts_in_training_rows_only():
    """`data.hold_probability` changes the training instances (every start holds an item at
    1.0, none at 0.0); the default keeps the generator's instances, and out-of-range values
    are refused."""

    def first_prompts(probability):
        options = RowOptions(style="compact", history_len=1, off_expert=0, hold_probability=probability)
        rows = _rows("cheese_sandwich", list(range(1000, 1006)), options)
        return [row["prompt"] for row in rows if row["step"] == 0]

    assert all("robot1 holds nothing" not in prompt for prompt in first_prompts(1.0))
    assert all("robot1 holds nothing" in prompt for prompt in first_prompts(0.0))
    assert first_prompts(0.25) == first_prompts(None)
    with pytest.raises(PlannerlError, match="data.hold_probability must be from 0 to 1"):
        parse_assignment("data.hold_probability=1.5")


def test_layout_ranges_crowd_training_instances_only_and_bad_ranges_are_refused():
    """`data.extra_stations` / `data.distractors` draw the training layouts from other ranges:
    with no extra station and no distractor every instance has only the stations its items
    need, so a stove is occupied far more often; unset, the rows are the generator's own."""
    crowded = RowOptions(style="compact", history_len=1, off_expert=0, extra_stations=(0, 0), distractors=(0, 0))
    default = RowOptions(style="compact", history_len=1, off_expert=0)
    for seed in range(1000, 1004):
        instance, _, rows = instance_rows("cooked_burger", seed, crowded)
        assert instance.distractors == 0 and instance.stations <= 5  # 3 items + one spare table + the stove
        assert rows[0]["prompt"].count(" on ") + rows[0]["prompt"].count(" holds ") >= 3
    robotouille = RowOptions(style="compact", history_len=1, off_expert=0, extra_stations=(0, 24), distractors=(0, 8))
    assert _rows("cooked_burger", [1000, 1001], default) == _rows("cooked_burger", [1000, 1001], robotouille)
    config = resolve_config(None, parse_assignment("data.extra_stations=0-4"))
    assert options_of(config).extra_stations == (0, 4) and options_of(config).distractors is None
    assert options_of(resolve_config(None, {"data": {"distractors": 3}})).distractors == (3, 3)
    for bad, message in (("data.extra_stations=4-1", "data.extra_stations: range 4-1 must satisfy"),
                         ("data.distractors=few", "expected N or LOW-HIGH"),
                         ("data.extra_stations=0-99", "data.extra_stations: range 0-99")):
        with pytest.raises(PlannerlError, match=message):
            resolve_config(None, parse_assignment(bad))


def test_blocked_training_starts_say_no_stove_free_and_the_default_keeps_the_rows():
    """`data.blocked = 1` starts every cooked_burger training instance with its stoves
    occupied, which the free prompt says outright; unset (0) gives the generator's own rows."""
    blocked = RowOptions(style="free", history_len=1, off_expert=0, blocked=1.0)
    default = RowOptions(style="free", history_len=1, off_expert=0)
    firsts = [row["prompt"] for row in _rows("cooked_burger", list(range(1000, 1006)), blocked) if row["step"] == 0]
    plain = [row["prompt"] for row in _rows("cooked_burger", list(range(1000, 1006)), default) if row["step"] == 0]
    assert sum("no stove free" in prompt for prompt in firsts) >= 4 > sum("no stove free" in prompt for prompt in plain)
    assert _rows("cooked_burger", [1000, 1001], default) == _rows(
        "cooked_burger", [1000, 1001], RowOptions(style="free", history_len=1, off_expert=0, blocked=0.0))
    assert options_of(resolve_config(None, parse_assignment("data.blocked=0.5"))).blocked == 0.5
    with pytest.raises(PlannerlError, match="data.blocked must be from 0 to 1"):
        parse_assignment("data.blocked=1.5")


def test_max_states_leaves_out_the_instances_whose_search_passes_it_and_keeps_the_others():
    """lettuce_tomato_sandwich seed 1009 (the robot holding an item, every board taken) needs
    14,661 states with the patterns per goal object (millions before them): with
    `data.max_states` at 5,000 it is left out; seed 1000 needs fewer and gives the same rows as
    without the bound, so the bound changes nothing but which instances stay."""
    bounded = RowOptions(style="free", history_len=1, off_expert=1, max_states=5_000)
    plain = RowOptions(style="free", history_len=1, off_expert=1)
    ranges = {"hold_probability": 0.6}
    kept, dropped = task_rows("lettuce_tomato_sandwich", [1000, 1009], bounded, ranges=ranges)
    assert dropped is None and kept is not None
    assert kept[2] == task_rows("lettuce_tomato_sandwich", [1000], plain, ranges=ranges)[0][2]
    assert options_of(resolve_config(None, parse_assignment("data.max_states=200000"))).max_states == 200_000
    assert options_of(resolve_config()).max_states is None
    with pytest.raises(PlannerlError, match="data.max_states must not be negative"):
        parse_assignment("data.max_states=-1")


def test_recovery_rows_repeat_the_mistakes_to_about_a_quarter():
    from plannerl.train.rows import recovery_rows

    expert = [{"prompt": f"e{i}"} for i in range(90)]
    visited = [{"prompt": f"v{i}", "mistake": i < 2} for i in range(10)]
    data = recovery_rows(expert, visited)
    assert data[:100] == expert + visited
    assert sum(row.get("mistake", False) for row in data) == 2 + 2 * 17  # (90 + 10) / (3 * 2) -> 17 more copies each
    assert 0.2 < sum(row.get("mistake", False) for row in data) / len(data) < 0.3
    assert recovery_rows(expert, [dict(row, mistake=False) for row in visited]) == expert + [dict(row, mistake=False) for row in visited]
    # a smaller share keeps each mistake to a few copies (random recipes: many mistakes, each its own state)
    few = recovery_rows(expert, visited, mistake_share=0.05)
    assert sum(row.get("mistake", False) for row in few) == 2 + 2 * 3  # 100 * 0.05 / (0.95 * 2) -> 3 more copies each
    assert recovery_rows(expert, visited, mistake_share=0.0) == expert + visited
    with pytest.raises(PlannerlError, match="recovery.mistake_share must be below 1"):
        resolve_config(overrides=parse_assignment("recovery.mistake_share=1.0"))


def _rows(task_name: str, seeds: list[int], options: RowOptions) -> list[dict]:
    return [row for _, _, rows in task_rows(task_name, seeds, options) for row in rows]


def test_plannerl_data_with_a_config_writes_exactly_the_rows_training_uses(tmp_path):
    """`plannerl data --config C` and `plannerl train --config C` share one row builder: the
    dataset's train.jsonl is the run's rows, in order (todo style, off-expert states, held starts)."""
    import subprocess
    import sys

    from plannerl.train.rows import training_rows

    config_file = tmp_path / "rows.toml"
    config_file.write_text('task = "cheese_burger"\nseed = 3\n[data]\ntrain_seeds = "1000:1002"\noff_expert = 2\n'
                           'hold_probability = 1.0\nhistory_len = 2\n')
    done = subprocess.run([sys.executable, "-m", "plannerl.cli", "data", "--config", str(config_file), "--out",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = [json.loads(line) for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    expected = training_rows(resolve_config(config_file))
    assert written == expected
    assert {row["source"] for row in written} == {"expert", "off_expert"}
    assert all("messages" not in row and row["prompt"].startswith("Goal:") for row in written)
    assert (tmp_path / "data" / "test.jsonl").read_text() == ""


def test_progress_off_a_terminal_prints_a_plain_line_per_tenth(capsys):
    """Under nohup or CI rich draws no bar; a long training stage must still show it is moving."""
    with rich_progress("label training rows", 20) as advance:
        for _ in range(20):
            advance()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split()[0] for line in lines] == [f"{n}/20" for n in range(2, 21, 2)]
    assert lines[-1].startswith("label training rows: 20/20 (100%) 0m")


def test_visited_states_are_labelled_with_one_progress_step_per_episode():
    """Labelling a recovery round's visited states can outlast its rollouts; its bar must move."""
    from plannerl.agents.evaluate import play, problems_from_tasks
    from plannerl.agents.policies import make_policy
    from plannerl.train.rows import episode_rows

    problems = problems_from_tasks(["burger"], [1000, 1001], max_steps=6)
    results = play(problems, make_policy("random", seed=3))
    ticks = []
    rows = episode_rows(results, RowOptions(), progress=lambda: ticks.append(len(ticks)))
    assert len(ticks) == len(results) == 2
    visited = sum(1 + sum(turn.valid for turn in r.turns) for r in results)  # the start, then one state per valid action
    assert 2 <= len(rows) <= visited and all(row["source"] == "visited" for row in rows)
    assert any(row["mistake"] for row in rows)  # a random walk leaves optimal plans


def test_auto_objective_is_choice_for_the_builtin_model_on_a_domain_only():
    from plannerl.train.config import sft_objective

    ferry = ROOT / "tests" / "fixtures" / "classic" / "ferry"
    domain = {"domain": str(ferry / "domain.pddl"), "problems": str(ferry / "p01.pddl")}
    assert sft_objective(resolve_config()) == "answer"  # the recipes keep the objective they were measured with
    assert sft_objective(resolve_config(overrides=domain)) == "choice"
    assert sft_objective(resolve_config(overrides={**domain, "model": "some/hub-model"})) == "answer"
    assert sft_objective(resolve_config(overrides={**domain, "sft": {"objective": "answer"}})) == "answer"
