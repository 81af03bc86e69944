"""Scale-out: sharded evaluation merges into the single-process report; training under 2 gloo processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from plannerl.agents.distributed import (
    evaluate_sharded,
    is_main_process,
    iter_shard_problems,
    merge_payloads,
    rank,
    shard_indices,
    shard_payload,
    world_size,
)
from plannerl.agents.evaluate import build_report, evaluate_policies, problems_from_tasks
from plannerl.agents.policies import OraclePolicy, RandomPolicy
from plannerl.errors import PlannerlError

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["burger", "cheese_sandwich"]
SEEDS = [42, 84]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def torchrun(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "plannerl.cli", *args]
    return subprocess.run(command, cwd=cwd, env=launcher_env(), capture_output=True, text=True, timeout=timeout)


def test_rank_helpers_read_the_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert (rank(), world_size(), is_main_process()) == (0, 1, True)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (rank(), world_size(), is_main_process()) == (3, 4, False)
    monkeypatch.setenv("WORLD_SIZE", "four")
    with pytest.raises(PlannerlError, match="WORLD_SIZE='four'"):
        world_size()


def test_shards_cover_every_instance_once():
    shards = [shard_indices(11, k, 3) for k in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert shards[1] == [1, 4, 7, 10]
    with pytest.raises(PlannerlError, match="shard 3 of 3"):
        shard_indices(5, 3, 3)


def test_shards_played_separately_merge_into_the_single_process_report():
    """Two shards played in this process (no launcher): merged, the report is the one-process report."""
    policies = [OraclePolicy(), RandomPolicy(7)]
    single = evaluate_policies(policies, problems_from_tasks(TASKS, SEEDS))
    payloads = []
    for shard in range(2):
        indices: list[int] = []
        problems = list(iter_shard_problems(TASKS, SEEDS, shard=shard, shards=2, indices=indices))
        assert [p.seed for p in problems] == [SEEDS[i % 2] for i in indices]
        played = evaluate_policies([OraclePolicy(), RandomPolicy(7)], problems)
        payloads.append(shard_payload(played, ["oracle", "random"], indices))
    merged = merge_payloads(payloads)
    config = {"note": "same"}
    assert json.dumps(build_report(merged, config), sort_keys=True) == json.dumps(build_report(single, config), sort_keys=True)
    assert [r.episode for r in merged] == [r.episode for r in single]


def test_sharded_evaluation_refuses_duplicate_policy_names():
    with pytest.raises(PlannerlError, match="distinct policy names"):
        evaluate_sharded([OraclePolicy(), OraclePolicy()], TASKS, SEEDS)


def test_torchrun_two_processes_write_the_single_process_report_byte_for_byte(tmp_path):
    args = ["eval", "-p", "oracle", "-p", "random", "-t", "burger", "-t", "cheese_sandwich", "--seeds", "42:126:42", "-q",
            "--seed", "3"]
    single = subprocess.run([sys.executable, "-m", "plannerl.cli", *args, "--report", "one.json"], cwd=tmp_path,
                            env=launcher_env(), capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    sharded = torchrun([*args, "--report", "two.json"], tmp_path)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    report = json.loads((tmp_path / "two.json").read_text())
    assert report["metrics"]["episodes"] == 2 * 2 * 3
    assert sharded.stdout.count("Evaluation summary") == 1  # printed by the main process only


SMOKE = ROOT / "configs" / "smoke.toml"
TINY_RUN = ["--set", "sft.steps=4", "--set", "sft.save_steps=2", "--set", "grpo.steps=1", "--set", "recovery.rounds=0",
            "--set", "eval.stages=[]"]


@pytest.mark.slow
def test_train_under_two_gloo_processes_writes_each_file_once_and_a_loadable_model(tmp_path):
    from plannerl.agents.model import load_model
    from plannerl.atomic import temp_files

    done = torchrun(["train", "--config", str(SMOKE), "--out", "run", "--quiet", *TINY_RUN], tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    assert done.stdout.count("run folder:") == 1  # the summary comes from the main process only
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))  # each record written once, not once per process
    assert {(r["stage"], r["step"]) for r in map(json.loads, lines)} >= {("sft", 4), ("grpo-filter", 0), ("grpo", 1)}
    assert temp_files(run) == [] and not list(run.glob("*/checkpoint-*"))
    model, tokenizer = load_model(run / "model")
    ids = tokenizer("Action:", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape[-1] >= len(tokenizer)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"] == ["grpo", "sft"]


def test_grpo_generation_falls_back_to_transformers_here_and_refuses_an_impossible_request():
    import importlib.util

    import torch

    from plannerl.train.grpo import grpo_generation

    flags, line = grpo_generation("auto")
    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():  # this CPU machine
        assert flags == {} and line.startswith("grpo generation: transformers (")
        with pytest.raises(PlannerlError, match="runtime.vllm = colocate, but"):
            grpo_generation("colocate")
    assert grpo_generation("off") == ({}, "grpo generation: transformers (runtime.vllm = off)")
    assert grpo_generation("auto", vllm_installed=True, gpu=True)[0] == {"use_vllm": True, "vllm_mode": "colocate"}
    assert grpo_generation("server", vllm_installed=True, gpu=True)[0] == {"use_vllm": True, "vllm_mode": "server"}
    assert grpo_generation("auto", vllm_installed=True, gpu=False) == ({}, "grpo generation: transformers (no GPU is present)")
    with pytest.raises(PlannerlError, match="runtime.vllm must be one of"):
        grpo_generation("fast")


def test_grpo_config_accepts_the_vllm_flags():
    """The flags are real GRPOConfig fields of the installed TRL (a rename would fail here, not on a GPU cluster)."""
    from trl import GRPOConfig

    from plannerl.train.grpo import grpo_generation

    flags, _ = grpo_generation("server", vllm_installed=True, gpu=True)
    args = GRPOConfig(output_dir="unused", use_cpu=True, report_to="none", **flags)
    assert (args.use_vllm, args.vllm_mode) == (True, "server")


@pytest.mark.slow
def test_two_process_training_killed_mid_sft_resumes_from_its_checkpoint(tmp_path):
    """torchrun stopped (SIGTERM to the launcher, which ends both workers) after a checkpoint;
    `--resume` under torchrun finishes the stage and logs every step exactly once."""
    import time

    settings = ["--config", str(SMOKE), "--out", "run", "--quiet", "--set", "sft.steps=30", "--set", "sft.save_steps=2",
                "--set", "sft.logging_steps=1", "--set", "grpo.steps=0", "--set", "recovery.rounds=0", "--set", "eval.stages=[]"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "plannerl.cli", "train", *settings]
    launcher = subprocess.Popen(command, cwd=tmp_path, env=launcher_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "run" / "sft").glob("checkpoint-*/trainer_state.json")):
            assert launcher.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
            time.sleep(0.05)
        launcher.terminate()
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert not (tmp_path / "run" / "sft" / "model").exists()
    resumed = torchrun(["train", *settings, "--resume"], tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "sft" and "loss" in r] == list(range(1, 31))
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_accelerate_launch_with_the_shipped_cpu_config_merges_the_same_report(tmp_path):
    import yaml

    shipped = yaml.safe_load((ROOT / "configs" / "accelerate" / "cpu_2proc.yaml").read_text())
    config = tmp_path / "cpu.yaml"
    config.write_text(yaml.safe_dump(dict(shipped, main_process_port=free_port())))
    args = ["eval", "-p", "oracle", "-p", "random", "-t", "cheese_sandwich", "--seeds", "42:84:42", "-q"]
    sharded = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "plannerl.cli",
                              *args, "--report", "two.json"], cwd=tmp_path, env=launcher_env(), capture_output=True, text=True,
                             timeout=120)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    single = evaluate_policies([OraclePolicy(), RandomPolicy(0)], problems_from_tasks(["cheese_sandwich"], [42, 84]))
    config_json = json.loads((tmp_path / "two.json").read_text())["config"]
    expected = json.dumps(build_report(single, config_json), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert (tmp_path / "two.json").read_text() == expected
    # two processes really ran: both joined the group, only the main one printed the summary
    assert sharded.stdout.count("Evaluation summary") == 1 and "world 2" in sharded.stdout


def test_problem_files_shard_after_the_tasks_and_an_empty_shard_plays_nothing():
    from itertools import chain

    from plannerl.agents.evaluate import problems_from_files

    files = [ROOT / "domains" / "burger.pddl", ROOT / "domains" / "cheese_sandwich.pddl"]
    single = evaluate_policies([OraclePolicy()], chain(problems_from_tasks(["burger"], [42]), problems_from_files(files)))
    payloads = []
    for shard in range(5):
        indices: list[int] = []
        problems = list(iter_shard_problems(["burger"], [42], files, shard=shard, shards=5, indices=indices))
        assert indices == ([shard] if shard < 3 else [])
        payloads.append(shard_payload(evaluate_policies([OraclePolicy()], problems) if problems else [], ["oracle"], indices))
    merged = merge_payloads(payloads)
    assert build_report(merged, {}) == build_report(single, {})
    assert [e["source"] for e in build_report(merged, {})["episodes"]] == ["burger seed 42", *map(str, files)]
